/** The replay harness itself: it passes for kernels that are kept and fails for ones that are not. */
import { Tensor, tensor } from '../../lib'
import { core } from '../../lib/binding'
import { captureNative } from '../../lib/capture'
import { expectReplayMatches } from './replay'

describe('capture harness', () => {
  test('cast, copyInto and toDevice replay', () => {
    expectReplayMatches([{ shape: [3, 4] }], (x) => x.to({ dtype: 'float32' }), { backward: false })
    expectReplayMatches([{ shape: [5] }], (x) => {
      const y = tensor([0, 0, 0, 0, 0], [5], { dtype: 'float64' })
      core.copyInto(y.handle, x.handle)
      return y
    }, { backward: false })
  })

  test('a kernel that is not kept fails the harness', () => {
    // a host-side computation (not a native kernel) cannot be replayed: the harness must notice
    expect(() =>
      expectReplayMatches([{ shape: [4] }], (x) => {
        const y = tensor([1, 2, 3, 4], [4], { dtype: 'float64' })
        void x
        return y
      }, { backward: false }),
    ).toThrow()
  })

  test('reading values while capturing is ERR_CAPTURE, and the capture can be aborted', () => {
    const x = tensor([1, 2, 3], [3])
    captureNative.captureBegin()
    try {
      expect(() => x.toArray()).toThrow(expect.objectContaining({ code: 'ERR_CAPTURE' }))
      expect(() => x.sum().item()).toThrow(expect.objectContaining({ code: 'ERR_CAPTURE' }))
      expect(() => captureNative.captureBegin()).toThrow(expect.objectContaining({ code: 'ERR_CAPTURE' }))
    } finally {
      captureNative.captureAbort()
    }
    expect(captureNative.isCapturing()).toBe(false)
    expect(Array.from(x.toArray())).toEqual([1, 2, 3])
    void Tensor
  })

  test('random draws advance the generator at each replay', () => {
    captureNative.captureBegin()
    const r = tensor([0], [1]).add(0) // something static too
    const noise = (require('../../lib') as typeof import('../../lib')).randn([8])
    const program = captureNative.captureEnd(false)
    const first = Array.from(noise.toArray())
    captureNative.runProgram(program)
    const second = Array.from(noise.toArray())
    expect(second).not.toEqual(first)
    expect(captureNative.programInfo(program).dynamicKernels).toBeGreaterThanOrEqual(1)
    void r
  })
})
