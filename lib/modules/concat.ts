/**
 * Concat: several inputs, one output, concatenated along one axis (FrEIA's `FrEIA.modules.Concat`); the reverse
 * splits it back into the input sizes. All inputs have the same rank and agree on every other axis. Log-det 0.
 */
import { InnflowError } from '../errors'
import { cat, split } from '../ops/shape'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'
import { moduleDim } from './split'

/** Options of {@link Concat} (FrEIA's keyword arguments). */
export interface ConcatOptions extends InvertibleModuleOptions {
  /** The axis to concatenate along, counting non-batch axes (default 0, the channels; negative counts from the end). */
  dim?: number
}

function concatDims(name: string, dims: readonly Dims[], dim: number): number[] {
  if (dims.length < 2) throw new InnflowError('ERR_SHAPE', `${name}: concatenation needs at least 2 inputs, got ${dims.length}`)
  const first = dims[0]
  dims.forEach((d, i) => {
    if (d.length !== first.length || d.some((v, j) => j !== dim && v !== first[j]))
      throw new InnflowError('ERR_SHAPE', `${name}: input ${i} ${dimsString(d)} does not match input 0 ${dimsString(first)} outside axis ${dim}`)
  })
  return first.map((v, j) => (j === dim ? dims.reduce((a, d) => a + d[dim], 0) : v))
}

/**
 * Concatenates several inputs along `dim`.
 * @example
 * const merged = new Node([a.out0, b.out0], modules.Concat, {})
 */
export class Concat extends InvertibleModule {
  /** The axis concatenated along (non-batch numbering, normalised to be non-negative). */
  readonly dim: number
  /** The size of each input along `dim` (FrEIA's `split_size_or_sections`). */
  readonly sectionSizes: number[]
  private readonly outDims: number[]

  constructor(dimsIn: Dims[], opts: ConcatOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['dim'])
    if (this.dimsIn.length < 2) throw new InnflowError('ERR_SHAPE', `${name}: concatenation needs at least 2 inputs, got ${this.dimsIn.length}`)
    this.dim = moduleDim(name, o.dim ?? 0, this.dimsIn[0].length)
    this.outDims = concatDims(name, this.dimsIn, this.dim)
    this.sectionSizes = this.dimsIn.map((d) => d[this.dim])
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    if (rev) {
      this.checkInputs(x, [this.outDims])
      return [split(x[0], this.sectionSizes, this.dim + 1), 0]
    }
    this.checkInputs(x)
    return [[cat(x, this.dim + 1)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return [concatDims(this.constructor.name, inputDims, this.dim)]
  }
}

/** @deprecated FrEIA's deprecated alias of {@link Concat}. */
export class ConcatChannel extends Concat {}
/** @deprecated FrEIA's deprecated alias of {@link Concat}. */
export class Concat1d extends Concat {}
