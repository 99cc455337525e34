import { ops, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'

const f64 = (v: number[], shape: number[]) => tensor(v, shape, { dtype: 'float64' })
const f32 = (v: number[], shape: number[]) => tensor(v, shape, { dtype: 'float32' })

// Plain-loop reference for broadcasting x (shape `from`) to `to`: output element i reads x at i's index with
// the stretched dimensions at 0.
function refExpand(v: number[], from: number[], to: number[]): number[] {
  const lead = to.length - from.length
  const res = new Array<number>(numel(to))
  for (let i = 0; i < res.length; i++) {
    let rem = i
    let src = 0
    let stride = 1
    for (let d = to.length - 1; d >= lead; d--) {
      const idx = rem % to[d]
      rem = Math.floor(rem / to[d])
      const s = from[d - lead]
      src += (s === 1 ? 0 : idx) * stride
      stride *= s
    }
    res[i] = v[src]
  }
  return res
}

describe('reshape and view', () => {
  test.each([
    [[2, 3, 4], [6, 4], [6, 4]],
    [[2, 3, 4], [-1, 4], [6, 4]],
    [[2, 3, 4], [4, -1, 2], [4, 3, 2]],
    [[2, 3, 4], [24], [24]],
    [[2, 3, 4], [-1], [24]],
    [[2, 3, 4], [1, 24, 1], [1, 24, 1]],
    [[1, 1], [], []],
    [[], [1, 1, 1], [1, 1, 1]],
    [[0, 3], [3, 0], [3, 0]],
  ])('%j -> %j gives %j, shares storage, keeps row-major order', (from, to, expected) => {
    tidy(() => {
      const v = randomValues(numel(from), 1)
      const x = f64(v, from)
      const y = x.reshape(to)
      expect(y.shape).toEqual(expected)
      expectClose(y, v, 0)
      expect(y.handle.sharesStorage(x.handle)).toBe(true)
      expect(x.view(...to).shape).toEqual(expected)
      const y32 = f32(v, from).reshape(to)
      expect(y32.dtype).toBe('float32')
      expectClose(y32, v, 1e-7)
      if (v.length > 0) gradCheck((t) => t.reshape(to).mul(t.reshape(to)), [{ values: v, shape: from }])
    })
  })

  test('gradient through a reshape feeding a broadcast', () => {
    tidy(() => {
      gradCheck((a, b) => a.reshape(3, 4).mul(b.view(-1, 1)), [input([2, 6], 2), input([3], 3)])
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(24, 4), [2, 3, 4])
      expectCode(() => x.reshape(5, 5), 'ERR_SHAPE')
      expectCode(() => x.reshape(-1, -1), 'ERR_SHAPE')
      expectCode(() => x.reshape(-1, 5), 'ERR_SHAPE')
      expectCode(() => x.reshape(-1, 0), 'ERR_SHAPE')
      expectCode(() => x.reshape(-2, -12), 'ERR_ARGUMENT')
      expectCode(() => x.reshape(2.5, 2), 'ERR_ARGUMENT')
      expectCode(() => ops.reshape(x, 'abc' as unknown as number[]), 'ERR_ARGUMENT')
      expectCode(() => ops.reshape(null as unknown as Tensor, [1]), 'ERR_ARGUMENT')
      const d = f64([1, 2], [2])
      d.dispose()
      expectCode(() => d.reshape(1, 2), 'ERR_DISPOSED')
    })
  })
})

describe('flatten', () => {
  test.each([
    [[2, 3, 4], 0, -1, [24]],
    [[2, 3, 4], 1, -1, [2, 12]],
    [[2, 3, 4], 0, 1, [6, 4]],
    [[2, 3, 4, 5], 1, 2, [2, 12, 5]],
    [[2, 3, 4, 5], -3, -2, [2, 12, 5]],
    [[2, 3, 4], 2, 2, [2, 3, 4]],
    [[], 0, -1, [1]],
  ])('%j from %d to %d gives %j', (shape, start, end, expected) => {
    tidy(() => {
      const v = randomValues(numel(shape), 5)
      const y = f64(v, shape).flatten(start, end)
      expect(y.shape).toEqual(expected)
      expectClose(y, v, 0)
      expectClose(f32(v, shape).flatten(start, end), v, 1e-7)
      gradCheck((t) => t.flatten(start, end).square(), [{ values: v, shape }])
    })
  })

  test('default arguments flatten everything', () => {
    tidy(() => {
      expect(f64(randomValues(6, 6), [1, 2, 3]).flatten().shape).toEqual([6])
      expect(ops.flatten(f64(randomValues(6, 6), [1, 2, 3]), 1).shape).toEqual([1, 6])
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(24, 7), [2, 3, 4])
      expectCode(() => x.flatten(2, 1), 'ERR_ARGUMENT')
      expectCode(() => x.flatten(0, 3), 'ERR_ARGUMENT')
      expectCode(() => x.flatten(-4), 'ERR_ARGUMENT')
      expectCode(() => x.flatten(0.5), 'ERR_ARGUMENT')
    })
  })
})

describe('unsqueeze and squeeze', () => {
  test.each([
    [[2, 3], 0, [1, 2, 3]],
    [[2, 3], 1, [2, 1, 3]],
    [[2, 3], 2, [2, 3, 1]],
    [[2, 3], -1, [2, 3, 1]],
    [[2, 3], -3, [1, 2, 3]],
    [[], 0, [1]],
  ])('unsqueeze %j at %d gives %j', (shape, dim, expected) => {
    tidy(() => {
      const v = randomValues(numel(shape), 8)
      const y = f64(v, shape).unsqueeze(dim)
      expect(y.shape).toEqual(expected)
      expectClose(y, v, 0)
      expectClose(f32(v, shape).unsqueeze(dim), v, 1e-7)
      gradCheck((t) => t.unsqueeze(dim).exp(), [{ values: v, shape }])
    })
  })

  test.each([
    [[1, 2, 1, 3, 1], undefined, [2, 3]],
    [[1, 2, 1, 3, 1], 0, [2, 1, 3, 1]],
    [[1, 2, 1, 3, 1], 2, [1, 2, 3, 1]],
    [[1, 2, 1, 3, 1], -1, [1, 2, 1, 3]],
    [[1, 2, 1, 3, 1], 1, [1, 2, 1, 3, 1]], // not size 1: unchanged
    [[1, 1], undefined, []],
    [[], undefined, []],
  ])('squeeze %j dim %j gives %j', (shape, dim, expected) => {
    tidy(() => {
      const v = randomValues(numel(shape), 9)
      const y = f64(v, shape).squeeze(dim)
      expect(y.shape).toEqual(expected)
      expectClose(y, v, 0)
      expectClose(f32(v, shape).squeeze(dim), v, 1e-7)
      gradCheck((t) => t.squeeze(dim).mul(2), [{ values: v, shape }])
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(6, 10), [2, 3])
      expectCode(() => x.unsqueeze(3), 'ERR_ARGUMENT')
      expectCode(() => x.unsqueeze(-4), 'ERR_ARGUMENT')
      expectCode(() => x.unsqueeze(undefined as unknown as number), 'ERR_ARGUMENT')
      expectCode(() => x.squeeze(2), 'ERR_ARGUMENT')
      expectCode(() => x.squeeze(-3), 'ERR_ARGUMENT')
      expectCode(() => x.squeeze(1.5), 'ERR_ARGUMENT')
    })
  })
})

describe('expand', () => {
  test.each([
    [[3, 1], [3, 4]],
    [[4], [2, 3, 4]],
    [[1, 3, 1], [2, 3, 5]],
    [[2, 1, 3], [4, 2, 6, 3]],
    [[], [2, 3]],
    [[2, 3], [2, 3]],
  ])('%j to %j: reference, a copy, float32 agreement, gradient sums over the stretched dims', (from, to) => {
    tidy(() => {
      const v = randomValues(numel(from), 11)
      const x = f64(v, from)
      const y = x.expand(to)
      expect(y.shape).toEqual(to)
      expectClose(y, refExpand(v, from, to), 0)
      expect(y.handle.sharesStorage(x.handle)).toBe(false)
      expect(x.expand(...to).shape).toEqual(to)
      expectClose(f32(v, from).expand(to), refExpand(v, from, to), 1e-7)
      gradCheck((t) => t.expand(to), [{ values: v, shape: from }])
    })
  })

  test('-1 keeps a dimension', () => {
    tidy(() => {
      const v = randomValues(3, 12)
      expect(f64(v, [3, 1]).expand(-1, 4).shape).toEqual([3, 4])
      expect(f64(v, [1, 3]).expand(2, 5, -1).shape).toEqual([2, 5, 3])
      expectClose(f64(v, [1, 3]).expand(2, -1), [...v, ...v], 0)
    })
  })

  test('large expand and backward (parallel path)', () => {
    tidy(() => {
      const from = [40, 1, 50]
      const to = [7, 40, 60, 50]
      const v = randomValues(numel(from), 13)
      const x = tensor(v, from, { dtype: 'float64', requiresGrad: true })
      const y = x.expand(to)
      expectClose(y, refExpand(v, from, to), 0)
      const w = randomValues(numel(to), 14)
      y.backward(f64(w, to))
      // gx[i, 0, k] = Σ over the stretched coordinates of w
      const expected = new Array<number>(numel(from)).fill(0)
      for (let i = 0; i < w.length; i++) {
        const k = i % 50
        const r = Math.floor(i / (60 * 50)) % 40
        expected[r * 50 + k] += w[i]
      }
      expectClose(x.grad as Tensor, expected, 1e-14)
      x.grad?.dispose()
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64(randomValues(6, 15), [2, 3])
      expectCode(() => x.expand(2, 4), 'ERR_SHAPE')
      expectCode(() => x.expand(3), 'ERR_SHAPE')
      expectCode(() => x.expand(4, 3), 'ERR_SHAPE')
      expectCode(() => x.expand(-2, 3), 'ERR_ARGUMENT')
      expectCode(() => x.expand(2, 3.5), 'ERR_ARGUMENT')
      expectCode(() => ops.expand(x, 'x' as unknown as number[]), 'ERR_ARGUMENT')
    })
  })
})

describe('clone, cast, detach', () => {
  test('clone copies the data into new storage and is differentiable', () => {
    tidy(() => {
      const v = randomValues(12, 16)
      for (const x of [f64(v, [3, 4]), f32(v, [3, 4])]) {
        const y = x.clone()
        expect(y.shape).toEqual([3, 4])
        expect(y.dtype).toBe(x.dtype)
        expectClose(y, x.toArray(), 0)
        expect(y.handle.sharesStorage(x.handle)).toBe(false)
      }
      gradCheck((t) => t.clone().mul(t), [input([3, 4], 17)])
    })
  })

  test('cast converts values, and the gradient comes back in the input dtype', () => {
    tidy(() => {
      const v = randomValues(12, 18, -100, 100)
      const y = ops.cast(f64(v, [3, 4]), 'float32')
      expect(y.dtype).toBe('float32')
      expectClose(y, v.map(Math.fround), 0)
      const z = ops.cast(f32(v, [3, 4]), 'float64')
      expect(z.dtype).toBe('float64')
      expectClose(z, v.map(Math.fround), 0)
      expect(f64(v, [3, 4]).to({ dtype: 'float32' }).dtype).toBe('float32')

      const x = tensor(v, [3, 4], { dtype: 'float64', requiresGrad: true })
      const w = randomValues(12, 19)
      x.to({ dtype: 'float32' }).mul(f32(w, [3, 4])).sum().backward()
      expect(x.grad?.dtype).toBe('float64')
      expectClose(x.grad as Tensor, w.map(Math.fround), 0)
      x.grad?.dispose()
      gradCheck((t) => ops.cast(t, 'float64').square(), [input([2, 5], 20)])
    })
  })

  test('to() with the same dtype returns the tensor itself', () => {
    tidy(() => {
      const x = f64([1, 2], [2])
      expect(x.to({ dtype: 'float64' })).toBe(x)
      expect(x.to({})).toBe(x)
    })
  })

  test('detach shares storage and cuts the graph', () => {
    tidy(() => {
      const x = tensor(randomValues(6, 21), [2, 3], { dtype: 'float64', requiresGrad: true })
      const y = x.mul(2)
      const d = y.detach()
      expect(d.handle.sharesStorage(y.handle)).toBe(true)
      expect(d.requiresGrad).toBe(false)
      expect(d.isLeaf).toBe(true)
      expect(d.shape).toEqual([2, 3])
      expectClose(d, y.toArray(), 0)
      // a loss through the detached tensor does not reach x
      const loss = y.sum().add(d.mul(d).sum())
      loss.backward()
      expectClose(x.grad as Tensor, [2, 2, 2, 2, 2, 2], 0)
      x.grad?.dispose()
      expectCode(() => d.sum().backward(), 'ERR_ARGUMENT')
    })
  })

  test('errors', () => {
    tidy(() => {
      const x = f64([1, 2], [2])
      expectCode(() => ops.cast(x, 'int8' as unknown as 'float32'), 'ERR_DTYPE')
      expectCode(() => x.to({ dtype: 'float16' as unknown as 'float32' }), 'ERR_DTYPE')
      expectCode(() => ops.clone(3 as unknown as Tensor), 'ERR_ARGUMENT')
      expectCode(() => ops.cast({} as Tensor, 'float32'), 'ERR_ARGUMENT')
      const d = f64([1, 2], [2])
      d.dispose()
      expectCode(() => d.clone(), 'ERR_DISPOSED')
      expectCode(() => d.detach(), 'ERR_DISPOSED')
    })
  })
})
