/**
 * GraphINN: an invertible network over any directed acyclic graph of nodes (FrEIA's `GraphINN(node_list)`),
 * run in a deterministic topological order in both directions. Unlike FrEIA, the order breaks ties by the
 * position in the node list (FrEIA's differs between runs, its issue #168), state-dict keys are
 * `<node name>.<param>`, and malformed graphs get ERR_GRAPH errors that say what is wrong.
 */
import { isGradEnabled } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { Dims, dimsString, InvertibleModule, ModuleOutput, sameDims } from '../modules/base'
import { Tensor, zeros } from '../tensor'
import { addLogDet, ForwardOptions, parseForwardArgs } from './common'
import { checkDeterministic, GraphStep, invertibleGraphForward } from './invertible-backprop'
import { AbstractNode, ConditionNode, Connection, InputNode, Node, OutputNode } from './nodes'

/** Options of {@link GraphINN}. */
export interface GraphINNOptions {
  /** Always return the outputs as an array, even when there is only one. */
  forceTupleOutput?: boolean
}

const key = (c: Connection): string => `${c.node.name}\u0000${c.index}`

/**
 * An invertible network given as a list of nodes.
 * @example
 * const inp = new InputNode(2, { name: 'in' })
 * const n1 = new Node(inp, modules.GLOWCouplingBlock, { subnetConstructor: subnet })
 * const out = new OutputNode(n1)
 * const inn = new GraphINN([inp, n1, out])
 */
export class GraphINN extends InvertibleModule {
  /** Input nodes, condition nodes and output nodes, in node-list order (the order of x, c and z). */
  readonly inNodes: InputNode[]
  readonly conditionNodes: ConditionNode[]
  readonly outNodes: OutputNode[]
  /** The module nodes in forward topological order. */
  readonly nodeList: AbstractNode[]
  private readonly forwardOrder: Node[]
  private readonly reverseOrder: Node[]
  private readonly forceTupleOutput: boolean
  private invertibleBackpropOn = false

  constructor(nodes: AbstractNode[], opts: GraphINNOptions = {}) {
    if (!Array.isArray(nodes) || nodes.length === 0) throw argumentError('GraphINN', 'nodes', 'a non-empty array of nodes', nodes)
    nodes.forEach((n, i) => {
      if (!(n instanceof AbstractNode) && !(n as { __isInnflowNode?: boolean })?.__isInnflowNode) throw argumentError('GraphINN', `nodes[${i}]`, 'a node', n)
    })
    if (new Set(nodes).size !== nodes.length) throw new InnflowError('ERR_GRAPH', 'GraphINN: a node appears twice in the node list')
    const inNodes = nodes.filter((n): n is InputNode => n instanceof InputNode)
    const condNodes = nodes.filter((n): n is ConditionNode => n instanceof ConditionNode)
    const outNodes = nodes.filter((n): n is OutputNode => n instanceof OutputNode)
    if (inNodes.length === 0) throw new InnflowError('ERR_GRAPH', 'GraphINN: the node list has no InputNode')
    if (outNodes.length === 0) throw new InnflowError('ERR_GRAPH', 'GraphINN: the node list has no OutputNode')
    super(inNodes.map((n) => n.outputDims[0]), { dimsC: condNodes.map((n) => n.outputDims[0]) })
    this.inNodes = inNodes
    this.conditionNodes = condNodes
    this.outNodes = outNodes
    this.forceTupleOutput = opts?.forceTupleOutput ?? false

    assignNames(nodes)
    checkMembership(nodes)
    checkLooseEnds(nodes)
    const index = new Map(nodes.map((n, i) => [n, i]))
    // forward: a node waits for the producers of its inputs and conditions
    const forwardDeps = (n: AbstractNode) => [...n.inputs, ...n.conditions].map((c) => c.node)
    // reverse: a node waits for the consumers of its outputs, and for whoever recreates its conditions
    const reverseDeps = (n: AbstractNode) => [
      ...n.outputs.filter((c): c is Connection => c !== null).map((c) => c.node),
      ...n.conditions.map((c) => c.node.outputs[c.index]?.node).filter((m): m is AbstractNode => m !== undefined),
    ]
    const fwd = topologicalOrder(nodes, forwardDeps, index, 'forward')
    const rev = topologicalOrder(nodes, reverseDeps, index, 'reverse')
    this.nodeList = fwd
    this.forwardOrder = fwd.filter((n): n is Node => n instanceof Node)
    this.reverseOrder = rev.filter((n): n is Node => n instanceof Node)
    for (const n of this.forwardOrder) this.registerModule(n.name as string, n.module)
  }

  /** The output shapes (one per OutputNode). */
  outputDims(_inputDims?: Dims[]): number[][] {
    return this.outNodes.map((n) => n.inputs[0].node.outputDims[n.inputs[0].index].slice())
  }

  /** The node with this name, or undefined. */
  getNodeByName(name: string): AbstractNode | undefined {
    return this.nodeList.find((n) => n.name === name)
  }
  /** The module of the node with this name, or undefined. */
  getModuleByName(name: string): InvertibleModule | undefined {
    return this.getNodeByName(name)?.module ?? undefined
  }

  /**
   * Invertible backpropagation (memory-saving training; default false), as for SequenceINN, over the whole
   * graph. When on, a forward pass with gradient recording runs the nodes without recording and keeps only the
   * values still needed by later nodes (each intermediate is freed once its readers ran), the outputs and the
   * summed log-det; one tape entry stands for the whole graph. Its backward walks the nodes in reverse execution
   * order: each node's inputs are rebuilt from its outputs with the node's module in the opposite direction,
   * the node runs again on them with recording on, the gradients of its outputs and of the log-det are
   * backpropagated through that local graph, which is then freed, and the gradients of its inputs go on to the
   * nodes that produced them. Peak memory holds about one node's activations (plus the values alive at once
   * across parallel branches) instead of all of them. Gradients of the inputs, the conditions and the
   * parameters are those of normal mode, up to rounding; `rev: true` works too. Without gradient recording the
   * option changes nothing.
   *
   * Requirements: every node's module must be exactly invertible and deterministic (Dropout in training mode
   * is refused with ERR_ARGUMENT). Outputs of nodes used as conditions are kept from the forward pass.
   */
  get invertibleBackprop(): boolean {
    return this.invertibleBackpropOn
  }
  set invertibleBackprop(on: boolean) {
    if (typeof on !== 'boolean') throw argumentError('GraphINN.invertibleBackprop', 'value', 'a boolean', on)
    this.invertibleBackpropOn = on
  }

  /**
   * Runs the graph forward (x → z), or in reverse with `rev` (z → x). x is one tensor or an array in
   * InputNode order (OutputNode order with rev); c is an array in ConditionNode order. Returns
   * `[z, logJacDet]`, z a tensor for a single output (unless forceTupleOutput) else an array. With
   * `jac: false` logJacDet is zeros, as in FrEIA. The module form `forward(x[], c, rev, jac)` returns arrays.
   */
  forward(x: Tensor | Tensor[], opts?: ForwardOptions): [Tensor | Tensor[], Tensor]
  forward(x: Tensor[], c?: Tensor[], rev?: boolean, jac?: boolean): [Tensor[], Tensor]
  forward(x: Tensor | Tensor[], cOrOpts?: Tensor[] | ForwardOptions, rev?: boolean, jac?: boolean): [Tensor | Tensor[], Tensor] {
    const isModuleCall = Array.isArray(x) && (cOrOpts === undefined || Array.isArray(cOrOpts)) && (rev !== undefined || Array.isArray(cOrOpts))
    const args = parseForwardArgs('GraphINN.forward', x, cOrOpts, rev, jac)
    const starts: AbstractNode[] = args.rev ? this.outNodes : this.inNodes
    if (args.x.length !== starts.length)
      throw new InnflowError('ERR_ARGUMENT', `GraphINN.forward: got ${args.x.length} input tensor(s), expected ${starts.length} (${starts.map(String).join(', ')})`)
    if (args.c.length !== this.conditionNodes.length)
      throw new InnflowError('ERR_ARGUMENT', `GraphINN.forward: got ${args.c.length} condition(s), expected ${this.conditionNodes.length}`)
    const batch = args.x[0].shape[0]
    // values of edges (producer, output index); the same edge holds the same value in both directions
    const values = new Map<string, Tensor>()
    starts.forEach((n, i) => {
      const edge = args.rev ? n.inputs[0] : { node: n, index: 0 }
      const want = edge.node.outputDims[edge.index]
      if (!sameDims(args.x[i].shape.slice(1), want))
        throw new InnflowError('ERR_SHAPE', `GraphINN.forward: ${n} expects shape (batch, ${want.join(', ')}), got (${args.x[i].shape.join(', ')})`)
      values.set(key(edge), args.x[i])
    })
    this.conditionNodes.forEach((n, i) => {
      if (!sameDims(args.c[i].shape.slice(1), n.outputDims[0]))
        throw new InnflowError('ERR_SHAPE', `GraphINN.forward: condition ${i} (${n}) expects shape (batch, ${n.outputDims[0].join(', ')}), got (${args.c[i].shape.join(', ')})`)
      values.set(key({ node: n, index: 0 }), args.c[i])
    })
    const order = args.rev ? this.reverseOrder : this.forwardOrder
    const ends: Connection[] = args.rev ? this.inNodes.map((n) => ({ node: n, index: 0 })) : this.outNodes.map((n) => n.inputs[0])
    const wrap = (z: Tensor[], logDet: Tensor): [Tensor | Tensor[], Tensor] =>
      isModuleCall || this.forceTupleOutput || z.length > 1 ? [z, logDet] : [z[0], logDet]
    if (this.invertibleBackpropOn && order.length > 0 && isGradEnabled()) {
      const steps: GraphStep[] = order.map((node) => {
        const own = node.outputDims.map((_, i) => key({ node, index: i }))
        const inputs = node.inputs.map(key)
        return { module: node.module, ins: args.rev ? own : inputs, outs: args.rev ? inputs : own, conds: node.conditions.map(key), label: String(node) }
      })
      checkDeterministic('GraphINN.forward', steps)
      const [z, logDet] = invertibleGraphForward('GraphINN.invertibleBackprop', steps, values, ends.map(key), args.rev, args.jac)
      return wrap(z, logDet)
    }
    let logDet = zeros([batch], { dtype: args.x[0].dtype, device: args.x[0].device })
    for (const node of order) {
      const inEdges: Connection[] = args.rev ? node.outputDims.map((_, i) => ({ node, index: i })) : node.inputs
      const outEdges: Connection[] = args.rev ? node.inputs : node.outputDims.map((_, i) => ({ node, index: i }))
      const ins = inEdges.map((e) => values.get(key(e)) as Tensor)
      const cs = node.conditions.map((e) => values.get(key(e)) as Tensor)
      let result: ModuleOutput
      try {
        result = node.module.forward(ins, cs, args.rev, args.jac)
      } catch (e) {
        if (e instanceof InnflowError) throw new InnflowError(e.code, `${node}: ${e.message}`)
        throw e
      }
      const [outs, j] = result
      if (!Array.isArray(outs) || outs.length !== outEdges.length)
        throw new InnflowError('ERR_GRAPH', `${node}: the module returned ${Array.isArray(outs) ? outs.length : 'no list of'} output(s), expected ${outEdges.length}`)
      outEdges.forEach((e, i) => values.set(key(e), outs[i]))
      if (args.jac) logDet = addLogDet(logDet, j, String(node))
    }
    return wrap(
      ends.map((e) => values.get(key(e)) as Tensor),
      logDet,
    )
  }
}

/** Unnamed nodes get `<Kind><position in the node list>`, e.g. `Node3`; names must be unique. */
function assignNames(nodes: AbstractNode[]): void {
  const used = new Set(nodes.map((n) => n.name).filter((n) => n !== undefined))
  nodes.forEach((n, i) => {
    if (n.name !== undefined) return
    let name = `${n.constructor.name}${i}`
    while (used.has(name)) name += '_'
    n.name = name
    used.add(name)
  })
  const seen = new Map<string, number>()
  nodes.forEach((n, i) => {
    const prev = seen.get(n.name as string)
    if (prev !== undefined) throw new InnflowError('ERR_GRAPH', `GraphINN: nodes ${prev} and ${i} are both named '${n.name}'; names must be unique`)
    seen.set(n.name as string, i)
  })
}

function checkMembership(nodes: AbstractNode[]): void {
  const members = new Set(nodes)
  for (const n of nodes) {
    for (const c of n.inputs)
      if (!members.has(c.node)) throw new InnflowError('ERR_GRAPH', `GraphINN: ${n} takes input from ${c.node}, which is not in the node list`)
    for (const c of n.conditions)
      if (!members.has(c.node)) throw new InnflowError('ERR_GRAPH', `GraphINN: ${n} is conditioned on ${c.node}, which is not in the node list`)
    n.outputs.forEach((c, i) => {
      if (c && !members.has(c.node)) throw new InnflowError('ERR_GRAPH', `GraphINN: output ${i} of ${n} feeds ${c.node}, which is not in the node list`)
    })
  }
}

function checkLooseEnds(nodes: AbstractNode[]): void {
  for (const n of nodes) {
    if (n instanceof ConditionNode || n instanceof OutputNode) continue
    n.outputs.forEach((c, i) => {
      if (!c)
        throw new InnflowError('ERR_GRAPH', `GraphINN: output ${i} ${dimsString(n.outputDims[i])} of ${n} is a loose end: connect it to another node or to an OutputNode`)
    })
  }
}

/** Kahn's algorithm; among ready nodes the earliest in the node list goes first. */
function topologicalOrder(
  nodes: AbstractNode[],
  deps: (n: AbstractNode) => AbstractNode[],
  index: Map<AbstractNode, number>,
  direction: string,
): AbstractNode[] {
  const pending = new Map<AbstractNode, number>()
  const dependents = new Map<AbstractNode, AbstractNode[]>()
  for (const n of nodes) {
    const ds = [...new Set(deps(n))]
    pending.set(n, ds.length)
    for (const d of ds) dependents.set(d, [...(dependents.get(d) ?? []), n])
  }
  const ready = nodes.filter((n) => pending.get(n) === 0)
  const order: AbstractNode[] = []
  while (ready.length > 0) {
    ready.sort((a, b) => (index.get(a) as number) - (index.get(b) as number))
    const n = ready.shift() as AbstractNode
    order.push(n)
    for (const m of dependents.get(n) ?? []) {
      const left = (pending.get(m) as number) - 1
      pending.set(m, left)
      if (left === 0) ready.push(m)
    }
  }
  if (order.length !== nodes.length) {
    const stuck = nodes.filter((n) => !order.includes(n))
    throw new InnflowError('ERR_GRAPH', `GraphINN: the graph has a cycle in the ${direction} direction through ${stuck.map(String).join(', ')}`)
  }
  return order
}
