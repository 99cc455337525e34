import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'

// Plain-loop float64 reference: every element of x is added to the output element whose index is x's index
// with the reduced dimensions dropped (or set to 0 with keepdim).
function refReduce(v: number[], shape: number[], dims: number[] | undefined, keepdim: boolean, mean: boolean) {
  const nd = shape.length
  const red = new Array<boolean>(nd).fill(false)
  for (const d of dims ?? shape.map((_, i) => i)) red[d < 0 ? d + nd : d] = true
  const out: number[] = []
  shape.forEach((s, d) => {
    if (!red[d]) out.push(s)
    else if (keepdim) out.push(1)
  })
  const kept = shape.map((s, d) => (red[d] ? 1 : s))
  const res = new Array<number>(numel(out)).fill(0)
  let count = 1
  shape.forEach((s, d) => (count *= red[d] ? s : 1))
  for (let i = 0; i < v.length; i++) {
    // unravel i over shape, then ravel over `kept` with the reduced coordinates at 0
    let rem = i
    const idx = new Array<number>(nd)
    for (let d = nd - 1; d >= 0; d--) {
      idx[d] = rem % shape[d]
      rem = Math.floor(rem / shape[d])
    }
    let o = 0
    for (let d = 0; d < nd; d++) o = o * kept[d] + (red[d] ? 0 : idx[d])
    res[o] += v[i]
  }
  return { out, res: mean ? res.map((r) => r / count) : res }
}

// [shape, dims (undefined = all), keepdim]
const cases: [number[], number | number[] | undefined, boolean][] = [
  [[3, 4, 5], 0, false],
  [[3, 4, 5], 1, false],
  [[3, 4, 5], 2, true],
  [[3, 4, 5], -1, false],
  [[3, 4, 5], -3, true],
  [[3, 4, 5], [0, 2], false],
  [[3, 4, 5], [1, 2], true],
  [[3, 4, 5], [2, 0], false], // order of dims does not matter
  [[3, 4, 5], undefined, false],
  [[3, 4, 5], undefined, true],
  [[3, 4, 5], [0, 1, 2], false],
  [[2, 3, 4, 5], [0, 2], false], // non-adjacent dims of a 4-D tensor
  [[2, 3, 4, 5], [1, 3], true],
  [[2, 3, 4, 5], [0, 3], false],
  [[2, 3, 4, 5], [0, -3, 3], false],
  [[2, 3, 4, 5], [-1, -2], true],
  [[3, 1, 4], 1, false], // a size-1 dimension
  [[3, 1, 4], [0, 2], true],
  [[7], 0, false],
  [[7], undefined, true],
]

describe.each([
  ['sum', false],
  ['mean', true],
] as [string, boolean][])('%s', (name, isMean) => {
  const op = (x: Tensor, dim?: number | number[], keepdim?: boolean) => (isMean ? x.mean(dim, keepdim) : x.sum(dim, keepdim))

  test.each(cases)('shape %j dim %j keepdim %s: reference, float32 agreement, gradient', (shape, dim, keepdim) => {
    tidy(() => {
      const v = randomValues(numel(shape), 1)
      const dims = dim === undefined ? undefined : Array.isArray(dim) ? dim : [dim]
      const { out, res } = refReduce(v, shape, dims, keepdim, isMean)
      const y = op(tensor(v, shape, { dtype: 'float64' }), dim, keepdim)
      expect(y.shape).toEqual(out)
      expect(y.dtype).toBe('float64')
      expectClose(y, res, 1e-14)
      const y32 = op(tensor(v, shape, { dtype: 'float32' }), dim, keepdim)
      expect(y32.dtype).toBe('float32')
      expectClose(y32, res, 1e-6)
      gradCheck((x) => op(x, dim, keepdim), [{ values: v, shape }])
    })
  })

  test('functional form and default keepdim', () => {
    tidy(() => {
      const v = randomValues(12, 2)
      const x = tensor(v, [3, 4], { dtype: 'float64' })
      const f = isMean ? ops.mean : ops.sum
      expectClose(f(x, 1), refReduce(v, [3, 4], [1], false, isMean).res, 1e-14)
      expect(f(x).shape).toEqual([])
      expect(f(x, [0], true).shape).toEqual([1, 4])
    })
  })

  test('0-d input, over all dims', () => {
    tidy(() => {
      const s = tensor([2.5], [], { dtype: 'float64' })
      expect(op(s).item()).toBe(2.5)
      expect(op(s, undefined, true).shape).toEqual([])
    })
  })

  // torch.tensor(2.5).sum(0) == 2.5: a 0-d tensor accepts dim 0 / -1
  test('0-d input, over dim 0 or -1 (as torch allows)', () => {
    tidy(() => {
      const s = tensor([2.5], [], { dtype: 'float64' })
      expect(op(s, 0).item()).toBe(2.5)
      expect(op(s, -1, true).shape).toEqual([])
    })
  })

  // Large enough to go through the thread pool, along both kernel paths (innermost dimension reduced or kept).
  test.each([
    [[32, 150, 12], [1]],
    [[32, 150, 12], [2]],
    [[32, 150, 12], [0, 2]],
    [[32, 150, 12], [0]],
    [[4, 20, 30, 25], [1, 3]],
    [[100000], [0]],
  ])('large shape %j over %j: float64 reference, float32 agreement, backward', (shape, dims) => {
    tidy(() => {
      const v = randomValues(numel(shape), 3, -2, 3)
      const { out, res } = refReduce(v, shape, dims, false, isMean)
      const x = tensor(v, shape, { dtype: 'float64', requiresGrad: true })
      const y = op(x, dims)
      expectClose(y, res, 1e-13)
      // float32 data is accumulated in double, so it agrees to float32 rounding even for long sums
      expectClose(op(tensor(v, shape, { dtype: 'float32' }), dims), res, 1e-6)
      const w = randomValues(numel(out), 4)
      y.backward(tensor(w, out, { dtype: 'float64' }))
      // gx[i] = w[output index of i] (/ count for the mean)
      const count = dims.reduce((a, d) => a * shape[d], 1)
      const expected = new Array<number>(v.length)
      const reduced = shape.map((_, d) => dims.includes(d))
      const kept = shape.map((s, d) => (reduced[d] ? 1 : s))
      for (let i = 0; i < v.length; i++) {
        let rem = i
        let o = 0
        let stride = 1
        for (let d = shape.length - 1; d >= 0; d--) {
          const idx = rem % shape[d]
          rem = Math.floor(rem / shape[d])
          if (!reduced[d]) o += idx * stride
          stride *= kept[d]
        }
        expected[i] = isMean ? w[o] / count : w[o]
      }
      expectClose(x.grad as Tensor, expected, 1e-15)
      x.grad?.dispose()
    })
  })

  test('empty tensors: a sum over no elements is 0, other dims keep their size 0', () => {
    tidy(() => {
      const e = tensor([], [3, 0], { dtype: 'float64' })
      expect(op(e, 0).shape).toEqual([0])
      if (!isMean) {
        expectClose(op(e, 1), [0, 0, 0], 0)
        expect(op(e).item()).toBe(0)
      }
    })
  })

  // as in torch and NumPy, the mean of an empty set is 0/0
  if (isMean)
    test('the mean over zero elements is NaN', () => {
      tidy(() => {
        const e = tensor([], [3, 0], { dtype: 'float64' })
        expect(Array.from(e.mean(1).toArray()).every(Number.isNaN)).toBe(true)
      })
    })

  test('errors', () => {
    tidy(() => {
      const x = tensor(randomValues(24, 5), [2, 3, 4], { dtype: 'float64' })
      expectCode(() => op(x, 3), 'ERR_ARGUMENT')
      expectCode(() => op(x, -4), 'ERR_ARGUMENT')
      expectCode(() => op(x, [0, 0]), 'ERR_ARGUMENT')
      expectCode(() => op(x, [0, -3]), 'ERR_ARGUMENT') // the same dimension twice
      expectCode(() => op(x, 0.5), 'ERR_ARGUMENT')
      expectCode(() => op(x, 'a' as unknown as number), 'ERR_ARGUMENT')
      expectCode(() => op(x, 0, 1 as unknown as boolean), 'ERR_ARGUMENT')
      expectCode(() => (isMean ? ops.mean : ops.sum)(null as unknown as Tensor), 'ERR_ARGUMENT')
      const d = tensor([1, 2], [2])
      d.dispose()
      expectCode(() => op(d), 'ERR_DISPOSED')
    })
  })
})

test('gradients through a chain of reductions and broadcasting', () => {
  tidy(() => {
    gradCheck((x) => x.sub(x.mean([0, 2], true)).square().mean([1, 3]), [input([2, 3, 4, 5], 6)])
    gradCheck((x) => x.div(x.sum(-1, true)).sum(0), [input([3, 4], 7, 0.5, 2)])
  })
})
