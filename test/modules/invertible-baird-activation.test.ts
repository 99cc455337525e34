import { nn, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { bairdMap, InvertibleBairdActivation } from '../../lib/modules/invertible-baird-activation'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

/** asinh(sinh x + c) in float64 (JavaScript's Math), exact enough for |x| < 700. */
const baird = (x: number, c: number) => Math.asinh(Math.sinh(x) + c)
/** ln(cosh x / √(1 + (sinh x + c)²)). */
const logDbaird = (x: number, c: number) => Math.log(Math.cosh(x)) - Math.log(Math.hypot(1, Math.sinh(x) + c))

function withDefault<T>(dtype: 'float32' | 'float64', fn: () => T): T {
  setDefaultDtype(dtype)
  try {
    return fn()
  } finally {
    setDefaultDtype('float32')
  }
}

/** A module with the given c values (copied into its parameter). */
function makeWith(dims: number[], c: number[], dtype: 'float32' | 'float64' = 'float64'): InvertibleBairdActivation {
  return withDefault(dtype, () => {
    const m = new InvertibleBairdActivation([dims])
    m.loadStateDict({ c: tensor(c, [1, ...dims], { dtype }) })
    return m
  })
}

describe('InvertibleBairdActivation', () => {
  test('the values of the spec: c = 0.5 → f(0) = 0.4812, f(2) = 2.1250, slope at 0 is 0.894 for c = ±0.5; c = 0 is the identity', () => {
    tidy(() => {
      const m = makeWith([4], [0.5, 0.5, -0.5, 0])
      const [[y], j] = m.forward([tensor([0, 2, 0, 1.3], [1, 4], { dtype: 'float64' })])
      const v = Array.from(y.toArray())
      expect(v[0]).toBeCloseTo(0.4812, 4)
      expect(v[1]).toBeCloseTo(2.125, 4)
      expect(v[2]).toBeCloseTo(-0.4812, 4)
      expect(v[3]).toBe(1.3)
      const slope = 1 / Math.sqrt(1.25)
      expect(slope).toBeCloseTo(0.894, 3)
      expectClose(j as Tensor, [2 * Math.log(slope) + Math.log(1 / Math.hypot(1, Math.sinh(2) + 0.5) * Math.cosh(2))], 1e-14)
    })
  })

  test.each([[[3, 4]], [[2, 2, 3]], [[2, 3, 1, 2]]])('shape %j: forward, reverse and log-det against float64 loops; float32 agrees', (shape) => {
    tidy(() => {
      const dims = shape.slice(1)
      const per = numel(dims)
      const cv = randomValues(per, 5, -2, 2)
      const xv = randomValues(numel(shape), 6, -4, 4)
      const m = makeWith(dims, cv)
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      const yRef = xv.map((x, i) => baird(x, cv[i % per]))
      expectClose(y, yRef, 1e-14)
      const jRef = Array.from({ length: shape[0] }, (_, b) => xv.slice(b * per, (b + 1) * per).reduce((a, x, i) => a + logDbaird(x, cv[i]), 0))
      expect((j as Tensor).shape).toEqual([shape[0]])
      expectClose(j as Tensor, jRef, 1e-13)
      const [[x], jr] = m.forward([y], [], true)
      expectClose(x, xv, 1e-14)
      expectClose(jr as Tensor, jRef.map((v) => -v), 1e-13)
      // odd symmetry f(−x; −c) = −f(x; c)
      const mNeg = makeWith(dims, cv.map((c) => -c))
      const [[yNeg]] = mNeg.forward([tensor(xv.map((v) => -v), shape, { dtype: 'float64' })])
      expectClose(yNeg, yRef.map((v) => -v), 1e-14)
      const m32 = makeWith(dims, cv, 'float32')
      const [[y32], j32] = m32.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, yRef, 1e-6)
      expectClose(j32 as Tensor, jRef, 1e-5)
    })
  })

  test('large |x| in float32: no overflow, no NaN (the literal exponential form gives NaN at x = 50, c < 0)', () => {
    tidy(() => {
      const xv = [50, -50, 100, -100, 88.5, -300, 1e4, -3e30]
      const cv = [-0.5, 0.5, -3, 3, 2, -1.5, -7, 0.25]
      const m = makeWith([8], cv, 'float32')
      const [[y], j] = m.forward([tensor(xv, [1, 8], { dtype: 'float32' })])
      const got = Array.from(y.toArray())
      expect(got.every(Number.isFinite)).toBe(true)
      // far out, asinh(sinh x + c) = x + O(c·e^(−|x|)): x itself in float64 for |x| > 40
      expectClose(got, xv, 1e-7)
      expect(Number.isFinite((j as Tensor).item())).toBe(true)
      expect(Math.abs((j as Tensor).item())).toBeLessThan(1e-6)
      const [[x]] = m.forward([y], [], true)
      expectClose(x, xv, 1e-7)
      // the gradient stays finite too
      const xs = tensor(xv, [1, 8], { dtype: 'float32', requiresGrad: true })
      const [[yy], jj] = m.forward([xs])
      yy.sum().add((jj as Tensor).sum()).backward()
      expect(Array.from((xs.grad as Tensor).toArray()).every(Number.isFinite)).toBe(true)
      expect(Array.from((m.c.grad as Tensor).toArray()).every(Number.isFinite)).toBe(true)
      // moderate-large values against the float64 reference
      const xm = [12, -12, 20, -20, 35, -35]
      const cm = [-0.5, 0.5, 3, -3, 1, -2]
      const m2 = makeWith([6], cm, 'float32')
      const [[y2], j2] = m2.forward([tensor(xm, [1, 6], { dtype: 'float32' })])
      expectClose(y2, xm.map((x, i) => baird(x, cm[i])), 1e-7)
      const jRef = xm.reduce((a, x, i) => a + logDbaird(x, cm[i]), 0)
      expect(Math.abs((j2 as Tensor).item() - jRef)).toBeLessThan(1e-6)
    })
  })

  test('gradients of the map and its log-derivative in x and c, including x = 0 and c = 0 (the sign masks)', () => {
    const x = input([2, 5], 3, -3, 3)
    x.values[0] = 0
    x.values[1] = 0
    x.values[2] = 25
    x.values[3] = -31
    const c = input([1, 5], 4, -2, 2)
    c.values[0] = 0
    expect(gradCheck((a, b) => bairdMap(a, b).y, [x, c])).toBeLessThan(1e-6)
    expect(gradCheck((a, b) => bairdMap(a, b).logDiag, [x, c])).toBeLessThan(1e-6)
    tidy(() => {
      // at x = 0, c = 0 (the initial state): dy/dx = 1 and dy/dc = 1 exactly
      const a = tensor([0], [1, 1], { dtype: 'float64', requiresGrad: true })
      const b = tensor([0], [1, 1], { dtype: 'float64', requiresGrad: true })
      bairdMap(a, b).y.sum().backward()
      expect((a.grad as Tensor).item()).toBe(1)
      expect((b.grad as Tensor).item()).toBe(1)
    })
  })

  test.each([[[3, 4]], [[2, 2, 3]]])('checkInvertibleModule %j with random c', (shape) => {
    checkInvertibleModule(
      () => {
        const m = new InvertibleBairdActivation([shape.slice(1)])
        nn.init.normal_(m.c, 0, 1.5)
        return m
      },
      { inputs: [shape], range: [-3, 3] },
    )
  })

  test('parameter c: name, shape, initialised to 0 (identity); bad dims, options and inputs', () => {
    const m = new InvertibleBairdActivation([[2, 3]])
    expect(Object.keys(m.stateDict())).toEqual(['c'])
    expect(m.c.shape).toEqual([1, 2, 3])
    expect(Array.from(m.c.toArray())).toEqual([0, 0, 0, 0, 0, 0])
    expect(m.outputDims([[2, 3]])).toEqual([[2, 3]])
    tidy(() => {
      const xv = randomValues(12, 2)
      const [[y], j] = m.forward([tensor(xv, [2, 2, 3])])
      expectClose(y, xv, 1e-7)
      // float32 rounding of ln((1 + t²)/2) − ln r around 0
      expect(Array.from((j as Tensor).toArray()).every((v) => Math.abs(v) < 1e-6)).toBe(true)
    })
    expectCode(() => new InvertibleBairdActivation([[3], [3]]), 'ERR_SHAPE')
    expectCode(() => new InvertibleBairdActivation([[3]], { c: 1 } as never), 'ERR_ARGUMENT')
    tidy(() => expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE'))
    tidy(() => expectCode(() => m.forward([tensor(randomValues(6, 1), [1, 3, 2])]), 'ERR_SHAPE'))
  })
})
