import { getDefaultDtype, modules, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { InvAutoActTwoSided } = modules
type TwoSided = InstanceType<typeof InvAutoActTwoSided>

function randomize(m: TwoSided, seed: number): { pos: number[]; neg: number[] } {
  const shape = [...m.alphaPos.shape]
  const pos = randomValues(m.alphaPos.size, seed, -0.9, 0.9)
  const neg = randomValues(m.alphaNeg.size, seed + 1, -0.9, 0.9)
  m.loadStateDict({ alpha_pos: tensor(pos, shape, { dtype: m.alphaPos.dtype }), alpha_neg: tensor(neg, shape, { dtype: m.alphaNeg.dtype }) })
  return { pos, neg }
}

/** float64 reference: slope e^{α₊} for x > 0, e^{α₋} for x < 0, their geometric mean at 0. */
function reference(x: number[], shape: number[], pos: number[], neg: number[], rev: boolean): { y: number[]; ld: number[] } {
  const [B, C] = shape
  const per = numel(shape.slice(1))
  const pix = per / C
  const y: number[] = []
  const ld = new Array<number>(B).fill(0)
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < pix; p++) {
        const v = x[b * per + c * pix + p]
        const s = v > 0 ? pos[c] : v < 0 ? neg[c] : (pos[c] + neg[c]) / 2
        const ls = rev ? -s : s
        y.push(v * Math.exp(ls))
        ld[b] += ls
      }
  return { y, ld }
}

describe('InvAutoActTwoSided', () => {
  const previous = getDefaultDtype()
  beforeAll(() => setDefaultDtype('float64'))
  afterAll(() => setDefaultDtype(previous))

  test('parameters alpha_pos, alpha_neg (1, C, 1, ...) = ln(initPos), ln(initNeg)', () => {
    tidy(() => {
      const m = new InvAutoActTwoSided([[5]])
      expect(Object.keys(m.stateDict())).toEqual(['alpha_pos', 'alpha_neg'])
      expect(m.alphaPos.shape).toEqual([1, 5])
      expectClose(m.alphaPos, new Array(5).fill(Math.log(2)), 1e-15)
      expectClose(m.alphaNeg, new Array(5).fill(Math.log(0.5)), 1e-15)
      const img = new InvAutoActTwoSided([[3, 2, 4]], { initPos: 3, initNeg: 0.25 })
      expect(img.alphaNeg.shape).toEqual([1, 3, 1, 1])
      expectClose(img.alphaPos, new Array(3).fill(Math.log(3)), 1e-15)
      expectClose(img.alphaNeg, new Array(3).fill(Math.log(0.25)), 1e-15)
      expect(img.outputDims([[3, 2, 4]])).toEqual([[3, 2, 4]])
    })
  })

  test.each([
    ['vector', [4, 7]],
    ['image, odd channels', [2, 3, 3, 2]],
  ])('%s: forward and reverse match the float64 reference (zeros included); float32 agrees', (_name, shape) => {
    tidy(() => {
      const m = new InvAutoActTwoSided([shape.slice(1)])
      const { pos, neg } = randomize(m, 3)
      const xv = randomValues(numel(shape), 11, -2, 2)
      xv[1] = 0
      xv[5] = 0
      const x = tensor(xv, shape, { dtype: 'float64' })
      for (const rev of [false, true]) {
        const [[y], ld] = m.forward([x], [], rev)
        const ref = reference(xv, shape, pos, neg, rev)
        expectClose(y, ref.y, 1e-14)
        expectClose(ld as Tensor, ref.ld, 1e-14)
      }
      const m32 = new InvAutoActTwoSided([shape.slice(1)]).to({ dtype: 'float32' })
      m32.loadStateDict(m.stateDict())
      const [[y32], ld32] = m32.forward([x.to({ dtype: 'float32' })])
      const [[y64], ld64] = m.forward([x])
      expectClose(y32, y64.toArray(), 1e-5)
      expectClose(ld32 as Tensor, (ld64 as Tensor).toArray(), 1e-5)
    })
  })

  test.each([
    ['vector', [[3, 5]]],
    ['image', [[2, 3, 2, 2]]],
  ])('%s: invertible-module checks', (_name, inputs) => {
    checkInvertibleModule(() => {
      const m = new InvAutoActTwoSided([inputs[0].slice(1)])
      randomize(m, 9)
      return m
    }, { inputs })
  })

  test('jac: false returns null; learnable: false freezes both slopes', () => {
    tidy(() => {
      const m = new InvAutoActTwoSided([[3]], { learnable: false })
      expect(m.alphaPos.requiresGrad).toBe(false)
      expect(m.alphaNeg.requiresGrad).toBe(false)
      const x = tensor(randomValues(6, 2), [2, 3], { dtype: 'float64', requiresGrad: true })
      const [[y], none] = m.forward([x], [], false, false)
      expect(none).toBeNull()
      y.sum().backward()
      expect(m.alphaPos.grad).toBeNull()
      expect(m.alphaNeg.grad).toBeNull()
    })
  })

  test('bad options', () => {
    expectCode(() => new InvAutoActTwoSided([[3]], { initPos: 0 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoActTwoSided([[3]], { initNeg: -0.5 }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoActTwoSided([[3]], { learnable: 'yes' as unknown as boolean }), 'ERR_ARGUMENT')
    expectCode(() => new InvAutoActTwoSided([[3], [3]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new InvAutoActTwoSided([[3]])
      expectCode(() => m.forward([tensor(randomValues(4, 1), [2, 2], { dtype: 'float64' })]), 'ERR_SHAPE')
    })
  })
})
