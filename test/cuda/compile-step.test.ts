/**
 * compileStep on the GPU: the compiled step (replayed as CUDA graphs between the optimiser and random-number
 * launches) computes what the eager GPU step computes, and with cudaGraphs: false too.
 */
import { maxRel, paramRel, RunOptions, trainRun } from '../framework/compile-step-runs'
import { describeCuda } from './compare'

describeCuda('compileStep on the GPU', () => {
  const cases: [string, RunOptions][] = [
    ['CUDA graphs, float32', { dtype: 'float32' }],
    ['CUDA graphs, float64, noise and a schedule', { dtype: 'float64', noise: true, schedule: true }],
    ['CUDA graphs, GraphINN, SGD and clipping', { graph: true, optimizer: 'sgd', clip: 1 }],
    ['host replay (cudaGraphs: false)', { cudaGraphs: false }],
  ]
  test.each(cases)('%s: 50 steps equal eager GPU training', (_, o) => {
    const eager = trainRun({ ...o, device: 'cuda', compiled: false })
    const compiled = trainRun({ ...o, device: 'cuda', compiled: true })
    expect(compiled.losses.every(Number.isFinite)).toBe(true)
    expect(maxRel(compiled.losses, eager.losses)).toBeLessThanOrEqual(1e-6)
    expect(paramRel(compiled.params, eager.params)).toBeLessThanOrEqual(1e-6)
    expect(compiled.losses[49]).toBeLessThan(compiled.losses[0])
    if (o.cudaGraphs === false) expect(compiled.graphs).toBe(0)
    else expect(compiled.graphs).toBeGreaterThanOrEqual(1)
  })
})
