import { memory, ops, tensor, Tensor, tidy } from '../../lib'
import { bindingFor } from '../../lib/binding'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'

// ---- plain-loop float64 references, written independently of the kernels (row-major index arithmetic)

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0)
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]
    i = Math.floor(i / shape[d])
  }
  return idx
}
function ravel(idx: readonly number[], shape: readonly number[]): number {
  let i = 0
  for (let d = 0; d < shape.length; d++) i = i * shape[d] + idx[d]
  return i
}

function refPermute(v: number[], shape: number[], dims: number[]) {
  const out = dims.map((d) => shape[d])
  const res = new Array<number>(numel(out))
  for (let i = 0; i < res.length; i++) {
    const o = unravel(i, out)
    const src = new Array<number>(shape.length)
    dims.forEach((d, k) => (src[d] = o[k]))
    res[i] = v[ravel(src, shape)]
  }
  return { out, res }
}

function refNarrow(v: number[], shape: number[], dim: number, start: number, length: number) {
  const out = shape.map((s, d) => (d === dim ? length : s))
  const res = new Array<number>(numel(out))
  for (let i = 0; i < res.length; i++) {
    const o = unravel(i, out)
    o[dim] += start
    res[i] = v[ravel(o, shape)]
  }
  return { out, res }
}

function refCat(parts: { v: number[]; shape: number[] }[], dim: number) {
  const out = [...parts[0].shape]
  out[dim] = parts.reduce((a, p) => a + p.shape[dim], 0)
  const res = new Array<number>(numel(out))
  for (let i = 0; i < res.length; i++) {
    const o = unravel(i, out)
    let k = 0
    let pos = o[dim]
    while (pos >= parts[k].shape[dim]) pos -= parts[k++].shape[dim]
    o[dim] = pos
    res[i] = parts[k].v[ravel(o, parts[k].shape)]
  }
  return { out, res }
}

function refIndexSelect(v: number[], shape: number[], dim: number, index: number[]) {
  const out = shape.map((s, d) => (d === dim ? index.length : s))
  const res = new Array<number>(numel(out))
  for (let i = 0; i < res.length; i++) {
    const o = unravel(i, out)
    o[dim] = index[o[dim]]
    res[i] = v[ravel(o, shape)]
  }
  return { out, res }
}

// scatter-add of g (shaped like the index) into zeros of x's shape: the gradient of gather
function refGatherGrad(g: number[], xShape: number[], dim: number, index: number[], iShape: number[]) {
  const res = new Array<number>(numel(xShape)).fill(0)
  for (let i = 0; i < index.length; i++) {
    const o = unravel(i, iShape)
    o[dim] = index[i]
    res[ravel(o, xShape)] += g[i]
  }
  return res
}

function refGather(v: number[], shape: number[], dim: number, index: number[], iShape: number[]) {
  const res = new Array<number>(index.length)
  for (let i = 0; i < index.length; i++) {
    const o = unravel(i, iShape)
    o[dim] = index[i]
    res[i] = v[ravel(o, shape)]
  }
  return res
}

/** Random integers in [0, n). */
function randomIndex(count: number, n: number, seed: number): number[] {
  return randomValues(count, seed, 0, n).map((x) => Math.min(n - 1, Math.floor(x)))
}

const f64 = (v: number[], shape: number[]) => tensor(v, shape, { dtype: 'float64' })
const f32 = (v: number[], shape: number[]) => tensor(v, shape, { dtype: 'float32' })

// ------------------------------------------------------------------------------------------------ permute

describe('permute and transpose', () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [1, 0]],
    [[2, 3, 4], [2, 0, 1]],
    [[2, 3, 4], [1, 2, 0]],
    [[2, 3, 4], [0, 2, 1]],
    [[2, 3, 4, 5], [0, 2, 1, 3]], // innermost dimension stays: contiguous rows
    [[2, 1, 3, 4], [3, 1, 0, 2]], // a size-1 dimension moves
    [[4, 1, 5], [1, 0, 2]], // only a size-1 dimension moves: a plain copy
    [[2, 3, 4], [-1, 0, -2]], // negative dims
  ]
  test.each(cases)('shape %j dims %j: float64 reference, float32 agreement, gradient', (shape, dims) => {
    tidy(() => {
      const v = randomValues(numel(shape), 1)
      const nd = dims.map((d) => (d < 0 ? d + shape.length : d))
      const { out, res } = refPermute(v, shape, nd)
      const y = f64(v, shape).permute(dims)
      expect(y.shape).toEqual(out)
      expectClose(y, res, 0)
      const y32 = f32(v, shape).permute(...dims)
      expect(y32.dtype).toBe('float32')
      expectClose(y32, res, 1e-7)
      gradCheck((x) => x.permute(dims), [{ values: v, shape }])
    })
  })

  test.each([
    [[70, 53], [1, 0]],
    [[3, 90, 70], [2, 0, 1]],
    [[5, 40, 3, 30], [3, 2, 1, 0]],
    [[6, 50, 60], [0, 2, 1]],
    [[40, 30, 20], [1, 0, 2]],
  ])('large shape %j dims %j (tiled and parallel paths) forward and backward', (shape, dims) => {
    tidy(() => {
      const v = randomValues(numel(shape), 2)
      const { out, res } = refPermute(v, shape, dims)
      const x = f64(v, shape)
      x.requiresGrad = true
      const y = x.permute(dims)
      expectClose(y, res, 0)
      const w = randomValues(numel(out), 3)
      y.backward(f64(w, out))
      // the gradient is w permuted back: gx[x index] = w[y index]
      const inverse = dims.map((_, i) => dims.indexOf(i))
      expectClose(x.grad as Tensor, refPermute(w, out, inverse).res, 0)
      expectClose(f32(v, shape).permute(dims), res, 1e-7)
    })
  })

  test('0-d and empty tensors', () => {
    tidy(() => {
      const s = f64([2.5], [])
      expect(s.permute([]).item()).toBe(2.5)
      const e = f64([], [2, 0, 3]).permute([2, 1, 0])
      expect(e.shape).toEqual([3, 0, 2])
    })
  })

  test('transpose and t()', () => {
    tidy(() => {
      const shape = [2, 3, 4]
      const v = randomValues(24, 4)
      expectClose(f64(v, shape).transpose(0, 2), refPermute(v, shape, [2, 1, 0]).res, 0)
      expectClose(f64(v, shape).transpose(-1, 1), refPermute(v, shape, [0, 2, 1]).res, 0)
      expectClose(f64(v, shape).transpose(1, 1), v, 0)
      const m = randomValues(15, 5)
      expectClose(f64(m, [3, 5]).t(), refPermute(m, [3, 5], [1, 0]).res, 0)
      gradCheck((x) => x.transpose(0, -1), [input([3, 2, 4], 6)])
      gradCheck((x) => x.t().mul(x.t()), [input([4, 3], 7)])
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(24, 8), [2, 3, 4])
      expectCode(() => x.permute([0, 1]), 'ERR_ARGUMENT')
      expectCode(() => x.permute([0, 1, 1]), 'ERR_ARGUMENT')
      expectCode(() => x.permute([0, 1, 3]), 'ERR_ARGUMENT')
      expectCode(() => x.permute([0, 1, -4]), 'ERR_ARGUMENT')
      expectCode(() => x.permute([0, 1, 1.5]), 'ERR_ARGUMENT')
      expectCode(() => ops.permute(x, 'abc' as unknown as number[]), 'ERR_ARGUMENT')
      expectCode(() => x.transpose(0, 3), 'ERR_ARGUMENT')
      expectCode(() => ops.permute({} as Tensor, [0]), 'ERR_ARGUMENT')
      const d = f64([1, 2], [2])
      d.dispose()
      expectCode(() => d.permute([0]), 'ERR_DISPOSED')
    })
  })
})

// ------------------------------------------------------------------------------------------------ narrow

describe('narrow', () => {
  const cases: [number[], number, number, number][] = [
    [[5, 3], 0, 1, 3],
    [[3, 6, 2], 1, 2, 3],
    [[3, 4, 5], 2, 0, 5],
    [[3, 4, 5], -1, 1, 2], // negative dim
    [[3, 4, 5], 1, -3, 2], // negative start counts from the end
    [[3, 4, 5], 0, 3, 0], // empty slice
  ]
  test.each(cases)('shape %j dim %d start %d length %d', (shape, dim, start, length) => {
    tidy(() => {
      const v = randomValues(numel(shape), 9)
      const d = dim < 0 ? dim + shape.length : dim
      const s = start < 0 ? start + shape[d] : start
      const { out, res } = refNarrow(v, shape, d, s, length)
      const y = f64(v, shape).narrow(dim, start, length)
      expect(y.shape).toEqual(out)
      expectClose(y, res, 0)
      expectClose(f32(v, shape).narrow(dim, start, length), res, 1e-7)
      if (length > 0) gradCheck((x) => x.narrow(dim, start, length), [{ values: v, shape }])
    })
  })

  test('large forward and backward (parallel path)', () => {
    tidy(() => {
      const shape = [30, 50, 40]
      const v = randomValues(numel(shape), 10)
      const x = f64(v, shape)
      x.requiresGrad = true
      const y = x.narrow(1, 7, 31)
      const { out, res } = refNarrow(v, shape, 1, 7, 31)
      expectClose(y, res, 0)
      const w = randomValues(numel(out), 11)
      y.backward(f64(w, out))
      const expected = new Array<number>(numel(shape)).fill(0)
      for (let i = 0; i < w.length; i++) {
        const o = unravel(i, out)
        o[1] += 7
        expected[ravel(o, shape)] = w[i]
      }
      expectClose(x.grad as Tensor, expected, 0)
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(12, 12), [3, 4])
      expectCode(() => x.narrow(1, 2, 3), 'ERR_ARGUMENT')
      expectCode(() => x.narrow(1, 5, 0), 'ERR_ARGUMENT')
      expectCode(() => x.narrow(1, -5, 1), 'ERR_ARGUMENT')
      expectCode(() => x.narrow(1, 0, -1), 'ERR_ARGUMENT')
      expectCode(() => x.narrow(1, 0.5, 1), 'ERR_ARGUMENT')
      expectCode(() => x.narrow(2, 0, 1), 'ERR_ARGUMENT')
      expectCode(() => f64([1], []).narrow(0, 0, 1), 'ERR_SHAPE')
    })
  })
})

// ------------------------------------------------------------------------------------------------ cat and stack

describe('cat and stack', () => {
  const cases: [number[][], number][] = [
    [[[2, 3], [4, 3]], 0],
    [[[2, 3], [2, 1], [2, 4]], 1],
    [[[2, 3, 2], [2, 3, 1], [2, 3, 3]], 2],
    [[[2, 3, 2], [2, 1, 2]], -2],
    [[[2, 0, 2], [2, 2, 2]], 1], // an empty piece
    [[[3, 2]], 0], // a single tensor
  ]
  test.each(cases)('shapes %j along dim %d', (shapes, dim) => {
    tidy(() => {
      const parts = shapes.map((shape, k) => ({ v: randomValues(numel(shape), 20 + k), shape }))
      const d = dim < 0 ? dim + shapes[0].length : dim
      const { out, res } = refCat(parts, d)
      const y = ops.cat(parts.map((p) => f64(p.v, p.shape)), dim)
      expect(y.shape).toEqual(out)
      expectClose(y, res, 0)
      expectClose(ops.cat(parts.map((p) => f32(p.v, p.shape)), dim), res, 1e-7)
      const nonEmpty = parts.filter((p) => p.v.length > 0)
      gradCheck((...xs) => ops.cat(xs, dim), nonEmpty.map((p) => ({ values: p.v, shape: p.shape })))
    })
  })

  test('default dim 0, the same tensor twice, and inputs that need no gradient', () => {
    tidy(() => {
      const a = f64([1, 2, 3, 4], [2, 2])
      expectClose(ops.cat([a, a]), [1, 2, 3, 4, 1, 2, 3, 4], 0)
      gradCheck((x) => ops.cat([x, x.mul(3), x], 1), [input([2, 3], 21)])
      const fixed = f64(randomValues(6, 22), [2, 3])
      const x = f64(randomValues(4, 23), [2, 2])
      x.requiresGrad = true
      ops.cat([fixed, x], 1).mul(f64([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 5])).sum().backward()
      expect(fixed.grad).toBeNull()
      expectClose(x.grad as Tensor, [4, 5, 9, 10], 0)
    })
  })

  test('large cat forward and backward (parallel path)', () => {
    tidy(() => {
      const parts = [[20, 33, 40], [20, 7, 40], [20, 50, 40]].map((shape, k) => ({ v: randomValues(numel(shape), 30 + k), shape }))
      const xs = parts.map((p) => f64(p.v, p.shape))
      xs.forEach((x) => (x.requiresGrad = true))
      const y = ops.cat(xs, 1)
      const { out, res } = refCat(parts, 1)
      expectClose(y, res, 0)
      const w = randomValues(numel(out), 34)
      y.backward(f64(w, out))
      let offset = 0
      parts.forEach((p, k) => {
        expectClose(xs[k].grad as Tensor, refNarrow(w, out, 1, offset, p.shape[1]).res, 0)
        offset += p.shape[1]
      })
    })
  })

  test.each([0, 1, 2, -1])('stack along dim %d', (dim) => {
    tidy(() => {
      const shape = [3, 2]
      const vs = [0, 1, 2, 3].map((k) => randomValues(6, 40 + k))
      const d = dim < 0 ? dim + 3 : dim
      // stacking = unsqueeze each at d, then cat
      const parts = vs.map((v) => ({ v, shape: [...shape.slice(0, d), 1, ...shape.slice(d)] }))
      const { out, res } = refCat(parts, d)
      const y = ops.stack(vs.map((v) => f64(v, shape)), dim)
      expect(y.shape).toEqual(out)
      expectClose(y, res, 0)
      expectClose(ops.stack(vs.map((v) => f32(v, shape)), dim), res, 1e-7)
      gradCheck((a, b) => ops.stack([a, b, a.mul(b)], dim), [input(shape, 44), input(shape, 45)])
    })
  })

  test('errors', () => {
    tidy(() => {
      const a = f64(randomValues(6, 50), [2, 3])
      expectCode(() => ops.cat([]), 'ERR_ARGUMENT')
      expectCode(() => ops.cat(a as unknown as Tensor[]), 'ERR_ARGUMENT')
      expectCode(() => ops.cat([a, 3 as unknown as Tensor]), 'ERR_ARGUMENT')
      expectCode(() => ops.cat([a, f64([1, 2, 3], [1, 3])], 1), 'ERR_SHAPE')
      expectCode(() => ops.cat([a, f64([1, 2, 3], [3])], 0), 'ERR_SHAPE')
      expectCode(() => ops.cat([a, f32([1, 2, 3], [1, 3])], 0), 'ERR_DTYPE')
      expectCode(() => ops.cat([a, a], 2), 'ERR_ARGUMENT')
      expectCode(() => ops.cat([f64([1], []), f64([2], [])]), 'ERR_SHAPE')
      expectCode(() => ops.stack([a, f64([1, 2, 3], [1, 3])]), 'ERR_SHAPE')
      expectCode(() => ops.stack([a, f32(randomValues(6, 51), [2, 3])]), 'ERR_DTYPE')
      expectCode(() => ops.stack([a, a], 3), 'ERR_ARGUMENT')
      expectCode(() => ops.stack([]), 'ERR_ARGUMENT')
    })
  })
})

// ------------------------------------------------------------------------------------------------ split and chunk

describe('split and chunk', () => {
  test.each([
    [[7, 3], 3, 0, [3, 3, 1]],
    [[2, 6], 2, 1, [2, 2, 2]],
    [[2, 6], 6, -1, [6]],
    [[2, 6], 10, 1, [6]],
    [[2, 5, 3], [1, 0, 4], 1, [1, 0, 4]],
    [[2, 5, 3], [3], -1, [3]],
  ] as [number[], number | number[], number, number[]][])('shape %j split %j along %d -> sizes %j', (shape, sizes, dim, expected) => {
    tidy(() => {
      const v = randomValues(numel(shape), 60)
      const d = dim < 0 ? dim + shape.length : dim
      const pieces = f64(v, shape).split(sizes, dim)
      expect(pieces.map((p) => p.shape[d])).toEqual(expected)
      let offset = 0
      const pieces32 = f32(v, shape).split(sizes, dim)
      pieces.forEach((p, k) => {
        const { out, res } = refNarrow(v, shape, d, offset, expected[k])
        expect(p.shape).toEqual(out)
        expectClose(p, res, 0)
        expect(pieces32[k].dtype).toBe('float32')
        expectClose(pieces32[k], res, 1e-7)
        offset += expected[k]
      })
    })
  })

  test('gradients: weighted pieces, an unused piece, pieces recombined', () => {
    tidy(() => {
      gradCheck((x) => {
        const [p0, , p2] = x.split(2, 1)
        return p0.mul(2).sum().add(p2.sum())
      }, [input([3, 5], 61)])
      gradCheck((x) => x.split([1, 3, 2], 0)[1].square(), [input([6, 2], 62)])
      gradCheck((x) => {
        const [a, b, c] = x.split([2, 1, 3], -1)
        return ops.cat([c.mul(b), a.exp(), b], -1)
      }, [input([2, 3, 6], 63)])
      gradCheck((x) => {
        const [a, b] = ops.chunk(x, 2, 0)
        return a.mul(b)
      }, [input([4, 3], 64)])
    })
  })

  test('the gradient of an unused piece is zero', () => {
    tidy(() => {
      const x = f64(randomValues(12, 65), [4, 3])
      x.requiresGrad = true
      const [, b] = x.split([1, 2, 1])
      b.sum().backward()
      expectClose(x.grad as Tensor, [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0], 0)
    })
  })

  test('large split forward and backward (parallel path)', () => {
    tidy(() => {
      const shape = [25, 60, 30]
      const v = randomValues(numel(shape), 66)
      const x = f64(v, shape)
      x.requiresGrad = true
      const [a, b, c] = x.split([17, 13, 30], 1)
      expectClose(b, refNarrow(v, shape, 1, 17, 13).res, 0)
      const wa = randomValues(a.size, 67)
      const wc = randomValues(c.size, 68)
      a.mul(f64(wa, [...a.shape])).sum().add(c.mul(f64(wc, [...c.shape])).sum()).backward()
      const expected = refCat(
        [
          { v: wa, shape: [...a.shape] },
          { v: new Array<number>(b.size).fill(0), shape: [...b.shape] },
          { v: wc, shape: [...c.shape] },
        ],
        1,
      ).res
      expectClose(x.grad as Tensor, expected, 0)
    })
  })

  test.each([
    [10, 4, [3, 3, 3, 1]],
    [5, 4, [2, 2, 1]],
    [6, 3, [2, 2, 2]],
    [2, 5, [1, 1]],
    [0, 3, [0, 0, 0]],
  ])('chunk: size %d into %d chunks -> %j', (size, chunks, expected) => {
    tidy(() => {
      const v = randomValues(size * 2, 70)
      const pieces = ops.chunk(f64(v, [2, size]), chunks, -1)
      expect(pieces.map((p) => p.shape[1])).toEqual(expected)
      let offset = 0
      pieces.forEach((p, k) => {
        expectClose(p, refNarrow(v, [2, size], 1, offset, expected[k]).res, 0)
        offset += expected[k]
      })
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(12, 71), [3, 4])
      expectCode(() => x.split([1, 2], 1), 'ERR_ARGUMENT')
      expectCode(() => x.split([2, 3], 1), 'ERR_ARGUMENT')
      expectCode(() => x.split([5, -1], 1), 'ERR_ARGUMENT')
      expectCode(() => x.split([], 1), 'ERR_ARGUMENT')
      expectCode(() => x.split(0, 1), 'ERR_ARGUMENT')
      expectCode(() => x.split(-2, 1), 'ERR_ARGUMENT')
      expectCode(() => x.split(1.5, 1), 'ERR_ARGUMENT')
      expectCode(() => x.split(2, 2), 'ERR_ARGUMENT')
      expectCode(() => f64([1], []).split(1), 'ERR_SHAPE')
      expectCode(() => ops.chunk(x, 0), 'ERR_ARGUMENT')
      expectCode(() => ops.chunk(x, 2, -3), 'ERR_ARGUMENT')
    })
  })
})

// ------------------------------------------------------------------------------------------------ indexSelect

describe('indexSelect', () => {
  test.each([
    [[5, 3], 0, [4, 0, 2, 2]],
    [[3, 6, 2], 1, [5, 1, 1, 0, 3]],
    [[3, 4, 5], -1, [0, 4]],
    [[3, 4], 1, []],
  ] as [number[], number, number[]][])('shape %j dim %d index %j (tensor and number[] index, float32 and float64)', (shape, dim, index) => {
    tidy(() => {
      const v = randomValues(numel(shape), 80)
      const d = dim < 0 ? dim + shape.length : dim
      const { out, res } = refIndexSelect(v, shape, d, index)
      for (const idx of [index, f64(index, [index.length]), f32(index, [index.length])]) {
        const y = f64(v, shape).indexSelect(dim, idx)
        expect(y.shape).toEqual(out)
        expectClose(y, res, 0)
        expectClose(f32(v, shape).indexSelect(dim, idx), res, 1e-7)
      }
      if (index.length > 0) {
        gradCheck((x) => x.indexSelect(dim, index), [{ values: v, shape }])
        const it = f32(index, [index.length])
        gradCheck((x) => ops.indexSelect(x, dim, it), [{ values: v, shape }])
      }
    })
  })

  test('repeated indices accumulate their gradients', () => {
    tidy(() => {
      const x = f64([1, 2, 3], [3])
      x.requiresGrad = true
      x.indexSelect(0, [2, 2, 0, 2]).mul(f64([1, 10, 100, 1000], [4])).sum().backward()
      expectClose(x.grad as Tensor, [100, 0, 1011], 0)
    })
  })

  test.each([0, 1, 2])('large forward and backward along dim %d (parallel path)', (dim) => {
    tidy(() => {
      const shape = [20, 30, 40]
      const v = randomValues(numel(shape), 81)
      const index = randomIndex(45, shape[dim], 82) // more picks than rows: many repeats
      const x = f64(v, shape)
      x.requiresGrad = true
      const y = x.indexSelect(dim, f64(index, [index.length]))
      const { out, res } = refIndexSelect(v, shape, dim, index)
      expectClose(y, res, 0)
      const w = randomValues(numel(out), 83)
      y.backward(f64(w, out))
      // scatter-add by plain loops
      const expected = new Array<number>(numel(shape)).fill(0)
      for (let i = 0; i < w.length; i++) {
        const o = unravel(i, out)
        o[dim] = index[o[dim]]
        expected[ravel(o, shape)] += w[i]
      }
      expectClose(x.grad as Tensor, expected, 1e-15)
    })
  })

  test('errors: out-of-range and non-integer indices, wrong index shapes', () => {
    tidy(() => {
      const x = f64(randomValues(12, 84), [3, 4])
      expectCode(() => x.indexSelect(1, [0, 4]), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(1, [-1]), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(1, [0.5]), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(1, [NaN]), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(1, ['1' as unknown as number]), 'ERR_ARGUMENT')
      // tensor indices are checked by the native kernel before anything is written
      expectCode(() => x.indexSelect(0, f64([0, 3], [2])), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, f32([-1], [1])), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, f64([1.25], [1])), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, f64([NaN], [1])), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, f64([Infinity], [1])), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, f64([0, 1], [1, 2])), 'ERR_SHAPE')
      expectCode(() => x.indexSelect(2, [0]), 'ERR_ARGUMENT')
      expectCode(() => x.indexSelect(0, 1 as unknown as number[]), 'ERR_ARGUMENT')
      expectCode(() => f64([1], []).indexSelect(0, [0]), 'ERR_SHAPE')
    })
  })
})

// ------------------------------------------------------------------------------------------------ gather

describe('gather', () => {
  // [x shape, dim, index shape]: index smaller than x outside dim, and longer than x along dim
  const cases: [number[], number, number[]][] = [
    [[4, 3], 0, [6, 2]],
    [[4, 3], 1, [3, 5]],
    [[3, 4, 5], 1, [2, 6, 4]],
    [[3, 4, 5], 2, [3, 4, 2]],
    [[3, 4, 5], -3, [2, 3, 5]],
    [[3, 4, 5], 0, [1, 0, 2]], // empty index
  ]
  test.each(cases)('x %j dim %d index %j', (shape, dim, iShape) => {
    tidy(() => {
      const d = dim < 0 ? dim + shape.length : dim
      const v = randomValues(numel(shape), 90)
      const index = randomIndex(numel(iShape), shape[d], 91)
      const res = refGather(v, shape, d, index, iShape)
      for (const idx of [f64(index, iShape), f32(index, iShape)]) {
        const y = f64(v, shape).gather(dim, idx)
        expect(y.shape).toEqual(iShape)
        expectClose(y, res, 0)
        expectClose(f32(v, shape).gather(dim, idx), res, 1e-7)
      }
      if (index.length > 0) {
        const it = f64(index, iShape)
        gradCheck((x) => x.gather(dim, it), [{ values: v, shape }])
      }
    })
  })

  test('0-d x and index', () => {
    tidy(() => {
      const y = f64([3.5], []).gather(0, f64([0], []))
      expect(y.shape).toEqual([])
      expect(y.item()).toBe(3.5)
    })
  })

  test('repeated indices accumulate their gradients', () => {
    tidy(() => {
      const x = f64([1, 2, 3, 4], [2, 2])
      x.requiresGrad = true
      x.gather(1, f64([1, 1, 1, 0, 0, 0], [2, 3])).mul(f64([1, 2, 3, 4, 5, 6], [2, 3])).sum().backward()
      expectClose(x.grad as Tensor, [0, 6, 15, 0], 0)
    })
  })

  test.each([0, 1, 2])('large forward and backward along dim %d (parallel path)', (dim) => {
    tidy(() => {
      const shape = [20, 30, 40]
      const iShape = shape.map((s, k) => (k === dim ? s + 7 : s - 3))
      const v = randomValues(numel(shape), 92)
      const index = randomIndex(numel(iShape), shape[dim], 93)
      const x = f64(v, shape)
      x.requiresGrad = true
      const it = f64(index, iShape)
      const y = x.gather(dim, it)
      expectClose(y, refGather(v, shape, dim, index, iShape), 0)
      const w = randomValues(numel(iShape), 94)
      y.backward(f64(w, iShape))
      expectClose(x.grad as Tensor, refGatherGrad(w, shape, dim, index, iShape), 1e-15)
    })
  })

  test('errors: index rank and sizes, out-of-range and non-integer values', () => {
    tidy(() => {
      const x = f64(randomValues(12, 95), [3, 4])
      expectCode(() => x.gather(0, f64([0, 1], [2])), 'ERR_SHAPE')
      expectCode(() => x.gather(0, f64(new Array(10).fill(0), [2, 5])), 'ERR_SHAPE')
      expectCode(() => x.gather(1, f64([0, 1, 2, 3], [4, 1])), 'ERR_SHAPE')
      expectCode(() => x.gather(1, f64([0, 4], [2, 1])), 'ERR_ARGUMENT')
      expectCode(() => x.gather(0, f64([0, -1], [1, 2])), 'ERR_ARGUMENT')
      expectCode(() => x.gather(0, f32([0, 0.5], [1, 2])), 'ERR_ARGUMENT')
      expectCode(() => x.gather(2, f64([0], [1, 1])), 'ERR_ARGUMENT')
      expectCode(() => x.gather(0, [0] as unknown as Tensor), 'ERR_ARGUMENT')
    })
  })
})

// ------------------------------------------------------------------------------------------------ native checks

interface RawShapeBinding {
  narrow(x: unknown, dim: number, start: number, length: number): unknown
  narrowBackward(g: unknown, xShape: number[], dim: number, start: number): unknown
  permute(x: unknown, dims: number[]): unknown
  cat(xs: unknown[], dim: number): unknown
  catBackward(g: unknown, sizes: number[], dim: number, need: boolean[]): unknown
  split(x: unknown, sizes: number[], dim: number): unknown
  splitBackward(gs: unknown[], xShape: number[], sizes: number[], dim: number, dtype: string): unknown
  indexSelect(x: unknown, dim: number, index: unknown): unknown
  indexSelectBackward(g: unknown, xShape: number[], dim: number, index: unknown): unknown
  gather(x: unknown, dim: number, index: unknown): unknown
  gatherBackward(g: unknown, xShape: number[], dim: number, index: unknown): unknown
}

describe('native entry points re-check what would read or write out of bounds', () => {
  test('bad arguments throw instead of crashing', () => {
    tidy(() => {
      const N = bindingFor<RawShapeBinding>()
      const x = f64(randomValues(12, 100), [3, 4]).handle
      const g = f64(randomValues(6, 101), [3, 2]).handle
      expectCode(() => N.narrow(x, 1, 3, 2), 'ERR_ARGUMENT')
      expectCode(() => N.narrow(x, 2, 0, 1), 'ERR_ARGUMENT')
      expectCode(() => N.narrowBackward(g, [3, 4], 1, 3), 'ERR_ARGUMENT')
      expectCode(() => N.narrowBackward(g, [4, 4], 1, 0), 'ERR_SHAPE')
      expectCode(() => N.permute(x, [0, 0]), 'ERR_ARGUMENT')
      expectCode(() => N.cat([x, g], 0), 'ERR_SHAPE')
      expectCode(() => N.cat([x, f32([1, 2, 3, 4], [1, 4]).handle], 0), 'ERR_DTYPE')
      expectCode(() => N.catBackward(x, [1, 1], 0, [true, true]), 'ERR_ARGUMENT')
      expectCode(() => N.split(x, [2, 3], 1), 'ERR_ARGUMENT')
      expectCode(() => N.splitBackward([g, null], [3, 4], [3, 1], 1, 'float64'), 'ERR_SHAPE')
      expectCode(() => N.splitBackward([g, null], [3, 4], [2, 2], 1, 'float32'), 'ERR_DTYPE')
      expectCode(() => N.indexSelect(x, 0, [3]), 'ERR_ARGUMENT')
      expectCode(() => N.indexSelectBackward(g, [3, 4], 1, [0, 9]), 'ERR_ARGUMENT')
      expectCode(() => N.indexSelectBackward(g, [3, 4], 1, [0, 1, 2]), 'ERR_SHAPE')
      expectCode(() => N.gather(x, 0, f64([5], [1, 1]).handle), 'ERR_ARGUMENT')
      expectCode(() => N.gather(x, 0, f64([0], [1]).handle), 'ERR_SHAPE')
      expectCode(() => N.gatherBackward(g, [3, 4], 1, f64([0, 1, 0, 1, 0, 7], [3, 2]).handle), 'ERR_ARGUMENT')
      expectCode(() => N.gatherBackward(g, [2, 4], 1, f64([0, 0, 0, 0, 0, 0], [3, 2]).handle), 'ERR_SHAPE')
    })
  })
})

describe('memory', () => {
  test('a forward and backward through every op leaves no tensor behind', () => {
    const before = memory().tensors
    tidy(() => {
      const x = f64(randomValues(24, 110), [2, 3, 4])
      x.requiresGrad = true
      const [a, b] = x.permute([2, 0, 1]).split([1, 3])
      const c = ops.stack([a.narrow(2, 0, 2), a.narrow(2, 1, 2)], 1)
      const d = ops.cat([b.indexSelect(0, [2, 0]), b.gather(1, f64([0, 1, 1, 0], [1, 2, 2]).expand(3, 2, 2).narrow(0, 0, 2))], -1)
      const [e0, e1] = ops.chunk(d, 2, 0)
      c.sum().add(e0.mul(e1).sum()).backward()
      expect(x.grad?.shape).toEqual([2, 3, 4])
      x.grad?.dispose() // gradients belong to their leaf, outside any tidy scope
    })
    expect(memory().tensors).toBe(before)
  })
})
