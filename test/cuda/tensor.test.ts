/**
 * Device tensors: creation on the GPU, copies both ways, dtype conversion there, reading values back,
 * modules moved in place, memory accounting, and the errors for mixing devices.
 */
import { cuda, full, memory, modules, nn, ones, optim, SequenceINN, tensor, Tensor, tidy, zeros } from '../../lib'
import { expectCode, randomValues } from '../helpers'
import { describeCuda, expectRel } from './compare'

describeCuda('CUDA tensors', () => {
  test('tensor() on the GPU holds the values; toArray/item/data read them back', async () => {
    const v = randomValues(1000, 1)
    for (const dtype of ['float32', 'float64'] as const) {
      const t = tensor(v, [10, 100], { dtype, device: 'cuda' })
      expect(t.device).toBe('cuda')
      expect(t.dtype).toBe(dtype)
      expectRel(t.toArray(), dtype === 'float32' ? Float32Array.from(v) : v, 0, 'values')
      expectRel(await t.data(), dtype === 'float32' ? Float32Array.from(v) : v, 0, 'data()')
      expect(t.reshape([1000]).narrow(0, 3, 1).item()).toBe(dtype === 'float32' ? Math.fround(v[3]) : v[3])
      t.dispose()
    }
  })

  test('full/zeros/ones fill on the device', () => {
    tidy(() => {
      expect(Array.from(full([3, 7], 2.5, { device: 'cuda' }).toArray())).toEqual(new Array(21).fill(2.5))
      expect(Array.from(zeros([1025], { device: 'cuda' }).toArray()).every((x) => x === 0)).toBe(true)
      expect(Array.from(ones([5], { device: 'cuda', dtype: 'float64' }).toArray())).toEqual([1, 1, 1, 1, 1])
      expect(zeros([0], { device: 'cuda' }).toArray().length).toBe(0)
    })
  })

  test('to() moves between devices and converts dtype there; gradients flow back across the move', () => {
    tidy(() => {
      const v = randomValues(257, 2)
      const x = tensor(v, [257], { dtype: 'float64', requiresGrad: true })
      const g = x.to({ device: 'cuda' })
      expect(g.device).toBe('cuda')
      const h = g.to({ dtype: 'float32' })
      expect(h.dtype).toBe('float32')
      expectRel(h.toArray(), Float32Array.from(v), 0, 'cast on device')
      const back = h.to({ device: 'cpu', dtype: 'float64' })
      expect(back.device).toBe('cpu')
      back.mul(tensor(randomValues(257, 3), [257], { dtype: 'float64' })).sum().backward()
      expect(x.grad?.device).toBe('cpu')
      expectRel(x.grad!.toArray(), Float64Array.from(randomValues(257, 3), (w) => Math.fround(w)), 1e-7, 'gradient through to()')
    })
  })

  test('module.to({ device }) moves parameters and buffers in place; an optimiser made before keeps working', () => {
    tidy(() => {
      const inn = new SequenceINN(2)
      for (let k = 0; k < 2; k++)
        inn.append(modules.AllInOneBlock, {
          subnetConstructor: (cin: number, cout: number) => new nn.Sequential(new nn.Linear(cin, 16), new nn.ReLU(), new nn.Linear(16, cout)),
          permuteSoft: false,
        })
      const params = inn.parameters()
      const before = params.map((p) => Array.from(p.toArray()))
      const opt = new optim.Adam(params, { lr: 1e-3 })
      inn.to({ device: 'cuda' })
      expect(inn.parameters()).toEqual(params) // same objects
      for (const p of inn.parameters()) expect(p.device).toBe('cuda')
      for (const b of inn.buffers()) expect(b.device).toBe('cuda')
      params.forEach((p, i) => expectRel(p.toArray(), before[i], 0, 'moved values'))
      const x = tensor(randomValues(64, 4), [32, 2], { device: 'cuda' })
      const [z, logDet] = inn.forward(x)
      z.square().sum(1).mul(0.5).sub(logDet).mean().backward()
      opt.step()
      for (const p of inn.parameters()) expect(p.device).toBe('cuda')
      inn.to({ device: 'cpu' })
      for (const p of inn.parameters()) expect(p.device).toBe('cpu')
      opt.dispose()
    })
  })

  test('memory() counts device storages; emptyCache() returns the pool', () => {
    const before = memory()
    const t = zeros([1 << 20], { device: 'cuda' })
    expect(memory().cudaBytes - before.cudaBytes).toBeGreaterThanOrEqual(4 << 20)
    expect(cuda.memory().usedBytes).toBeGreaterThanOrEqual(4 << 20)
    t.dispose()
    expect(memory().cudaBytes).toBe(before.cudaBytes)
  })

  test('mixing devices is ERR_DEVICE, never an implicit copy', () => {
    tidy(() => {
      const a = tensor([1, 2, 3], [3], { device: 'cuda' })
      const b = tensor([1, 2, 3], [3])
      expectCode(() => a.add(b), 'ERR_DEVICE')
      expectCode(() => b.mul(a), 'ERR_DEVICE')
      expectCode(() => a.matmul(b.reshape([3, 1])), 'ERR_DEVICE')
      const lin = new nn.Linear(3, 2)
      expectCode(() => lin.forward(a.reshape([1, 3])), 'ERR_DEVICE')
    })
  })

  test('out of device memory is ERR_OOM and leaves the process usable', () => {
    const total = cuda.memory().totalBytes
    expectCode(() => zeros([Math.ceil((total * 2) / 4)], { device: 'cuda' }), 'ERR_OOM')
    const t: Tensor = ones([4], { device: 'cuda' })
    expect(Array.from(t.toArray())).toEqual([1, 1, 1, 1])
    t.dispose()
  })
})
