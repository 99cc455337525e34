/**
 * Reshape: one input reshaped to `outputDims` per sample (FrEIA's `FrEIA.modules.Reshape`); the reverse
 * restores the input shape. A pure reshape (no copy, no spatial meaning: for spatially sensible squeezes use
 * IRevNetDownsampling or HaarDownsampling); log-det 0.
 */
import { argumentError, InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link Reshape} (FrEIA's keyword arguments). */
export interface ReshapeOptions extends InvertibleModuleOptions {
  /**
   * The output shape without batch dimension (required; same number of elements as the input). One entry
   * may be -1 (inferred), as in `Tensor.reshape`.
   */
  outputDims?: Dims
  /** @deprecated FrEIA's old name of outputDims (used when outputDims is not given). */
  targetDim?: Dims
}

const numel = (d: Dims): number => d.reduce((a, b) => a * b, 1)

/**
 * Reshapes one input to a given shape.
 * @example
 * inn.append(modules.Reshape, { outputDims: [8, 2, 2] })   // (2, 4, 4) → (8, 2, 2)
 */
export class Reshape extends InvertibleModule {
  /** The input shape (FrEIA's `size`). */
  readonly inputShape: number[]
  /** The output shape (FrEIA's `target_dim`), with any -1 resolved. */
  readonly targetDim: number[]

  constructor(dimsIn: Dims[], opts: ReshapeOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['outputDims', 'targetDim'])
    const key = o.outputDims !== undefined && o.outputDims !== null ? 'outputDims' : 'targetDim'
    const target: unknown = o.outputDims ?? o.targetDim
    if (target === undefined || target === null) throw new InnflowError('ERR_ARGUMENT', `${name}: please specify the desired output shape (option outputDims)`)
    if (!Array.isArray(target) || target.length === 0 || !target.every((v) => Number.isInteger(v) && (v > 0 || v === -1)) || target.filter((v) => v === -1).length > 1)
      throw argumentError(name, key, 'a non-empty array of positive integers (one entry may be -1)', target)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: must have exactly 1 input, got ${this.dimsIn.length}`)
    this.inputShape = [...this.dimsIn[0]]
    const n = numel(this.inputShape)
    const known = numel((target as number[]).filter((v) => v !== -1))
    const resolved = (target as number[]).map((v) => (v === -1 ? n / known : v))
    if (!resolved.every((v) => Number.isInteger(v)) || numel(resolved) !== n)
      throw new InnflowError(
        'ERR_SHAPE',
        `${name}: input dimensions ${dimsString(this.inputShape)} and ${key} ${dimsString(target as number[])} don't match; they must have the same number of elements for invertibility`,
      )
    this.targetDim = resolved
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.targetDim] : this.dimsIn)
    const b = x[0].shape[0]
    return [[x[0].reshape(rev ? [b, ...this.inputShape] : [b, ...this.targetDim])], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1 || numel(inputDims[0]) !== numel(this.targetDim))
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: expected one input of ${numel(this.targetDim)} elements, got ${inputDims.map(dimsString).join(', ')}`)
    return [[...this.targetDim]]
  }
}
