import {
  arange, eye, full, getDefaultDtype, getNumThreads, manualSeed, memory, ones, rand, randn, randperm, setDefaultDtype,
  setNumThreads, tensor, Tensor, tidy, zeros, cuda,
} from '../lib'
import { expectClose, expectCode } from './helpers'

describe('creation', () => {
  test('tensor() from number[], Float32Array and Float64Array keeps values and shape', () => {
    tidy(() => {
      const a = tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'float64' })
      expect(a.shape).toEqual([2, 3])
      expect(a.dtype).toBe('float64')
      expect(a.device).toBe('cpu')
      expect(Array.from(a.toArray())).toEqual([1, 2, 3, 4, 5, 6])
      const b = tensor(new Float32Array([0.5, -1.25]), [2])
      expect(b.dtype).toBe('float32')
      expect(Object.prototype.toString.call(b.toArray())).toBe('[object Float32Array]')
      expect(b.toArray()).toBeInstanceOf(Float32Array)
      const c = tensor(new Float64Array([1e-300, 3]), [2, 1], { dtype: 'float64' })
      expect(c.toArray()).toBeInstanceOf(Float64Array)
      expect(c.toArray()[0]).toBe(1e-300)
      expect(tensor([7]).item()).toBe(7)
      expect(tensor([1, 2, 3]).shape).toEqual([3])
      // float64 values rounded to float32
      expect(tensor([0.1], [1], { dtype: 'float32' }).item()).toBe(Math.fround(0.1))
    })
  })

  test('zeros, ones, full, eye, arange', () => {
    tidy(() => {
      expect(Array.from(zeros([2, 2]).toArray())).toEqual([0, 0, 0, 0])
      expect(Array.from(ones([3]).toArray())).toEqual([1, 1, 1])
      expect(Array.from(full([2], 2.5).toArray())).toEqual([2.5, 2.5])
      expect(Array.from(eye(2).toArray())).toEqual([1, 0, 0, 1])
      expect(Array.from(arange(4).toArray())).toEqual([0, 1, 2, 3])
      expect(zeros([0, 3]).size).toBe(0)
      expect(full([], 3).item()).toBe(3)
    })
  })

  test('setDefaultDtype makes new tensors float64, as in PyTorch', () => {
    expect(getDefaultDtype()).toBe('float32')
    setDefaultDtype('float64')
    try {
      tidy(() => {
        expect(zeros([1]).dtype).toBe('float64')
        expect(randn([2]).dtype).toBe('float64')
        expect(tensor([1]).dtype).toBe('float64')
      })
    } finally {
      setDefaultDtype('float32')
    }
    expectCode(() => setDefaultDtype('float16' as 'float32'), 'ERR_DTYPE')
  })

  test('data() resolves to the values; item() needs one element', async () => {
    const t = tensor([1, 2], [2], { dtype: 'float64' })
    expect(Array.from(await t.data())).toEqual([1, 2])
    expectCode(() => t.item(), 'ERR_SHAPE')
    t.dispose()
  })

  test('toString shows values and shape', () => {
    const t = tensor([1, 2, 3, 4], [2, 2])
    expect(t.toString()).toContain('[[1,2],[3,4]]')
    t.dispose()
    expect(t.toString()).toContain('disposed')
  })

  test('bad arguments get InnflowErrors with codes', () => {
    expectCode(() => tensor([1, 2, 3], [2, 2]), 'ERR_SHAPE')
    expectCode(() => tensor('abc' as unknown as number[], [3]), 'ERR_ARGUMENT')
    expectCode(() => tensor([1, 2], [2], { dtype: 'int8' as 'float32' }), 'ERR_DTYPE')
    expectCode(() => zeros([-1, 2]), 'ERR_ARGUMENT')
    expectCode(() => zeros([1.5]), 'ERR_ARGUMENT')
    expectCode(() => full([2], 'x' as unknown as number), 'ERR_ARGUMENT')
    expectCode(() => tensor([1], [1], { device: 'tpu' as 'cpu' }), 'ERR_ARGUMENT')
    expectCode(() => manualSeed(-3), 'ERR_ARGUMENT')
    expectCode(() => tensor([1, 2], [2]).reshape(3), 'ERR_SHAPE')
  })

  // (where a GPU is usable, test/cuda/tensor.test.ts covers the other side)
  ;(cuda.isAvailable() ? test.skip : test)('CUDA requests fail loudly with the reason (no silent CPU fallback)', () => {
    expect(cuda.unavailableReason()).toMatch(/CUDA/)
    expectCode(() => zeros([2], { device: 'cuda' }), 'ERR_CUDA_UNAVAILABLE')
    const t = tensor([1, 2])
    expectCode(() => t.to({ device: 'cuda' }), 'ERR_CUDA_UNAVAILABLE')
    t.dispose()
  })
})

describe('dtype conversion', () => {
  test('to({ dtype }) converts and is differentiable; same dtype returns the tensor itself', () => {
    tidy(() => {
      const a = tensor([1.5, -2.25, 1e-3], [3], { dtype: 'float64', requiresGrad: true })
      const b = a.to({ dtype: 'float32' })
      expect(b.dtype).toBe('float32')
      expectClose(b, [1.5, -2.25, Math.fround(1e-3)], 0)
      expect(a.to({ dtype: 'float64' })).toBe(a)
      b.mul(tensor([1, 2, 3], [3], { dtype: 'float32' })).sum().backward()
      expect(a.grad!.dtype).toBe('float64')
      expectClose(a.grad!, [1, 2, 3], 0)
    })
  })
})

describe('random numbers', () => {
  test('manualSeed makes rand/randn/randperm reproducible; float32 and float64 draw the same numbers', () => {
    tidy(() => {
      manualSeed(123)
      const a = randn([1000], { dtype: 'float64' }).toArray()
      const u = rand([7], { dtype: 'float64' }).toArray()
      manualSeed(123)
      const b = randn([1000], { dtype: 'float32' }).toArray()
      const v = rand([7], { dtype: 'float64' }).toArray()
      expectClose(b, a, 1e-7)
      expect(Array.from(v)).toEqual(Array.from(u))
      manualSeed(124)
      expect(randn([4], { dtype: 'float64' }).toArray()[0]).not.toBe(a[0])
    })
  })

  test('randn has mean 0 and variance 1; rand lies in (0, 1) with mean 1/2', () => {
    tidy(() => {
      manualSeed(5)
      const z = Array.from(randn([200000], { dtype: 'float64' }).toArray())
      const mean = z.reduce((s, x) => s + x, 0) / z.length
      const variance = z.reduce((s, x) => s + (x - mean) ** 2, 0) / z.length
      expect(Math.abs(mean)).toBeLessThan(0.01) // 4.5 standard errors
      expect(Math.abs(variance - 1)).toBeLessThan(0.015)
      const u = Array.from(rand([100000], { dtype: 'float64' }).toArray())
      expect(Math.min(...u)).toBeGreaterThan(0)
      expect(Math.max(...u)).toBeLessThan(1)
      expect(Math.abs(u.reduce((s, x) => s + x, 0) / u.length - 0.5)).toBeLessThan(0.005)
    })
  })

  test('randperm is a permutation', () => {
    tidy(() => {
      manualSeed(1)
      const p = Array.from(randperm(50).toArray())
      expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i))
      expect(p).not.toEqual(Array.from({ length: 50 }, (_, i) => i))
    })
  })

  test('results do not depend on the number of threads', () => {
    const before = getNumThreads()
    try {
      setNumThreads(1)
      manualSeed(9)
      const a = tidy(() => randn([50001], { dtype: 'float64' }).exp().sum().item())
      setNumThreads(3)
      manualSeed(9)
      const b = tidy(() => randn([50001], { dtype: 'float64' }).exp().sum().item())
      expect(b).toBe(a)
      expectCode(() => setNumThreads(0), 'ERR_ARGUMENT')
    } finally {
      setNumThreads(before)
    }
  })
})

describe('disposal', () => {
  test('dispose frees, is idempotent, and later use throws ERR_DISPOSED', () => {
    const before = memory().tensors
    const t = tensor([1, 2, 3])
    expect(memory().tensors).toBe(before + 1)
    t.dispose()
    t.dispose()
    expect(t.isDisposed).toBe(true)
    expect(memory().tensors).toBe(before)
    expectCode(() => t.toArray(), 'ERR_DISPOSED')
    expectCode(() => t.add(1), 'ERR_DISPOSED')
    const u = tensor([1, 2, 3])
    expectCode(() => u.add(t), 'ERR_DISPOSED')
    u.dispose()
  })

  test('Symbol.dispose works with `using`', () => {
    const before = memory().tensors
    {
      using t = zeros([4])
      expect(t.size).toBe(4)
      expect(memory().tensors).toBe(before + 1)
    }
    expect(memory().tensors).toBe(before)
  })

  test('a view keeps the storage alive after the original is disposed', () => {
    const a = tensor([1, 2, 3, 4], [2, 2])
    const b = a.reshape(4)
    a.dispose()
    expect(Array.from(b.toArray())).toEqual([1, 2, 3, 4])
    b.dispose()
  })

  test('Tensor is exported for instanceof checks', () => {
    const t = zeros([1])
    expect(t).toBeInstanceOf(Tensor)
    t.dispose()
  })
})
