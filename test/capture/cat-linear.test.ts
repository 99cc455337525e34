/**
 * Replay of catLinear (forward, and catLinearBackward with several subsets of wanted gradients) inside a captured
 * step: replayed outputs and gradients equal, bit for bit, what the op computes eagerly on the new inputs.
 */
import { ops } from '../../lib'
import { expectReplayMatches } from './replay'

describe('capture: catLinear', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`two parts with bias, all gradients (${dtype})`, () => {
      expectReplayMatches([{ shape: [6, 3] }, { shape: [6, 4] }, { shape: [5, 7] }, { shape: [5] }], (x1, x2, w, b) => ops.catLinear([x1, x2], w, b), { dtype })
    })
    test(`three parts (one of width 1) without bias (${dtype})`, () => {
      expectReplayMatches([{ shape: [4, 2] }, { shape: [4, 1] }, { shape: [4, 3] }, { shape: [3, 6] }], (x1, x2, x3, w) => ops.catLinear([x1, x2, x3], w), { dtype })
    })
  }

  test('only some gradients', () => {
    expectReplayMatches([{ shape: [6, 3], grad: false }, { shape: [6, 4] }, { shape: [5, 7] }, { shape: [5], grad: false }], (x1, x2, w, b) => ops.catLinear([x1, x2], w, b))
    expectReplayMatches([{ shape: [6, 3] }, { shape: [6, 4], grad: false }, { shape: [5, 7], grad: false }, { shape: [5] }], (x1, x2, w, b) => ops.catLinear([x1, x2], w, b))
  })

  test('forward only', () => {
    expectReplayMatches([{ shape: [6, 3] }, { shape: [6, 4] }, { shape: [5, 7] }, { shape: [5] }], (x1, x2, w, b) => ops.catLinear([x1, x2], w, b), { backward: false })
  })
})
