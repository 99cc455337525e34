/**
 * InvertibleModule: the contract of every invertible module, built-in or written by a user (FrEIA's
 * `FrEIA.modules.InvertibleModule`). A module maps a list of tensors to a list of tensors and reports the
 * per-sample log|det J| of the map it applied: J of f in forward mode, of f⁻¹ (that is, −J) with `rev`.
 */
import { argumentError, InnflowError } from '../errors'
import { Module } from '../nn/module'
import { Tensor } from '../tensor'

/** A shape without the batch dimension, e.g. [2] for 2-D points or [3, 32, 32] for images. */
export type Dims = readonly number[]

/** What `forward` returns: the output tensors and the log-Jacobian-determinant ((batch,), a number, or null). */
export type ModuleOutput = [Tensor[], Tensor | number | null]

/** Options every invertible module accepts. */
export interface InvertibleModuleOptions {
  /** Shapes of the condition tensors (without batch dimension), as FrEIA's `dims_c`. */
  dimsC?: Dims[]
}

/** Validates a list of shapes (FrEIA's dims_in / dims_c): an array of arrays of positive integers. */
export function checkDimsList(fn: string, name: string, dims: unknown): number[][] {
  if (!Array.isArray(dims))
    throw argumentError(fn, name, 'a list of shapes such as [[2]] or [[3, 32, 32]] (even one input is wrapped in a list)', dims)
  return dims.map((d, i) => {
    if (!Array.isArray(d)) throw argumentError(fn, `${name}[${i}]`, 'a shape (an array of positive integers); wrap a single shape in a list', d)
    if (!d.every((v) => Number.isInteger(v) && v > 0)) throw argumentError(fn, `${name}[${i}]`, 'an array of positive integers', d)
    return [...(d as number[])]
  })
}

/**
 * Throws ERR_ARGUMENT for an option the module does not know (FrEIA refuses unexpected keyword arguments too),
 * with a hint when FrEIA's snake_case spelling was used. `dimsC` is always accepted; keys whose value is
 * undefined are ignored. Returns the options (an empty object for undefined).
 */
export function checkOptionKeys<O extends object>(fn: string, opts: O | undefined | null, allowed: readonly string[]): O {
  if (opts === undefined || opts === null) return {} as O
  if (typeof opts !== 'object' || Array.isArray(opts)) throw argumentError(fn, 'options', 'an options object', opts)
  const known = new Set(['dimsC', ...allowed])
  for (const key of Object.keys(opts)) {
    if (known.has(key) || (opts as Record<string, unknown>)[key] === undefined) continue
    const camel = key.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase())
    const hint = camel !== key && known.has(camel) ? ` (did you mean ${camel}?)` : ''
    throw new InnflowError('ERR_ARGUMENT', `${fn}: unknown option '${key}'${hint}; accepted options: ${[...known].join(', ')}`)
  }
  return opts
}

/** A subnet constructor: `(channelsIn, channelsOut) => module`, called once per subnet at construction. */
export type SubnetConstructor = (channelsIn: number, channelsOut: number) => Module

export const sameDims = (a: Dims, b: Dims): boolean => a.length === b.length && a.every((v, i) => v === b[i])
export const dimsString = (d: Dims): string => `(${d.join(', ')})`

/**
 * Base class of invertible modules. Subclasses call `super(dimsIn, { dimsC })`, register parameters like
 * any {@link Module}, and implement `forward(x, c, rev, jac)` and `outputDims(inputDims)`.
 * @example
 * class FixedScale extends InvertibleModule {
 *   constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) { super(dimsIn, opts) }
 *   forward(x: Tensor[], c: Tensor[] = [], rev = false): ModuleOutput {
 *     const s = rev ? 0.5 : 2
 *     return [[x[0].mul(s)], Math.log(s) * x[0].size / x[0].shape[0]]
 *   }
 *   outputDims(inputDims: Dims[]): number[][] { return inputDims.map((d) => [...d]) }
 * }
 */
export abstract class InvertibleModule extends Module {
  /** The input shapes (without batch dimension). */
  readonly dimsIn: number[][]
  /** The condition shapes (without batch dimension); empty when unconditional. */
  readonly dimsC: number[][]

  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) {
    super()
    const name = new.target.name
    this.dimsIn = checkDimsList(name, 'dimsIn', dimsIn)
    if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw argumentError(name, 'options', 'an options object', opts)
    this.dimsC = opts.dimsC === undefined || opts.dimsC === null ? [] : checkDimsList(name, 'dimsC', opts.dimsC)
  }

  /**
   * Applies the module (or its inverse when rev) to the inputs x with conditions c. Returns the outputs and
   * log|det J| per sample (the negative in reverse); with jac = false a module may return null instead.
   */
  abstract override forward(x: Tensor[], c?: Tensor[], rev?: boolean, jac?: boolean): ModuleOutput

  /** The output shapes for the given input shapes (shape inference at construction). */
  abstract outputDims(inputDims: Dims[]): number[][]

  /** @internal Throws ERR_SHAPE unless x matches dimsIn (batch dimension aside). */
  protected checkInputs(x: Tensor[], expected: readonly Dims[] = this.dimsIn): void {
    if (!Array.isArray(x) || x.length !== expected.length)
      throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: expected a list of ${expected.length} input tensor(s), got ${Array.isArray(x) ? x.length : typeof x}`)
    x.forEach((t, i) => {
      if (!sameDims(t.shape.slice(1), expected[i]))
        throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: expected input ${i} of shape (batch, ${expected[i].join(', ')}), got (${t.shape.join(', ')})`)
    })
  }

  /** @internal Throws ERR_ARGUMENT/ERR_SHAPE unless c matches dimsC. */
  protected checkConditions(c: Tensor[] | undefined, batch: number): Tensor[] {
    const cs = c ?? []
    if (cs.length !== this.dimsC.length)
      throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: expected ${this.dimsC.length} condition(s), got ${cs.length}`)
    cs.forEach((t, i) => {
      if (t.shape[0] !== batch || !sameDims(t.shape.slice(1), this.dimsC[i]))
        throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: expected condition ${i} of shape (${batch}, ${this.dimsC[i].join(', ')}), got (${t.shape.join(', ')})`)
    })
    return cs
  }
}

/**
 * @internal What a module's optional `_rebuildForBackward(y, c, jac)` returns, a fast path of invertible
 * backprop (SequenceINN.invertibleBackprop) in the forward direction: the module's input rebuilt from its output
 * y AND the forward pass's local graph, built in one go (a coupling block evaluates its subnet once instead of
 * once for the inverse and once more for the forward). Called with recording on; returns null to fall back to
 * the generic inverse-then-forward.
 */
export interface BackpropRebuild {
  /** The rebuilt input (values only, no graph). */
  x: Tensor
  /** Leaves (requiring grad when the input gradient is wanted) that the local graph starts from. */
  leaves: Tensor[]
  /** The recomputed output (with its local graph). */
  out: Tensor
  /** The recomputed log-det (with its local graph), or null. */
  logDet: Tensor | null
  /** The input gradient from the leaves' gradients (null where a leaf got none), or null when none. */
  inputGrad(leafGrads: (Tensor | null)[]): Tensor | null
}

/** A constructor of invertible modules, as SequenceINN.append and Node take. */
export type InvertibleModuleClass<O extends object = Record<string, unknown>> = new (dimsIn: Dims[], opts?: O & InvertibleModuleOptions) => InvertibleModule
