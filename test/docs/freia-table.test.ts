/**
 * docs/freia-to-innflow.md must stay true: every innflow module it names exists, every option it names is one
 * the module accepts, and the framework names it uses exist.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as innflow from '../../lib'

const root = path.resolve(__dirname, '../..')
const doc = fs.readFileSync(path.join(root, 'docs/freia-to-innflow.md'), 'utf8')
const modules = innflow.modules as unknown as Record<string, new (dims: number[][], opts: object) => unknown>

/** Rows of the modules table: innflow class names and the innflow spellings after each arrow. */
function moduleRows(): { line: string; classes: string[]; names: string[] }[] {
  const section = doc.slice(doc.indexOf('## Modules'), doc.indexOf('## Distributions'))
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((line) => {
      const cols = line.split(' | ')
      return {
        line,
        classes: [...cols[1].matchAll(/modules\.(\w+)/g)].map((m) => m[1]),
        names: [...cols.slice(2).join(' | ').matchAll(/→ `(\w+)`/g)].map((m) => m[1]),
      }
    })
}

/** The options a module accepts, from its unknown-option error, or null where it does not check names. */
function acceptedOptions(cls: new (dims: number[][], opts: object) => unknown): string[] | null {
  for (const dims of [[[4]], [[4, 4, 4]], [[4], [4]], [[4, 4, 4], [4, 4, 4]]]) {
    try {
      innflow.tidy(() => void new cls(dims, { probeOption: 1 }))
    } catch (e) {
      const m = /accepted options: (.*)$/.exec((e as Error).message)
      if (m) return m[1].split(', ')
    }
  }
  return null
}

/** The source file that defines `export class name`. */
function sourceOf(name: string): string {
  const dir = path.join(root, 'lib/modules')
  for (const f of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8')
    if (new RegExp(`export (abstract )?class ${name}\\b`).test(text)) return text
  }
  throw new Error(`no lib/modules file defines ${name}`)
}

test('the modules table covers every FrEIA module and names real classes', () => {
  const rows = moduleRows()
  expect(rows.length).toBeGreaterThanOrEqual(38)
  const freia = ['AllInOneBlock', 'ActNorm', 'HouseholderPerm', 'IResNetLayer', 'InvAutoAct', 'InvAutoActFixed', 'InvAutoActTwoSided',
    'InvAutoConv2D', 'InvAutoFC', 'LearnedElementwiseScaling', 'NICECouplingBlock', 'RNVPCouplingBlock', 'GLOWCouplingBlock',
    'GINCouplingBlock', 'AffineCouplingOneSided', 'ConditionalAffineTransform', 'PermuteRandom', 'FixedLinearTransform',
    'Fixed1x1Conv', 'InvertibleSigmoid', 'SplitChannel', 'ConcatChannel', 'Split', 'Concat', 'OrthogonalTransform',
    'IRevNetDownsampling', 'IRevNetUpsampling', 'HaarDownsampling', 'HaarUpsampling', 'Flatten', 'Reshape',
    'GaussianMixtureModel', 'LinearSpline', 'RationalQuadraticSpline', 'ElementwiseRationalQuadraticSpline', 'Split1D',
    'Concat1d', 'BinnedSpline', 'BinnedSplineBase', 'Inverse']
  const named = new Set(rows.flatMap((r) => r.classes))
  expect(freia.filter((n) => !named.has(n))).toEqual([])
  for (const r of rows) for (const c of r.classes) expect([c, typeof modules[c]]).toEqual([c, 'function'])
})

/** Deprecated aliases: their options live with the class they extend. */
const ALIAS_OF: Record<string, string> = { SplitChannel: 'Split', Split1D: 'Split', ConcatChannel: 'Concat', Concat1d: 'Concat', InvAutoActFixed: 'InvAutoAct' }

test('every option the modules table names is accepted by the module', () => {
  const wrong: string[] = []
  for (const { classes, names } of moduleRows()) {
    for (const c of classes) {
      if (c === 'Inverse') continue
      const cls = modules[c]
      const accepted = acceptedOptions(cls)
      const source = sourceOf(ALIAS_OF[c] ?? c)
      for (const n of names) {
        const isMember = n in cls || n in (cls.prototype as object)
        const ok = isMember || (accepted ? accepted.includes(n) : new RegExp(`\\b${n}\\?:`).test(source))
        if (!ok) wrong.push(`${c}: ${n}`)
      }
    }
  }
  expect(wrong).toEqual([])
})

test('the framework names of the table exist', () => {
  innflow.tidy(() => {
    const subnet = (cIn: number, cOut: number) => new innflow.nn.Linear(cIn, cOut)
    const seq = new innflow.SequenceINN(2).append(innflow.modules.AllInOneBlock, { subnetConstructor: subnet })
    expect([seq.length, seq.at(0).dimsIn, seq.shapes, seq.conditions, [...seq].length]).toEqual([1, [[2]], [[2], [2]], [null], 1])
    expect(seq.moduleList).toBeDefined()
    const inp = new innflow.InputNode(4, { name: 'in' })
    const cond = new innflow.ConditionNode(3, { name: 'c' })
    const split = new innflow.Node(inp, innflow.modules.Split, {}, { name: 'split' })
    const a = new innflow.Node(split.out0, innflow.modules.AllInOneBlock, { subnetConstructor: subnet }, { conditions: cond, name: 'a' })
    const cat = new innflow.Node([a.out(0), [split, 1] as const], innflow.modules.Concat, {}, { name: 'cat' })
    const out = new innflow.OutputNode(cat.out0, { name: 'out' })
    const g = new innflow.GraphINN([inp, cond, split, a, cat, out], { forceTupleOutput: true })
    expect([g.nodeList.length, g.inNodes.length, g.outNodes.length, g.conditionNodes.length]).toEqual([6, 1, 1, 1])
    expect(split.out1).toEqual([split, 1])
    const [z, logJacDet] = g.forward(innflow.randn([5, 4]), { c: [innflow.randn([5, 3])], rev: false, jac: true })
    expect(Array.isArray(z)).toBe(true)
    expect(logJacDet.shape).toEqual([5])
    const inv = new innflow.modules.Inverse(seq)
    expect(inv.dimsIn).toEqual([[2]])
    const normal = new innflow.distributions.StandardNormal(2)
    expect(normal.logProb(normal.sample(4)).shape).toEqual([4])
  })
})
