/**
 * The nodes of a GraphINN (FrEIA's `InputNode`, `ConditionNode`, `OutputNode`, `Node`). A node is built at
 * once: its module is constructed with the shapes of its inputs, so shape errors surface where the node is
 * made. Every output of an invertible node must be consumed exactly once; conditions can be read any number
 * of times.
 */
import { argumentError, InnflowError } from '../errors'
import { Dims, dimsString, InvertibleModule, InvertibleModuleClass, sameDims } from '../modules/base'
import { isInvertibleModule } from './common'

/** A reference to one output of a node: `node` (output 0), `node.out0`, `node.out(i)` or `[node, i]`. */
export type NodeInput = AbstractNode | readonly [AbstractNode, number]
/** One input or a list of them. */
export type NodeInputs = NodeInput | readonly NodeInput[]

/** An edge: output `index` of `node`. */
export interface Connection {
  node: AbstractNode
  index: number
}

/** Options every node takes. */
export interface NodeOptions {
  /** The node's name: state-dict prefix in a GraphINN (default: derived from its position in the node list). */
  name?: string
}

function isNode(v: unknown): v is AbstractNode {
  return v instanceof AbstractNode || (v !== null && typeof v === 'object' && (v as { __isInnflowNode?: boolean }).__isInnflowNode === true)
}

/** Parses FrEIA's input forms: a node, [node, i], or a list of those ([node, i] with a number is ONE input). */
export function parseConnections(fn: string, spec: unknown): Connection[] {
  if (spec === undefined || spec === null) return []
  const one = (v: unknown): Connection => {
    if (isNode(v)) return { node: v, index: 0 }
    if (Array.isArray(v) && v.length === 2 && isNode(v[0]) && Number.isInteger(v[1])) return { node: v[0], index: v[1] as number }
    throw argumentError(fn, 'input', 'a node, node.out0, node.out(i) or [node, i]', v)
  }
  if (isNode(spec)) return [one(spec)]
  if (!Array.isArray(spec)) throw argumentError(fn, 'inputs', 'a node, [node, i], or a list of them', spec)
  if (spec.length === 2 && isNode(spec[0]) && typeof spec[1] === 'number') return [one(spec)]
  return spec.map(one)
}

/** Base of every node kind. */
export abstract class AbstractNode {
  /** @internal */
  readonly __isInnflowNode = true
  /** The node's name (assigned by GraphINN when not given). */
  name: string | undefined
  /** Input connections (producer, output index). */
  readonly inputs: Connection[]
  /** Condition connections. */
  readonly conditions: Connection[]
  /** Shapes of the node's outputs. */
  readonly outputDims: number[][]
  /** For each output: the consumer (node, input index), once connected. */
  outputs: (Connection | null)[]
  /** The invertible module (Node only). */
  readonly module: InvertibleModule | null = null

  protected constructor(inputs: Connection[], conditions: Connection[], outputDims: number[][], name: string | undefined) {
    if (name !== undefined && (typeof name !== 'string' || name === '' || name.includes('.')))
      throw argumentError(this.constructor.name, 'name', "a non-empty string without '.'", name)
    this.name = name
    this.inputs = inputs
    this.conditions = conditions
    this.outputDims = outputDims
    this.outputs = outputDims.map(() => null)
    // validate every edge before connecting any, so a failed node leaves its producers untouched
    inputs.forEach((conn, i) => {
      conn.node.checkConsumable(conn.index, this)
      if (inputs.findIndex((o) => o.node === conn.node && o.index === conn.index) !== i)
        throw new InnflowError('ERR_GRAPH', `${this} takes output ${conn.index} of ${conn.node} twice`)
    })
    conditions.forEach((conn) => conn.node.checkConditionSource(conn.index, this))
    inputs.forEach((conn, i) => (conn.node.outputs[conn.index] = { node: this, index: i }))
  }

  /** Output 0 as an input reference. */
  get out0(): readonly [AbstractNode, number] {
    return this.out(0)
  }
  /** Output 1 as an input reference. */
  get out1(): readonly [AbstractNode, number] {
    return this.out(1)
  }
  /** Output i as an input reference. */
  out(i: number): readonly [AbstractNode, number] {
    return [this, i] as const
  }

  /** Shape of output i (ERR_GRAPH when out of range). */
  outputShape(i: number, consumer: AbstractNode | string): number[] {
    if (!Number.isInteger(i) || i < 0 || i >= this.outputDims.length)
      throw new InnflowError('ERR_GRAPH', `${describeNode(consumer)} reads output ${i} of ${this}, which has ${this.outputDims.length} output(s)`)
    return this.outputDims[i]
  }

  /** @internal Throws unless `consumer` may take output `index` as an input (it exists and is not taken). */
  checkConsumable(index: number, consumer: AbstractNode): void {
    this.outputShape(index, consumer)
    if (this.outputs[index]) throw new InnflowError('ERR_GRAPH', `output ${index} of ${this} is already consumed by ${this.outputs[index]!.node}; each output can feed only one node`)
  }

  /** @internal Whether output `index` can serve as a condition. */
  checkConditionSource(index: number, consumer: AbstractNode): void {
    this.outputShape(index, consumer)
  }

  toString(): string {
    return `${this.constructor.name} '${this.name ?? '(unnamed)'}'`
  }
}

const describeNode = (n: AbstractNode | string): string => (typeof n === 'string' ? n : String(n))

/** An input of the graph, of shape `dims` (FrEIA's `InputNode(*dims, name=...)`). */
export class InputNode extends AbstractNode {
  constructor(...args: (number | NodeOptions)[]) {
    const { dims, opts } = splitDims('InputNode', args)
    super([], [], [dims], opts.name)
  }
}

/** A condition of the graph, of shape `dims`; its value is passed in `c` and can be read by any node. */
export class ConditionNode extends AbstractNode {
  constructor(...args: (number | NodeOptions)[]) {
    const { dims, opts } = splitDims('ConditionNode', args)
    super([], [], [dims], opts.name)
  }
  override checkConsumable(_index: number, consumer: AbstractNode): void {
    throw new InnflowError('ERR_GRAPH', `${consumer} takes ${this} as an input; a ConditionNode can only be used in \`conditions\``)
  }
}

/** An output of the graph (FrEIA's `OutputNode(in_node, name=...)`): exactly one input. */
export class OutputNode extends AbstractNode {
  constructor(input: NodeInputs, opts: NodeOptions = {}) {
    const inputs = parseConnections('OutputNode', input)
    if (inputs.length !== 1) throw new InnflowError('ERR_GRAPH', `OutputNode: takes exactly one input, got ${inputs.length}`)
    super(inputs, [], [], opts?.name)
  }
  override checkConsumable(_index: number, consumer: AbstractNode): void {
    throw new InnflowError('ERR_GRAPH', `${consumer} takes ${this} as an input; an OutputNode has no outputs`)
  }
  override checkConditionSource(_index: number, consumer: AbstractNode): void {
    throw new InnflowError('ERR_GRAPH', `${consumer} is conditioned on ${this}; an OutputNode has no outputs`)
  }
}

/** Options of a Node beyond the module's own. */
export interface NodeConnectOptions extends NodeOptions {
  /** The node's conditions: one input reference or a list (ConditionNodes or outputs of other nodes). */
  conditions?: NodeInputs
}

/**
 * An invertible module in the graph (FrEIA's `Node(inputs, module_type, module_args, conditions=, name=)`).
 * `module` is a class (constructed as `new M(inputShapes, { ...options, dimsC })`) or a built instance.
 */
export class Node extends AbstractNode {
  override readonly module: InvertibleModule

  constructor(
    inputs: NodeInputs,
    module: InvertibleModuleClass<never> | InvertibleModule,
    options: Record<string, unknown> | null = {},
    nodeOptions: NodeConnectOptions = {},
  ) {
    const ins = parseConnections('Node', inputs)
    const conds = parseConnections('Node', nodeOptions?.conditions)
    if (ins.length === 0) throw new InnflowError('ERR_GRAPH', 'Node: needs at least one input')
    const inShapes = ins.map((c) => c.node.outputShape(c.index, 'Node'))
    const condShapes = conds.map((c) => c.node.outputShape(c.index, 'Node'))
    let instance: InvertibleModule
    if (isInvertibleModule(module)) {
      if (options !== null && Object.keys(options).length > 0)
        throw new InnflowError('ERR_ARGUMENT', `Node: an instance of ${module.constructor.name} was given together with constructor options`)
      if (module.dimsIn.length !== inShapes.length || !module.dimsIn.every((d, i) => sameDims(d, inShapes[i])))
        throw new InnflowError('ERR_SHAPE', `Node: the ${module.constructor.name} instance expects inputs ${module.dimsIn.map(dimsString).join(', ')}, but receives ${inShapes.map(dimsString).join(', ')}`)
      instance = module
    } else if (typeof module === 'function') {
      const opts: Record<string, unknown> = { ...(options ?? {}) }
      if (conds.length > 0) opts.dimsC = condShapes
      instance = new (module as unknown as new (d: number[][], o: Record<string, unknown>) => InvertibleModule)(inShapes, opts)
    } else {
      throw argumentError('Node', 'module', 'an InvertibleModule class or instance', module)
    }
    const outDims = instance.outputDims(inShapes as Dims[]).map((d) => [...d])
    super(ins, conds, outDims, nodeOptions?.name)
    this.module = instance
  }
}

function splitDims(fn: string, args: (number | NodeOptions)[]): { dims: number[]; opts: NodeOptions } {
  let opts: NodeOptions = {}
  const last = args[args.length - 1]
  const rest = last !== null && typeof last === 'object' ? ((opts = last), args.slice(0, -1)) : args
  if (rest.length === 0) throw new InnflowError('ERR_ARGUMENT', `${fn}: needs a shape, e.g. new ${fn}(2) or new ${fn}(3, 32, 32)`)
  if (!rest.every((d) => Number.isInteger(d) && (d as number) > 0)) throw argumentError(fn, 'dims', 'positive integers', rest)
  return { dims: rest as number[], opts }
}
