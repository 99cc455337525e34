/**
 * gaussianNll (native/cpu/loss.cc): the fused mean Gaussian negative log-likelihood against the composition the
 * training objective used before (float64), float32 against float64, independence of the thread count's split,
 * finite-difference gradients in float64, and errors.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { nllLoss } from '../../lib/train/objective'
import { expectClose, expectCode, gradCheck, input, randomValues, relErr } from '../helpers'

const LOG_2PI = Math.log(2 * Math.PI)

/** −mean(log N(z; 0, I) + logJacDet), written with the elementwise and reduction ops. */
function chain(z: Tensor, logJacDet: Tensor | null): Tensor {
  const dims = z.shape.slice(1).map((_, i) => i + 1)
  const d = z.shape.slice(1).reduce((a, b) => a * b, 1)
  let logp = z.square().sum(dims).mul(-0.5).sub(0.5 * d * LOG_2PI)
  if (logJacDet) logp = logp.add(logJacDet)
  return logp.mean().neg()
}

function make(shape: number[], seed: number, dtype: 'float32' | 'float64', lo = -2, hi = 2): Tensor {
  return tensor(randomValues(shape.reduce((p, q) => p * q, 1), seed, lo, hi), shape, { dtype })
}

describe('gaussianNll: against the op chain (float64)', () => {
  test('with and without the log-det, several shapes', () =>
    tidy(() => {
      for (const [shape, seed] of [[[8, 2], 1], [[3, 4, 5, 2], 2], [[1, 1], 3], [[7], 4], [[300, 3, 4], 5]] as [number[], number][]) {
        const z = make(shape, seed, 'float64')
        const l = make([shape[0]], seed + 100, 'float64', -5, 5)
        const loss = ops.gaussianNll(z, l)
        expect(loss.shape).toEqual([])
        expect(relErr([loss.item()], [chain(z, l).item()])).toBeLessThanOrEqual(1e-13)
        expect(relErr([ops.gaussianNll(z, null).item()], [chain(z, null).item()])).toBeLessThanOrEqual(1e-13)
      }
    }))

  test('float32 agrees with float64 (a sum in double)', () =>
    tidy(() => {
      const z = make([64, 3, 30, 30], 6, 'float64')
      const l = make([64], 7, 'float64', -50, 50)
      const ref = ops.gaussianNll(z, l).item()
      const f32 = ops.gaussianNll(z.to({ dtype: 'float32' }), l.to({ dtype: 'float32' }))
      expect(f32.dtype).toBe('float32')
      expect(relErr([f32.item()], [ref])).toBeLessThanOrEqual(1e-6)
    }))

  test('the gradients equal those of the chain', () =>
    tidy(() => {
      const grads = (f: (z: Tensor, l: Tensor) => Tensor) => {
        const z = tensor(randomValues(24, 8), [4, 3, 2], { dtype: 'float64', requiresGrad: true })
        const l = tensor(randomValues(4, 9), [4], { dtype: 'float64', requiresGrad: true })
        f(z, l).mul(1.7).backward()
        return [z, l].map((t) => Array.from((t.grad as Tensor).toArray()))
      }
      const fused = grads((z, l) => ops.gaussianNll(z, l))
      const ref = grads(chain)
      fused.forEach((g, k) => expect(relErr(g, ref[k])).toBeLessThanOrEqual(1e-14))
    }))

  test('an empty batch gives NaN, as the mean of nothing', () =>
    tidy(() => {
      expect(ops.gaussianNll(tensor([], [0, 3], { dtype: 'float64' }), tensor([], [0], { dtype: 'float64' })).item()).toBeNaN()
    }))
})

describe('gaussianNll: gradients (float64, finite differences)', () => {
  test('z and logJacDet', () => {
    gradCheck((z, l) => ops.gaussianNll(z, l), [input([5, 3, 2], 1, -2, 2), input([5], 2, -3, 3)])
  })
  test('z alone (no log-det)', () => {
    gradCheck((z) => ops.gaussianNll(z, null), [input([4, 6], 3, -2, 2)])
  })
})

describe('nllLoss: the fused op against the old composition (float64)', () => {
  test('one latent, several latents', () =>
    tidy(() => {
      const z = make([6, 2, 3], 10, 'float64')
      const z2 = make([6, 4], 11, 'float64')
      const l = make([6], 12, 'float64', -4, 4)
      expect(relErr([nllLoss(z, l).item()], [chain(z, l).item()])).toBeLessThanOrEqual(1e-12)
      const old = chain(z, l).add(chain(z2, null))
      expect(relErr([nllLoss([z, z2], l).item()], [old.item()])).toBeLessThanOrEqual(1e-12)
      // a number log-det and a 0-d one take the composed path
      expectClose([nllLoss(z, 1.5).item()], [chain(z, null).sub(1.5).item()], 1e-12)
    }))
})

describe('gaussianNll: errors', () => {
  test('bad shapes, dtypes, arguments', () =>
    tidy(() => {
      const z = make([3, 2], 1, 'float64')
      expectCode(() => ops.gaussianNll(tensor([1], [], { dtype: 'float64' }), null), 'ERR_SHAPE')
      expectCode(() => ops.gaussianNll(z, make([2], 2, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.gaussianNll(z, make([3, 1], 2, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.gaussianNll(z, make([3], 2, 'float32')), 'ERR_DTYPE')
      expectCode(() => ops.gaussianNll(z, undefined as unknown as Tensor), 'ERR_ARGUMENT')
      expectCode(() => ops.gaussianNll('z' as unknown as Tensor, null), 'ERR_ARGUMENT')
    }))
})
