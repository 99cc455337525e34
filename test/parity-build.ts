/**
 * Builds innflow networks from the `case` JSON of the FrEIA parity fixtures (../shared/parity/README.md):
 * FrEIA class names map to `modules.*`, snake_case kwargs to camelCase options, subnets to nn layers.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {
  ConditionNode, GraphINN, InputNode, io, modules, nn, Node, OutputNode, SequenceINN, tensor, Tensor,
} from '../lib'
import type { AbstractNode } from '../lib/framework/nodes'

export const parityDir = path.join(__dirname, '..', '..', 'shared', 'parity')

export interface SubnetSpec {
  kind: 'fc' | 'conv'
  width: number
  kernel?: number
}
interface BlockSpec {
  module: string
  args?: Record<string, unknown>
  subnet?: SubnetSpec
  cond?: number
  cond_shape?: number[]
}
interface NodeSpec {
  name: string
  kind: 'input' | 'condition' | 'node' | 'output'
  dims?: number[]
  inputs?: [string, number][]
  conditions?: string[]
  module?: string
  args?: Record<string, unknown>
  subnet?: SubnetSpec
}
export type CaseSpec = { type: 'sequence'; dims: number[]; blocks: BlockSpec[] } | { type: 'graph'; nodes: NodeSpec[] }

export function listCases(): string[] {
  return fs.readdirSync(parityDir).filter((f) => f.endsWith('.safetensors')).map((f) => f.replace(/\.safetensors$/, '')).sort()
}

export function loadCase(name: string): { spec: CaseSpec; tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const { tensors, metadata } = io.loadSafetensors(path.join(parityDir, `${name}.safetensors`))
  return { spec: JSON.parse(metadata.case) as CaseSpec, tensors, metadata }
}

export function subnetConstructor(spec: SubnetSpec): (cIn: number, cOut: number) => nn.Module {
  if (spec.kind === 'fc') return (cIn, cOut) => new nn.Sequential(new nn.Linear(cIn, spec.width), new nn.ReLU(), new nn.Linear(spec.width, cOut))
  const k = spec.kernel ?? 3
  const padding = Math.floor(k / 2)
  return (cIn, cOut) =>
    new nn.Sequential(new nn.Conv2d(cIn, spec.width, k, { padding }), new nn.ReLU(), new nn.Conv2d(spec.width, cOut, k, { padding }))
}

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())

/** FrEIA kwargs → innflow options; matrices (M, b) become tensors of the default dtype. */
export function moduleOptions(args: Record<string, unknown> | undefined, subnet: SubnetSpec | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(args ?? {})) {
    if ((k === 'M' || k === 'b') && Array.isArray(v)) {
      const flat = (v as unknown[]).flat(2) as number[]
      const shape = Array.isArray(v[0]) ? [v.length, (v[0] as unknown[]).length] : [v.length]
      out[k] = tensor(flat, shape)
    } else out[camel(k)] = v
  }
  if (subnet) out.subnetConstructor = subnetConstructor(subnet)
  return out
}

function moduleClass(name: string): never {
  const cls = (modules as Record<string, unknown>)[name]
  if (typeof cls !== 'function') throw new Error(`modules.${name} does not exist`)
  return cls as never
}

/** The network of a case, with default-dtype parameters (call setDefaultDtype first). */
export function buildCase(spec: CaseSpec): SequenceINN | GraphINN {
  if (spec.type === 'sequence') {
    const inn = new SequenceINN(...spec.dims)
    for (const b of spec.blocks) {
      const opts = moduleOptions(b.args, b.subnet)
      if (b.cond !== undefined) Object.assign(opts, { cond: b.cond, condShape: b.cond_shape })
      inn.append(moduleClass(b.module), opts)
    }
    return inn
  }
  const byName = new Map<string, AbstractNode>()
  const nodes: AbstractNode[] = spec.nodes.map((n) => {
    let node: AbstractNode
    const inputs = (n.inputs ?? []).map(([src, i]) => [byName.get(src) as AbstractNode, i] as const)
    if (n.kind === 'input') node = new InputNode(...(n.dims as number[]), { name: n.name })
    else if (n.kind === 'condition') node = new ConditionNode(...(n.dims as number[]), { name: n.name })
    else if (n.kind === 'output') node = new OutputNode(inputs[0], { name: n.name })
    else
      node = new Node(inputs, moduleClass(n.module as string), moduleOptions(n.args, n.subnet), {
        name: n.name,
        conditions: (n.conditions ?? []).map((c) => byName.get(c) as AbstractNode),
      })
    byName.set(n.name, node)
    return node
  })
  return new GraphINN(nodes)
}
