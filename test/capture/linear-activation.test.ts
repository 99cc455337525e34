/**
 * Replay of linear with an activation (forward, and linearActivationBackward with every subset of wanted
 * gradients) and of a Sequential whose Linear + ReLU pairs run fused, inside a captured step: replayed outputs and
 * gradients equal, bit for bit, what the ops compute eagerly on the new inputs.
 */
import { nn, ops, Tensor } from '../../lib'
import { expectReplayMatches } from './replay'

describe('capture: linear with an activation', () => {
  for (const activation of ['relu', 'tanh'] as const)
    for (const dtype of ['float64', 'float32'] as const) {
      test(`${activation} with bias, all gradients (${dtype})`, () => {
        expectReplayMatches([{ shape: [6, 5] }, { shape: [4, 5] }, { shape: [4] }], (x, w, b) => ops.linear(x, w, b, { activation }), { dtype })
      })
      test(`${activation} without bias, batched x (${dtype})`, () => {
        expectReplayMatches([{ shape: [2, 3, 5] }, { shape: [4, 5] }], (x, w) => ops.linear(x, w, null, { activation }), { dtype })
      })
    }

  test('only the weight gradient, only x and the bias', () => {
    expectReplayMatches([{ shape: [6, 5], grad: false }, { shape: [4, 5] }, { shape: [4], grad: false }], (x, w, b) => ops.linear(x, w, b, { activation: 'relu' }))
    expectReplayMatches([{ shape: [6, 5] }, { shape: [4, 5], grad: false }, { shape: [4] }], (x, w, b) => ops.linear(x, w, b, { activation: 'relu' }))
  })

  test('forward only', () => {
    expectReplayMatches([{ shape: [6, 5] }, { shape: [4, 5] }, { shape: [4] }], (x, w, b) => ops.linear(x, w, b, { activation: 'relu' }), { backward: false })
  })

  test('a Sequential subnet with fused Linear + ReLU pairs', () => {
    const net = new nn.Sequential(new nn.Linear(5, 16, { dtype: 'float64' }), new nn.ReLU(), new nn.Linear(16, 16, { dtype: 'float64' }), new nn.ReLU(), new nn.Linear(16, 3, { dtype: 'float64' }))
    const params = net.parameters()
    // the input's gradient is replayed; the parameters' gradients flow through the same backward kernels
    expectReplayMatches([{ shape: [7, 5] }], (x) => net.forward(x) as Tensor)
    expect(params.length).toBe(6)
  })
})
