/**
 * Training on the GPU tracks training on the CPU: the same moons flow (same initial parameters, same batches)
 * trained for 20 Adam steps on both devices gives the same losses and parameters up to rounding.
 */
import { data, Device, DType, manualSeed, modules, nn, optim, SequenceINN, setDefaultDtype, Tensor, tidy } from '../../lib'
import { describeCuda } from './compare'

function trainMoons(device: Device, dtype: DType, steps: number): { losses: number[]; params: number[][] } {
  setDefaultDtype(dtype)
  try {
    manualSeed(7)
    const flow = new SequenceINN(2)
    for (let k = 0; k < 4; k++)
      flow.append(modules.AllInOneBlock, {
        subnetConstructor: (cin: number, cout: number) => new nn.Sequential(new nn.Linear(cin, 64), new nn.ReLU(), new nn.Linear(64, cout)),
        permuteSoft: true,
      })
    flow.append(modules.ActNorm)
    flow.to({ device })
  // ActNorm initialises itself on its own batch, not on the first training batch: there its data-dependent init
  // makes the loss stationary in ActNorm's loc and the offset before it, so their first gradients would be pure
  // rounding noise, which Adam turns into ±lr steps that differ between any two float32 backends.
  tidy(() => {
    flow.forward(data.moons(256, { dtype }).to({ device }))
  })
    const opt = new optim.Adam(flow.parameters(), { lr: 1e-3 })
    manualSeed(11)
    const batches: Tensor[] = tidy(() => Array.from({ length: steps }, () => data.moons(256, { dtype })))
    const losses: number[] = []
    for (const batch of batches) {
      losses.push(
        tidy(() => {
          const x = batch.to({ device })
          const [z, logJacDet] = flow.forward(x)
          const loss = z.square().sum(1).mul(0.5).sub(logJacDet).mean()
          opt.zeroGrad()
          loss.backward()
          opt.step()
          return loss.item()
        }),
      )
      batch.dispose()
    }
    const params = flow.parameters().map((p) => Array.from(p.toArray()))
    opt.dispose()
    return { losses, params }
  } finally {
    setDefaultDtype('float32')
  }
}

describeCuda('moons training on the GPU tracks the CPU', () => {
  test.each([
    ['float64', 1e-9, 1e-8],
    ['float32', 2e-4, 2e-3],
  ] as const)('%s: 20 Adam steps, losses and parameters agree', (dtype, lossTol, paramTol) => {
    const cpu = trainMoons('cpu', dtype, 20)
    const gpu = trainMoons('cuda', dtype, 20)
    expect(gpu.losses.length).toBe(20)
    gpu.losses.forEach((l, i) => {
      expect(Number.isFinite(l)).toBe(true)
      expect(Math.abs(l - cpu.losses[i]) / Math.abs(cpu.losses[i])).toBeLessThanOrEqual(lossTol)
    })
    expect(gpu.losses[19]).toBeLessThan(gpu.losses[0])
    cpu.params.forEach((p, i) => {
      let num = 0
      let den = 0
      p.forEach((v, j) => {
        num += (gpu.params[i][j] - v) ** 2
        den += v * v
      })
      expect(Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-12)).toBeLessThanOrEqual(paramTol)
    })
  })
})
