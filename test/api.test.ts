/**
 * The pinned public API of DESIGN.md ("Public API (pinned)"): acceptance checks outside the project call
 * exactly these names, so their presence and calling conventions are tested here.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as innflow from '../lib'

test('every pinned export exists', () => {
  const names = [
    'SequenceINN', 'GraphINN', 'InputNode', 'ConditionNode', 'OutputNode', 'Node', 'InvertibleModule', 'modules', 'nn',
    'optim', 'io', 'data', 'Tensor', 'tensor', 'zeros', 'ones', 'randn', 'manualSeed', 'setDefaultDtype',
    'getDefaultDtype', 'noGrad', 'tidy', 'keep', 'memory', 'cuda', 'InnflowError',
  ]
  for (const n of names) expect((innflow as Record<string, unknown>)[n]).toBeDefined()
  expect(typeof innflow.cuda.isAvailable()).toBe('boolean')
})

test('the calling conventions of DESIGN.md', () => {
  innflow.tidy(() => {
    innflow.manualSeed(0)
    const t = innflow.tensor(new Float64Array([1, 2, 3, 4]), [2, 2], { dtype: 'float64', device: 'cpu', requiresGrad: true })
    expect([t.shape, t.dtype, t.device, t.requiresGrad, t.grad]).toEqual([[2, 2], 'float64', 'cpu', true, null])
    t.square().sum().backward()
    expect(Array.from(t.grad!.toArray())).toEqual([2, 4, 6, 8])
    expect(t.sum().item()).toBe(10)
    expect(t.to({ dtype: 'float32' }).dtype).toBe('float32')
    const chain = t.add(1).sub(t).mul(2).div(2).neg().exp().log().square().sum(1).mean(0).reshape([1])
    expect(chain.shape).toEqual([1])

    const subnet = (cIn: number, cOut: number) => new innflow.nn.Sequential(new innflow.nn.Linear(cIn, 16), new innflow.nn.ReLU(), new innflow.nn.Linear(16, cOut))
    const flow = new innflow.SequenceINN(2)
    flow.append(innflow.modules.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
    flow.append(innflow.modules.RNVPCouplingBlock, { subnetConstructor: subnet, cond: 0, condShape: [3] })
    const x = innflow.data.moons(8)
    const c = innflow.randn([8, 3])
    const [z, logJacDet] = flow.forward(x, { c: [c], jac: true })
    expect([z.shape, logJacDet.shape]).toEqual([[8, 2], [8]])
    const [xr] = flow.forward(z, { c: [c], rev: true })
    expect(xr.shape).toEqual([8, 2])
    const names = flow.namedParameters().map(([n]) => n)
    expect(names).toContain('module_list.0.global_scale')
    expect(names).toContain('module_list.1.subnet_s1.0.weight')
    expect(Object.keys(flow.stateDict())).toContain('module_list.0.w_perm')
    flow.loadStateDict(flow.stateDict(), { strict: true })
    flow.eval().train()

    const opt = new innflow.optim.Adam(flow.parameters(), { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 })
    opt.zeroGrad()
    z.square().sum().backward()
    opt.step()
    opt.dispose()

    const inp = new innflow.InputNode(2, { name: 'in' })
    const cond = new innflow.ConditionNode(3, { name: 'c' })
    const n1 = new innflow.Node(inp, innflow.modules.GLOWCouplingBlock, { subnetConstructor: subnet }, { conditions: cond, name: 'glow' })
    const n2 = new innflow.Node([n1, 0], innflow.modules.PermuteRandom, { seed: 1 })
    const out = new innflow.OutputNode(n2.out0, { name: 'out' })
    const graph = new innflow.GraphINN([inp, cond, n1, n2, out])
    const [gz, gj] = graph.forward(x, { c: [c] })
    expect([(gz as innflow.Tensor).shape, gj.shape]).toEqual([[8, 2], [8]])

    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'innflow-api-')), 'model.safetensors')
    innflow.io.saveSafetensors(file, graph.stateDict(), { note: 'api test' })
    const loaded = innflow.io.loadSafetensors(file)
    expect(loaded.metadata.note).toBe('api test')
    graph.loadStateDict(loaded.tensors)

    const { images, labels } = innflow.data.digits()
    expect([images.shape, labels.shape]).toEqual([[1797, 64], [1797]])
    expect(innflow.data.eightGaussians(4).shape).toEqual([4, 2])
    expect(innflow.data.checkerboard(4).shape).toEqual([4, 2])
    expect(innflow.data.moons(4, { noise: 0.05 }).shape).toEqual([4, 2])
    const conv = new innflow.nn.Conv2d(3, 4, 3, { stride: 1, padding: 1, bias: true })
    expect(conv.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias'])
    expect(new innflow.nn.Linear(3, 4, { bias: false }).parameters()).toHaveLength(1)
  })
  const err = new innflow.InnflowError('ERR_SHAPE', 'x')
  expect(err.code).toBe('ERR_SHAPE')
})
