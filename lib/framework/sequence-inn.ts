/**
 * SequenceINN: a chain of invertible modules (FrEIA's `SequenceINN(*dims)`), each fed the previous module's
 * output; log-dets are summed. State-dict keys are FrEIA's: `module_list.<k>.<param>`.
 */
import { argumentError, InnflowError } from '../errors'
import { ModuleList } from '../nn/module-list'
import { Dims, dimsString, InvertibleModule, InvertibleModuleClass, ModuleOutput, sameDims } from '../modules/base'
import { checkTensor, Tensor, zeros } from '../tensor'
import { isGradEnabled } from '../autograd/tape'
import { addLogDet, ForwardOptions, isInvertibleModule, parseForwardArgs } from './common'
import { ChainStep, checkDeterministic, invertibleChainForward } from './invertible-backprop'

/** Options of {@link SequenceINN.append}: the module's own options plus FrEIA's `cond` and `condShape`. */
export type AppendOptions = Record<string, unknown> & {
  /** Index into the `c` list given to forward: this module receives `[c[cond]]` as its condition. */
  cond?: number
  /** Shape of that condition (without batch dimension). */
  condShape?: Dims
}

/**
 * A sequence of invertible modules.
 * @example
 * const inn = new SequenceINN(2)
 * inn.append(modules.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
 * const [z, logJacDet] = inn.forward(x)
 */
export class SequenceINN extends InvertibleModule implements Iterable<InvertibleModule> {
  /** shapes[0] is the input shape; shapes[k + 1] the output shape of module k. */
  readonly shapes: number[][]
  /** The condition index of each module, or null. */
  readonly conditions: (number | null)[] = []
  /** The modules (state-dict prefix `module_list`). */
  readonly moduleList: ModuleList

  private invertibleBackpropOn = false

  constructor(...dims: number[]) {
    super([dims])
    if (dims.length === 0) throw argumentError('SequenceINN', 'dims', 'the input shape, e.g. new SequenceINN(2) or new SequenceINN(3, 32, 32)', dims)
    this.shapes = [[...dims]]
    this.moduleList = this.registerModule('module_list', new ModuleList())
  }

  /**
   * Invertible backpropagation (memory-saving training; default false). When on, a forward pass with gradient
   * recording stores no intermediate activations: the modules run without recording, only the output and the
   * summed log-det are kept, and one tape entry stands for the whole chain. Its backward walks the modules from
   * last to first, rebuilds each module's input from its output with the module's inverse, runs that module
   * forward again to build its local graph, backpropagates through it and frees it, so peak memory holds one
   * module's activations instead of all of them (at the cost of an inverse and a second forward per module).
   * Gradients of the input, the conditions and the parameters are those of normal mode, up to rounding, and
   * accumulate into `.grad` the same way. `rev: true` works too (the inputs are then rebuilt with the forward
   * direction). Without gradient recording (noGrad, or nothing requires grad) the option changes nothing.
   *
   * Requirements: every module must be exactly invertible (its inverse applied to its output gives back its
   * input, up to rounding) and deterministic. Dropout in training mode is refused with ERR_ARGUMENT; other
   * stochastic modules, or modules whose inverse is only approximate (e.g. iResNet's fixed-point inverse), give
   * wrong gradients. ActNorm's data-dependent initialisation happens once, in the first forward pass.
   * @example
   * inn.invertibleBackprop = true
   * const [z, logJacDet] = inn.forward(x)   // keeps only z and logJacDet
   * loss(z, logJacDet).backward()           // rebuilds the activations module by module
   */
  get invertibleBackprop(): boolean {
    return this.invertibleBackpropOn
  }
  set invertibleBackprop(on: boolean) {
    if (typeof on !== 'boolean') throw argumentError('SequenceINN.invertibleBackprop', 'value', 'a boolean', on)
    this.invertibleBackpropOn = on
  }

  /** Number of modules. */
  get length(): number {
    return this.moduleList.length
  }
  /** Module k (negative k counts from the end). */
  at(k: number): InvertibleModule {
    return this.moduleList.at(k) as InvertibleModule
  }
  [Symbol.iterator](): Iterator<InvertibleModule> {
    return (this.moduleList.children() as InvertibleModule[])[Symbol.iterator]()
  }

  /**
   * Appends a module: a class (constructed as `new M([previous output shape], options)`, with
   * `dimsC: [condShape]` when `cond` is given) or an already-built instance whose dimsIn must match.
   */
  append(module: InvertibleModuleClass<never> | InvertibleModule, options: AppendOptions = {}): this {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw argumentError('SequenceINN.append', 'options', 'an options object', options)
    const { cond, condShape, ...moduleOptions } = options
    const last = this.shapes[this.shapes.length - 1]
    if (cond !== undefined && (!Number.isInteger(cond) || (cond as number) < 0)) throw argumentError('SequenceINN.append', 'cond', 'a non-negative integer (an index into c)', cond)
    let instance: InvertibleModule
    if (isInvertibleModule(module)) {
      if (Object.keys(moduleOptions).length > 0)
        throw new InnflowError('ERR_ARGUMENT', `SequenceINN.append: an instance of ${module.constructor.name} was given together with constructor options (${Object.keys(moduleOptions).join(', ')})`)
      if (module.dimsIn.length !== 1 || !sameDims(module.dimsIn[0], last))
        throw new InnflowError('ERR_SHAPE', `SequenceINN.append: the ${module.constructor.name} instance expects inputs ${module.dimsIn.map(dimsString).join(', ')}, but the previous output has shape ${dimsString(last)}`)
      instance = module
    } else if (typeof module === 'function') {
      if (cond !== undefined && condShape === undefined)
        throw new InnflowError('ERR_ARGUMENT', 'SequenceINN.append: cond was given without condShape (the shape of that condition)')
      const opts: Record<string, unknown> = { ...moduleOptions }
      if (cond !== undefined) opts.dimsC = [condShape]
      instance = new (module as unknown as new (d: number[][], o: Record<string, unknown>) => InvertibleModule)([last], opts)
    } else {
      throw argumentError('SequenceINN.append', 'module', 'an InvertibleModule class or instance', module)
    }
    const out = instance.outputDims([last])
    if (out.length !== 1)
      throw new InnflowError('ERR_SHAPE', `SequenceINN.append: ${instance.constructor.name} has ${out.length} outputs; a SequenceINN needs exactly one per module`)
    this.moduleList.append(instance)
    this.shapes.push([...out[0]])
    this.conditions.push(cond === undefined ? null : (cond as number))
    return this
  }

  /** The output shape, as a one-element list. */
  outputDims(inputDims?: Dims[]): number[][] {
    if (inputDims !== undefined && (inputDims.length !== 1 || !sameDims(inputDims[0], this.shapes[0])))
      throw new InnflowError('ERR_SHAPE', `SequenceINN.outputDims: expected input ${dimsString(this.shapes[0])}, got ${inputDims.map(dimsString).join(', ')}`)
    return [[...this.shapes[this.shapes.length - 1]]]
  }

  /**
   * Runs the chain forward (or backward with `rev`). `inn.forward(x, { c, rev, jac })` returns
   * `[z, logJacDet]`; the module form `inn.forward([x], c, rev, jac)` returns `[[z], logJacDet]` (used when
   * the chain is a node of a GraphINN). logJacDet has shape (batch,); with `jac: false` modules that skip
   * their log-det contribute 0.
   */
  forward(x: Tensor, opts?: ForwardOptions): [Tensor, Tensor]
  forward(x: Tensor[], c?: Tensor[], rev?: boolean, jac?: boolean): [Tensor[], Tensor]
  forward(x: Tensor | Tensor[], cOrOpts?: Tensor[] | ForwardOptions, rev?: boolean, jac?: boolean): [Tensor, Tensor] | [Tensor[], Tensor] {
    const args = parseForwardArgs('SequenceINN.forward', x, cOrOpts, rev, jac)
    if (args.x.length !== 1) throw new InnflowError('ERR_ARGUMENT', `SequenceINN.forward: expected one input tensor, got ${args.x.length}`)
    let h = checkTensor('SequenceINN.forward', 'x', args.x[0])
    const start = args.rev ? this.shapes[this.shapes.length - 1] : this.shapes[0]
    if (!sameDims(h.shape.slice(1), start))
      throw new InnflowError('ERR_SHAPE', `SequenceINN.forward: expected input of shape (batch, ${start.join(', ')}), got (${h.shape.join(', ')})`)
    const n = this.moduleList.length
    const steps: ChainStep[] = []
    for (let step = 0; step < n; step++) {
      const k = args.rev ? n - 1 - step : step
      const module = this.moduleList.at(k) as InvertibleModule
      const ci = this.conditions[k]
      let cs: Tensor[] = []
      if (ci !== null) {
        if (ci >= args.c.length)
          throw new InnflowError('ERR_ARGUMENT', `SequenceINN.forward: module ${k} (${module.constructor.name}) uses condition ${ci}, but only ${args.c.length} condition(s) were given`)
        cs = [args.c[ci]]
      }
      steps.push({ module, c: cs, label: `module ${k} (${module.constructor.name})` })
    }
    if (this.invertibleBackpropOn && n > 0 && isGradEnabled()) {
      checkDeterministic('SequenceINN.forward', steps)
      const [z, logDet] = invertibleChainForward(steps, h, args.rev, args.jac)
      return args.moduleForm ? [[z], logDet] : [z, logDet]
    }
    let logDet = zeros([h.shape[0]], { dtype: h.dtype, device: h.device })
    for (const { module, c, label } of steps) {
      const [out, j]: ModuleOutput = module.forward([h], c, args.rev, args.jac)
      h = out[0]
      logDet = addLogDet(logDet, j, label)
    }
    return args.moduleForm ? [[h], logDet] : [h, logDet]
  }
}
