/**
 * The FrEIA parity fixtures on the GPU, in float32 (outputs ≤ 1e-4, gradients ≤ 1e-3, as on the CPU): every
 * network is built, loaded with FrEIA's state dict, moved with `inn.to({ device: 'cuda' })` and run there.
 */
import { listCases } from '../parity-build'
import { runParityCase } from '../parity-run'
import { describeCuda } from './compare'

const cases = listCases()

describeCuda('FrEIA parity fixtures on the GPU', () => {
  test.each(cases)('%s (cuda, float32, 1e-4 / 1e-3)', (name) => runParityCase(name, 'float32', 'cuda'))
  test.each(cases)('%s (cuda, float64, 1e-9)', (name) => runParityCase(name, 'float64', 'cuda'))
})
