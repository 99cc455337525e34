/**
 * actnorm (native/cpu/actnorm.cc): the fused per-channel affine map and log-det against the op chain ActNorm used
 * before (float64, both directions, spatial and vector shapes, both parameter layouts), float32 against float64,
 * rev undoing forward, finite-difference gradients in float64 (each output alone and both), and errors.
 */
import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, randomValues, relErr } from '../helpers'

/** lib/modules/actnorm.ts's forward before fusion. */
function chain(x: Tensor, loc: Tensor, logScale: Tensor, rev: boolean): [Tensor, Tensor] {
  const nPix = x.shape.slice(2).reduce((a, b) => a * b, 1)
  const logDet = logScale.sum().mul(rev ? nPix : -nPix).expand([x.shape[0]])
  const y = rev ? x.mul(logScale.exp()).add(loc) : x.sub(loc).div(logScale.exp())
  return [y, logDet]
}

function make(shape: number[], seed: number, dtype: 'float32' | 'float64', lo = -2, hi = 2): Tensor {
  return tensor(randomValues(shape.reduce((p, q) => p * q, 1), seed, lo, hi), shape, { dtype })
}

const paramShape = (shape: number[]): number[] => [1, shape[1], ...shape.slice(2).map(() => 1)]
const SHAPES = [[4, 3, 5, 2], [6, 2], [2, 3, 7], [1, 1, 1, 1]]

describe('actnorm: against the op chain (float64)', () => {
  for (const rev of [false, true])
    test(`rev=${rev}`, () =>
      tidy(() => {
        SHAPES.forEach((shape, k) => {
          const x = make(shape, 10 + k, 'float64')
          const loc = make(paramShape(shape), 20 + k, 'float64')
          const ls = make(paramShape(shape), 30 + k, 'float64', -1, 1)
          const [y, l] = ops.actnorm(x, loc, ls, rev)
          const [yr, lr] = chain(x, loc, ls, rev)
          expect(y.shape).toEqual(shape)
          expect(l.shape).toEqual([shape[0]])
          expect(relErr(y.toArray(), yr.toArray())).toBeLessThanOrEqual(1e-15)
          expect(relErr(l.toArray(), lr.toArray())).toBeLessThanOrEqual(1e-15)
        })
      }))

  test('parameters of shape (C) give the same results', () =>
    tidy(() => {
      const x = make([3, 4, 2, 2], 1, 'float64')
      const loc = make([1, 4, 1, 1], 2, 'float64')
      const ls = make([1, 4, 1, 1], 3, 'float64', -1, 1)
      for (const rev of [false, true]) {
        const [y, l] = ops.actnorm(x, loc, ls, rev)
        const [y1, l1] = ops.actnorm(x, loc.reshape([4]), ls.reshape([4]), rev)
        expect(Array.from(y1.toArray())).toEqual(Array.from(y.toArray()))
        expect(Array.from(l1.toArray())).toEqual(Array.from(l.toArray()))
      }
    }))

  test('rev undoes forward, and the log-dets are opposite', () =>
    tidy(() => {
      const x = make([3, 4, 3, 3], 4, 'float64')
      const loc = make([1, 4, 1, 1], 5, 'float64')
      const ls = make([1, 4, 1, 1], 6, 'float64', -1, 1)
      const [y, l] = ops.actnorm(x, loc, ls)
      const [x2, l2] = ops.actnorm(y, loc, ls, true)
      expectClose(x2, x.toArray(), 1e-14)
      expect(Array.from(l2.toArray())).toEqual(Array.from(l.neg().toArray()))
    }))

  test('float32 agrees with float64', () =>
    tidy(() => {
      for (const rev of [false, true]) {
        const shape = [5, 3, 40, 30] // rows longer than a vector, many of them
        const x = make(shape, 7, 'float64')
        const loc = make(paramShape(shape), 8, 'float64')
        const ls = make(paramShape(shape), 9, 'float64', -1, 1)
        const [y, l] = ops.actnorm(x, loc, ls, rev)
        const [y32, l32] = ops.actnorm(x.to({ dtype: 'float32' }), loc.to({ dtype: 'float32' }), ls.to({ dtype: 'float32' }), rev)
        expect(y32.dtype).toBe('float32')
        expectClose(y32, y.toArray(), 1e-6)
        expectClose(l32, l.toArray(), 1e-6)
      }
    }))

  test('an empty batch', () =>
    tidy(() => {
      const [y, l] = ops.actnorm(tensor([], [0, 2, 3], { dtype: 'float64' }), make([1, 2, 1], 1, 'float64'), make([1, 2, 1], 2, 'float64'))
      expect(y.shape).toEqual([0, 2, 3])
      expect(l.shape).toEqual([0])
    }))
})

describe('actnorm: gradients (float64, finite differences)', () => {
  for (const rev of [false, true])
    for (const shape of [[3, 2, 2, 3], [4, 3]]) {
      const p = paramShape(shape)
      const inputs = [input(shape, 1, -2, 2), input(p, 2), input(p, 3, -1, 1)]
      test(`rev=${rev} (${shape.join(', ')}): y and log-det together`, () => {
        gradCheck((x, loc, ls) => {
          const [y, l] = ops.actnorm(x, loc, ls, rev)
          return y.add(l.reshape([shape[0], ...shape.slice(1).map(() => 1)]))
        }, inputs)
      })
      test(`rev=${rev} (${shape.join(', ')}): y alone`, () => {
        gradCheck((x, loc, ls) => ops.actnorm(x, loc, ls, rev)[0], inputs)
      })
      test(`rev=${rev} (${shape.join(', ')}): log-det alone`, () => {
        gradCheck((x, loc, ls) => ops.actnorm(x, loc, ls, rev)[1].add(x.sum().mul(0)).add(loc.sum().mul(0)), inputs)
      })
    }

  test('gradients match the op chain (float64)', () =>
    tidy(() => {
      for (const rev of [false, true]) {
        const shape = [3, 4, 5]
        const mk = (s: number[], seed: number, lo = -2, hi = 2) => tensor(randomValues(s.reduce((a, b) => a * b, 1), seed, lo, hi), s, { dtype: 'float64', requiresGrad: true })
        const grads = (f: typeof chain) => {
          const x = mk(shape, 1)
          const loc = mk([1, 4, 1], 2)
          const ls = mk([1, 4, 1], 3, -1, 1)
          const [y, l] = f(x, loc, ls, rev)
          y.mul(tensor(randomValues(y.size, 4), shape, { dtype: 'float64' })).sum().add(l.mul(tensor([0.3, -1.2, 0.7], [3], { dtype: 'float64' })).sum()).backward()
          return [x, loc, ls].map((t) => Array.from((t.grad as Tensor).toArray()))
        }
        const fused = grads((x, loc, ls, r) => ops.actnorm(x, loc, ls, r))
        const ref = grads(chain)
        fused.forEach((g, k) => expect(relErr(g, ref[k])).toBeLessThanOrEqual(1e-14))
      }
    }))
})

describe('actnorm: errors', () => {
  test('bad shapes, dtypes, arguments', () =>
    tidy(() => {
      const x = make([2, 3, 4], 1, 'float64')
      const p = make([1, 3, 1], 2, 'float64')
      expectCode(() => ops.actnorm(make([3], 1, 'float64'), make([1], 1, 'float64'), make([1], 1, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.actnorm(x, make([1, 2, 1], 2, 'float64'), p), 'ERR_SHAPE')
      expectCode(() => ops.actnorm(x, p, make([1, 3, 4], 2, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.actnorm(x, p, make([1, 3], 2, 'float64')), 'ERR_SHAPE')
      expectCode(() => ops.actnorm(x, p.to({ dtype: 'float32' }), p), 'ERR_DTYPE')
      expectCode(() => ops.actnorm(x, p, p, 1 as unknown as boolean), 'ERR_ARGUMENT')
      expectCode(() => ops.actnorm(x, p, 'loc' as unknown as Tensor), 'ERR_ARGUMENT')
    }))

  test('disposed inputs', () => {
    const x = make([2, 3], 1, 'float64')
    const p = make([1, 3], 2, 'float64')
    p.dispose()
    expectCode(() => ops.actnorm(x, p, p), 'ERR_DISPOSED')
    x.dispose()
  })
})
