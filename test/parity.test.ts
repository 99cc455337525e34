/**
 * FrEIA parity: every fixture in ../shared/parity is rebuilt through the public API, loaded with FrEIA's
 * state dict, and must reproduce FrEIA's outputs, log-dets, inverses and gradients (float64 to 1e-9,
 * float32 to 1e-4 / 1e-3). New fixture files are picked up automatically.
 */
import { listCases } from './parity-build'
import { runParityCase } from './parity-run'

const cases = listCases()

describe('FrEIA parity fixtures', () => {
  test('the fixture directory holds cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25)
  })
  test.each(cases)('%s (float64, 1e-9)', (name) => runParityCase(name, 'float64'))
  test.each(cases)('%s (float32, 1e-4 / 1e-3)', (name) => runParityCase(name, 'float32'))
})
