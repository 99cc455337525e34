/**
 * Replay of the fused actnorm and gaussianNll ops (and their backwards) inside a captured step: replayed outputs
 * and gradients equal, bit for bit, what the ops compute eagerly on the new inputs.
 */
import { ops } from '../../lib'
import { expectReplayMatches } from './replay'

describe('capture: actnorm', () => {
  for (const rev of [false, true])
    for (const dtype of ['float64', 'float32'] as const)
      test(`rev=${rev} ${dtype}: y, log-det and the gradients of x, loc and logScale`, () => {
        const p = { shape: [1, 3, 1, 1] }
        expectReplayMatches([{ shape: [2, 3, 4, 5] }, p, p], (x, loc, ls) => ops.actnorm(x, loc, ls, rev), { dtype })
        expectReplayMatches([{ shape: [6, 3] }, { shape: [1, 3] }, { shape: [1, 3] }], (x, loc, ls) => ops.actnorm(x, loc, ls, rev)[0], { dtype })
        expectReplayMatches([{ shape: [6, 3], grad: false }, { shape: [1, 3] }, { shape: [1, 3] }], (x, loc, ls) => ops.actnorm(x, loc, ls, rev)[1], { dtype })
      })
})

describe('capture: gaussianNll', () => {
  for (const dtype of ['float64', 'float32'] as const)
    test(`${dtype}: the loss and the gradients of z and logJacDet`, () => {
      expectReplayMatches([{ shape: [4, 3, 2] }, { shape: [4] }], (z, l) => ops.gaussianNll(z, l), { dtype })
      expectReplayMatches([{ shape: [5, 7] }], (z) => ops.gaussianNll(z, null), { dtype })
      expectReplayMatches([{ shape: [5, 7], grad: false }, { shape: [5] }], (z, l) => ops.gaussianNll(z, l), { dtype })
    })
})
