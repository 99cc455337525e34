import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'

// Plain-loop float64 references, written independently of the kernels.
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))
const unaryCases: [string, (x: Tensor) => Tensor, (x: number) => number, [number, number]][] = [
  ['neg', (x) => x.neg(), (x) => -x, [-2, 2]],
  ['exp', (x) => x.exp(), Math.exp, [-2, 2]],
  ['log', (x) => x.log(), Math.log, [0.2, 3]],
  ['log1p', (x) => x.log1p(), Math.log1p, [-0.5, 3]],
  ['expm1', (x) => x.expm1(), Math.expm1, [-2, 2]],
  ['sqrt', (x) => x.sqrt(), Math.sqrt, [0.2, 3]],
  ['square', (x) => x.square(), (x) => x * x, [-2, 2]],
  ['reciprocal', (x) => x.reciprocal(), (x) => 1 / x, [0.5, 3]],
  ['pow 2.5', (x) => x.pow(2.5), (x) => x ** 2.5, [0.2, 2]],
  ['tanh', (x) => x.tanh(), Math.tanh, [-3, 3]],
  ['atan', (x) => x.atan(), Math.atan, [-3, 3]],
  ['sin', (x) => x.sin(), Math.sin, [-3, 3]],
  ['cos', (x) => x.cos(), Math.cos, [-3, 3]],
  ['sigmoid', (x) => x.sigmoid(), sigmoid, [-6, 6]],
  ['softplus', (x) => x.softplus(), (x) => Math.log1p(Math.exp(x)), [-5, 5]],
  ['softplus beta 2', (x) => x.softplus(2, 20), (x) => Math.log1p(Math.exp(2 * x)) / 2, [-5, 5]],
  ['softplus threshold', (x) => x.softplus(1, 1), (x) => (x > 1 ? x : Math.log1p(Math.exp(x))), [-3, 3]],
  ['relu', (x) => x.relu(), (x) => Math.max(x, 0), [-2, 2]],
  ['leakyRelu', (x) => x.leakyRelu(0.2), (x) => (x > 0 ? x : 0.2 * x), [-2, 2]],
  ['elu', (x) => x.elu(0.7), (x) => (x > 0 ? x : 0.7 * Math.expm1(x)), [-2, 2]],
  ['abs', (x) => x.abs(), Math.abs, [-2, 2]],
  ['clamp', (x) => x.clamp(-0.5, 0.7), (x) => Math.min(Math.max(x, -0.5), 0.7), [-2, 2]],
]

describe('unary ops', () => {
  test.each(unaryCases)('%s: float64 matches the reference, float32 agrees, gradient matches finite differences', (_name, op, ref, [lo, hi]) => {
    tidy(() => {
      const shape = [3, 5, 7]
      // keep points away from kinks so that central differences are valid there
      const values = randomValues(numel(shape), 7, lo, hi).map((v) => (Math.abs(v) < 0.02 ? v + 0.05 : v))
      const x64 = tensor(values, shape, { dtype: 'float64' })
      const y64 = op(x64)
      expect(y64.shape).toEqual(shape)
      expectClose(y64, values.map(ref), 1e-14)
      const y32 = op(tensor(values, shape, { dtype: 'float32' }))
      expect(y32.dtype).toBe('float32')
      expectClose(y32, y64.toArray(), 1e-5)
      const clampSafe = _name === 'clamp' ? values.map((v) => (Math.abs(v + 0.5) < 0.02 || Math.abs(v - 0.7) < 0.02 ? v + 0.06 : v)) : values
      gradCheck(op, [{ values: clampSafe, shape }])
    })
  })
})

const binaryCases: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => number][] = [
  ['add', (a, b) => a.add(b), (a, b) => a + b],
  ['sub', (a, b) => a.sub(b), (a, b) => a - b],
  ['mul', (a, b) => a.mul(b), (a, b) => a * b],
  ['div', (a, b) => a.div(b), (a, b) => a / b],
  ['pow', (a, b) => a.pow(b), (a, b) => a ** b],
  ['maximum', (a, b) => a.maximum(b), Math.max],
  ['minimum', (a, b) => a.minimum(b), Math.min],
  ['atan2', (a, b) => ops.atan2(a, b), Math.atan2],
]

// [shape of a, shape of b]: same shapes, scalars, trailing, leading and middle broadcasting, both stretched
const shapePairs: [number[], number[]][] = [
  [[4, 3], [4, 3]],
  [[4, 3], []],
  [[], [2, 5]],
  [[2, 3, 4], [4]],
  [[2, 3, 4], [3, 1]],
  [[5, 1, 3], [1, 4, 1]],
  [[1, 6], [7, 1]],
]

/** Reference broadcasting by index arithmetic. */
function broadcastRef(a: number[], as: number[], b: number[], bs: number[], f: (x: number, y: number) => number) {
  const nd = Math.max(as.length, bs.length)
  const pa = [...Array(nd - as.length).fill(1), ...as]
  const pb = [...Array(nd - bs.length).fill(1), ...bs]
  const out = pa.map((d, i) => Math.max(d, pb[i]))
  const n = numel(out)
  const res: number[] = []
  for (let i = 0; i < n; i++) {
    let rem = i
    let ia = 0
    let ib = 0
    let sa = 1
    let sb = 1
    for (let d = nd - 1; d >= 0; d--) {
      const idx = rem % out[d]
      rem = Math.floor(rem / out[d])
      ia += (pa[d] === 1 ? 0 : idx) * sa
      ib += (pb[d] === 1 ? 0 : idx) * sb
      sa *= pa[d]
      sb *= pb[d]
    }
    res.push(f(a[ia], b[ib]))
  }
  return { out, res }
}

describe('binary ops with broadcasting', () => {
  for (const [name, op, ref] of binaryCases) {
    test.each(shapePairs)(`${name} %j with %j`, (as, bs) => {
      tidy(() => {
        const positive = name === 'pow' || name === 'div'
        const a = randomValues(numel(as), 11, positive ? 0.5 : -2, 2)
        const b = randomValues(numel(bs), 12, positive ? 0.5 : -2, 2)
        const { out, res } = broadcastRef(a, as, b, bs, ref)
        const y = op(tensor(a, as, { dtype: 'float64' }), tensor(b, bs, { dtype: 'float64' }))
        expect(y.shape).toEqual(out)
        expectClose(y, res, 1e-14)
        const y32 = op(tensor(a, as, { dtype: 'float32' }), tensor(b, bs, { dtype: 'float32' }))
        expectClose(y32, res, 1e-5)
        gradCheck(op, [{ values: a, shape: as }, { values: b, shape: bs }])
      })
    })
  }

  test('numbers as operands', () => {
    tidy(() => {
      const x = tensor([1, 2, 3], [3], { dtype: 'float64' })
      expectClose(x.add(1), [2, 3, 4], 0)
      expectClose(x.sub(1), [0, 1, 2], 0)
      expectClose(x.mul(2), [2, 4, 6], 0)
      expectClose(x.div(2), [0.5, 1, 1.5], 0)
      expectClose(ops.sub(1, x), [0, -1, -2], 0)
      expectClose(ops.div(6, x), [6, 3, 2], 1e-15)
      gradCheck((t) => ops.div(2, t).add(t.mul(3)), [input([2, 3], 4, 0.5, 2)])
    })
  })

  test('comparisons give 0/1 masks and where selects', () => {
    tidy(() => {
      const a = tensor([1, 5, 3, -1], [4], { dtype: 'float64' })
      expectClose(a.gt(2), [0, 1, 1, 0], 0)
      expectClose(a.le(1), [1, 0, 0, 1], 0)
      expectClose(a.eq(3), [0, 0, 1, 0], 0)
      const b = tensor([10, 20, 30, 40], [4], { dtype: 'float64' })
      expectClose(ops.where(a.gt(2), a, b), [10, 5, 3, 40], 0)
      const cond = tensor([1, 0, 1], [3, 1], { dtype: 'float64' })
      gradCheck((x, y) => ops.where(cond, x, y), [input([3, 4], 1), input([4], 2)])
    })
  })

  test('errors: shapes that do not broadcast, mixed dtypes, bad arguments', () => {
    tidy(() => {
      const a = tensor([1, 2, 3], [3], { dtype: 'float64' })
      expectCode(() => a.add(tensor([1, 2], [2], { dtype: 'float64' })), 'ERR_SHAPE')
      expectCode(() => a.add(tensor([1, 2, 3], [3], { dtype: 'float32' })), 'ERR_DTYPE')
      expectCode(() => a.add('x' as unknown as number), 'ERR_ARGUMENT')
      expectCode(() => a.clamp(1, 0), 'ERR_ARGUMENT')
      expectCode(() => a.softplus(-1), 'ERR_ARGUMENT')
    })
  })
})

describe('large tensors split across threads (chunks start in the middle of rows)', () => {
  test.each([
    [[3, 200003], [200003]],
    [[200003, 3], [200003, 1]],
    [[2, 150001, 3], [1, 150001, 1]],
  ])('broadcast add and its backward, %j with %j', (as, bs) => {
    tidy(() => {
      const a = randomValues(numel(as), 21)
      const b = randomValues(numel(bs), 22)
      const { out, res } = broadcastRef(a, as, b, bs, (x, y) => x * y + x)
      const ta = tensor(a, as, { dtype: 'float64', requiresGrad: true })
      const tb = tensor(b, bs, { dtype: 'float64', requiresGrad: true })
      const y = ta.mul(tb).add(ta)
      expect(y.shape).toEqual(out)
      expectClose(y, res, 1e-15)
      y.sum().backward()
      // d/da = b + 1 broadcast; d/db = Σ over broadcast copies of a
      const { res: gaRef } = broadcastRef(a, as, b, bs, (_x, yv) => yv + 1)
      expectClose(ta.grad as Tensor, gaRef, 1e-14)
      const gb = new Array<number>(numel(bs)).fill(0)
      const nd = out.length
      const pb = [...Array(nd - bs.length).fill(1), ...bs]
      for (let i = 0; i < res.length; i++) {
        let rem = i
        let ib = 0
        let sb = 1
        for (let d = nd - 1; d >= 0; d--) {
          const idx = rem % out[d]
          rem = Math.floor(rem / out[d])
          ib += (pb[d] === 1 ? 0 : idx) * sb
          sb *= pb[d]
        }
        let ia = 0
        let sa = 1
        rem = i
        const pa = [...Array(nd - as.length).fill(1), ...as]
        for (let d = nd - 1; d >= 0; d--) {
          const idx = rem % out[d]
          rem = Math.floor(rem / out[d])
          ia += (pa[d] === 1 ? 0 : idx) * sa
          sa *= pa[d]
        }
        gb[ib] += a[ia]
      }
      expectClose(tb.grad as Tensor, gb, 1e-12)
      const unary = ta.tanh()
      expectClose(unary, a.map(Math.tanh), 1e-15)
    })
  })
})

describe('float32 exp, tanh and sigmoid (the vectorised kernels) against float64', () => {
  const xs: number[] = []
  for (let i = 0; i <= 40000; i++) xs.push(-110 + (200 * i) / 40000)
  xs.push(-0, 0, 1e-30, -1e-30, 88.72, 88.7228, 88.73, 89, 1000, -1000, Infinity, -Infinity, NaN, 0.3, -0.3, 0.29999998, 9, -9, 9.01)
  const x32 = Float32Array.from(xs)
  const check = (name: string, f32: Float32Array | Float64Array, ref: (x: number) => number, relTol: number) => {
    let worst = 0
    x32.forEach((x, i) => {
      const want = Math.fround(ref(x))
      const got = f32[i]
      if (Number.isNaN(want)) return expect(got).toBeNaN()
      if (!Number.isFinite(want) || want === 0) return expect(got).toBe(want)
      // subnormal results: within one unit of the smallest subnormal
      if (Math.abs(want) < 1.1754943508222875e-38) return expect(Math.abs(got - want)).toBeLessThanOrEqual(1.401298464324817e-45 * 1.5)
      worst = Math.max(worst, Math.abs(got - want) / Math.abs(want))
    })
    if (!(worst <= relTol)) throw new Error(`${name}: worst relative error ${worst} > ${relTol}`)
  }
  test('exp: relative error ≤ 3e-7 on normal results, subnormals and overflow right, NaN stays NaN', () => {
    tidy(() => check('exp', tensor(x32, [x32.length], { dtype: 'float32' }).exp().toArray(), Math.exp, 3e-7))
  })
  test('tanh: relative error ≤ 5e-7', () => {
    tidy(() => check('tanh', tensor(x32, [x32.length], { dtype: 'float32' }).tanh().toArray(), Math.tanh, 5e-7))
  })
  test('sigmoid: relative error ≤ 5e-7', () => {
    tidy(() => check('sigmoid', tensor(x32, [x32.length], { dtype: 'float32' }).sigmoid().toArray(), (x) => 1 / (1 + Math.exp(-x)), 5e-7))
  })
})
