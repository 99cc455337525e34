/**
 * Flatten: (d1, d2, …) → (d1·d2·…) per sample (FrEIA's `FrEIA.modules.Flatten`); the reverse restores the
 * shape. A pure reshape (no copy of the data); log-det 0.
 */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link Flatten}: none besides dimsC (accepted and ignored, as in FrEIA). */
export type FlattenOptions = InvertibleModuleOptions

/**
 * Flattens one input of any shape into a vector.
 * @example
 * inn.append(modules.Flatten)                        // (3, 8, 8) → (192)
 */
export class Flatten extends InvertibleModule {
  /** The shape of the input (without batch dimension). */
  readonly inputShape: number[]
  /** [∏ inputShape]. */
  readonly outputShape: number[]

  constructor(dimsIn: Dims[], opts: FlattenOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    checkOptionKeys(name, opts, [])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: flattening must have exactly 1 input, got ${this.dimsIn.length}`)
    this.inputShape = [...this.dimsIn[0]]
    this.outputShape = [this.inputShape.reduce((a, b) => a * b, 1)]
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.outputShape] : this.dimsIn)
    const b = x[0].shape[0]
    return [[x[0].reshape(rev ? [b, ...this.inputShape] : [b, ...this.outputShape])], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: flattening must have exactly 1 input, got ${inputDims.length}`)
    return [[inputDims[0].reduce((a, b) => a * b, 1)]]
  }
}
