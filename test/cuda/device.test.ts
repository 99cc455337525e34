/**
 * The CUDA backend library loads (or its absence is explained) on any machine; on a machine without a GPU
 * every CUDA request fails with ERR_CUDA_UNAVAILABLE and a specific reason.
 */
import { cuda, tensor, zeros } from '../../lib'
import { expectCode } from '../helpers'

describe('CUDA availability', () => {
  test('isAvailable and unavailableReason agree; the reason names the missing piece', () => {
    const available = cuda.isAvailable()
    const reason = cuda.unavailableReason()
    if (available) {
      expect(reason).toBeNull()
      expect(cuda.deviceName().length).toBeGreaterThan(0)
      expect(cuda.memory().totalBytes).toBeGreaterThan(0)
    } else {
      expect(reason).toMatch(/CUDA|cuBLAS/)
      expect(reason).toMatch(/driver|device|built without|could not be loaded|cuBLAS/)
      expectCode(() => cuda.deviceName(), 'ERR_CUDA_UNAVAILABLE')
      expectCode(() => cuda.memory(), 'ERR_CUDA_UNAVAILABLE')
    }
  })

  test('without a usable GPU, CUDA tensors are refused with the reason, never created on the CPU instead', () => {
    const t = tensor([1, 2])
    if (cuda.isAvailable()) {
      const z = zeros([2], { device: 'cuda' })
      const g = t.to({ device: 'cuda' })
      expect([z.device, g.device]).toEqual(['cuda', 'cuda'])
      z.dispose()
      g.dispose()
    } else {
      expectCode(() => zeros([2], { device: 'cuda' }), 'ERR_CUDA_UNAVAILABLE')
      expectCode(() => t.to({ device: 'cuda' }), 'ERR_CUDA_UNAVAILABLE')
    }
    t.dispose()
  })

  test('INNFLOW_DEVICE selects the default device and is validated', () => {
    const saved = process.env.INNFLOW_DEVICE
    try {
      process.env.INNFLOW_DEVICE = 'cuda'
      if (cuda.isAvailable()) {
        const z = zeros([1])
        expect(z.device).toBe('cuda')
        z.dispose()
      } else {
        expectCode(() => zeros([1]), 'ERR_CUDA_UNAVAILABLE')
      }
      process.env.INNFLOW_DEVICE = 'cpu'
      const c = zeros([1])
      expect(c.device).toBe('cpu')
      c.dispose()
      process.env.INNFLOW_DEVICE = 'tpu'
      expectCode(() => zeros([1]), 'ERR_DEVICE')
    } finally {
      if (saved === undefined) delete process.env.INNFLOW_DEVICE
      else process.env.INNFLOW_DEVICE = saved
    }
  })
})
