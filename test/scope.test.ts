import { keep, memory, ones, resetPeak, tensor, tidy, zeros } from '../lib'
import { expectCode } from './helpers'

describe('tidy, keep and memory', () => {
  test('tidy disposes intermediates and keeps the result', () => {
    const before = memory()
    const result = tidy(() => {
      const a = ones([100])
      const b = a.mul(2).add(1)
      return b.sum()
    })
    expect(result.item()).toBe(300)
    expect(memory().tensors).toBe(before.tensors + 1)
    result.dispose()
    expect(memory().tensors).toBe(before.tensors)
    expect(memory().bytes).toBe(before.bytes)
  })

  test('arrays and objects of tensors survive; keep() survives; nested tidy hands results outwards', () => {
    const before = memory().tensors
    let kept = zeros([1])
    const out = tidy(() => {
      kept = keep(ones([2]))
      const inner = tidy(() => [ones([3]), { x: ones([4]) }] as const)
      zeros([5]) // dropped
      return { inner, y: ones([6]) }
    })
    expect(memory().tensors).toBe(before + 1 /* first zeros */ + 1 /* kept */ + 3)
    expect(out.inner[0].size).toBe(3)
    expect(out.inner[1].x.size).toBe(4)
    expect(kept.size).toBe(2)
    for (const t of [out.inner[0], out.inner[1].x, out.y, kept]) t.dispose()
  })

  test('tidy disposes everything when fn throws, and refuses async functions', () => {
    const before = memory().tensors
    expect(() =>
      tidy(() => {
        ones([10])
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(memory().tensors).toBe(before)
    expectCode(() => tidy((async () => ones([1])) as unknown as () => void), 'ERR_ARGUMENT')
    expect(memory().tensors).toBe(before)
  })

  test('a training-like step inside tidy leaks nothing (gradients belong to their leaves)', () => {
    const w = keep(tensor([0.5, -0.25, 2], [3], { dtype: 'float64', requiresGrad: true }))
    const x = keep(tensor([1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'float64' }))
    const step = () =>
      tidy(() => {
        const loss = x.mul(w).sum(1).square().mean()
        loss.backward()
        return loss.item()
      })
    step()
    const before = memory()
    step()
    step()
    expect(memory().tensors).toBe(before.tensors)
    expect(memory().bytes).toBe(before.bytes)
    w.grad?.dispose()
    w.dispose()
    x.dispose()
  })

  test('peakBytes is the high-water mark of live host bytes since resetPeak()', () => {
    resetPeak()
    const base = memory()
    expect(base.peakBytes).toBe(base.bytes)
    const big = zeros([1 << 18], { dtype: 'float64' }) // 2 MiB
    const mid = memory()
    expect(mid.peakBytes).toBe(mid.bytes)
    expect(mid.bytes - base.bytes).toBeGreaterThanOrEqual(8 * (1 << 18))
    big.dispose()
    const after = memory()
    expect(after.bytes).toBe(base.bytes)
    expect(after.peakBytes).toBe(mid.bytes) // still remembers the freed block
    resetPeak()
    expect(memory().peakBytes).toBe(base.bytes)
    // a peak inside tidy is seen after it: the intermediates are gone, the mark is not
    tidy(() => ones([1 << 16]).mul(2).sum().item())
    expect(memory().bytes).toBe(base.bytes)
    expect(memory().peakBytes).toBeGreaterThanOrEqual(base.bytes + 2 * 4 * (1 << 16))
  })
})
