/**
 * Split: one input, several outputs along one axis (FrEIA's `FrEIA.modules.Split`); the reverse concatenates.
 * Log-det 0. The section sizes follow FrEIA:
 * - `sectionSizes` omitted: `nSections` (default 2) near-equal parts as numpy.array_split — the first L mod n
 *   parts get ⌊L/n⌋ + 1, the rest ⌊L/n⌋ (L = 5, n = 2 → [3, 2]; L = 7, n = 3 → [3, 2, 2]);
 * - `sectionSizes: s` (a number, 0 < s < L): [s, L − s];
 * - `sectionSizes: [s1, s2, …]`: those sizes; if they add up to less than L a last section takes the rest.
 *
 * Deliberate differences from FrEIA (whose code crashes in both cases): a number sectionSizes is passed by
 * FrEIA to torch.split but then iterated in output_dims (TypeError); here it is one split point as the spec
 * reads it. A list that adds up to less than L makes FrEIA store None (`list.append` returns None); here the
 * slack section is appended as documented.
 */
import { argumentError, InnflowError } from '../errors'
import { cat, split } from '../ops/shape'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link Split} (FrEIA's keyword arguments). */
export interface SplitOptions extends InvertibleModuleOptions {
  /**
   * A number s: two sections [s, L − s]. An array: those section sizes (a last section takes any rest).
   * Takes precedence over nSections.
   */
  sectionSizes?: number | number[]
  /** Number of near-equal sections when sectionSizes is omitted (default 2; larger parts first). */
  nSections?: number
  /** The axis to split, counting non-batch axes (default 0, the channels; negative counts from the end). */
  dim?: number
}

/** @internal Normalises a non-batch axis index (negative counts from the end). */
export function moduleDim(name: string, dim: unknown, rank: number): number {
  if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < -rank || dim >= rank)
    throw argumentError(name, 'dim', `an integer in [${-rank}, ${rank - 1}] (an axis of the ${rank}-D input, batch not counted)`, dim)
  return dim < 0 ? dim + rank : dim
}

/**
 * Splits one input into several outputs along `dim`.
 * @example
 * const split = new Node(inp, modules.Split, { sectionSizes: [2, 3] })  // outputs split.out0, split.out1
 */
export class Split extends InvertibleModule {
  /** The axis split (non-batch numbering, normalised to be non-negative). */
  readonly dim: number
  /** The size of each section (FrEIA's `split_size_or_sections`). */
  readonly sectionSizes: number[]

  constructor(dimsIn: Dims[], opts: SplitOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['sectionSizes', 'nSections', 'dim'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    const shape = this.dimsIn[0]
    this.dim = moduleDim(name, o.dim ?? 0, shape.length)
    const size = shape[this.dim]
    const s = o.sectionSizes
    if (s === undefined || s === null) {
      const n = o.nSections ?? 2
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 2 || n > size)
        throw argumentError(name, 'nSections', `an integer in [2, ${size}] (axis ${this.dim} of ${dimsString(shape)} has size ${size})`, n)
      const q = Math.floor(size / n)
      const r = size % n
      this.sectionSizes = Array.from({ length: n }, (_, i) => (i < r ? q + 1 : q))
    } else if (typeof s === 'number') {
      if (!Number.isInteger(s) || s < 1 || s >= size)
        throw argumentError(name, 'sectionSizes', `an integer in [1, ${size - 1}] (axis ${this.dim} of ${dimsString(shape)} has size ${size})`, s)
      this.sectionSizes = [s, size - s]
    } else if (Array.isArray(s) && s.length > 0 && s.every((v) => typeof v === 'number' && Number.isInteger(v) && v > 0)) {
      const total = s.reduce((a, b) => a + b, 0)
      if (total > size)
        throw argumentError(name, 'sectionSizes', `positive integers adding up to at most ${size} (axis ${this.dim} of ${dimsString(shape)})`, s)
      this.sectionSizes = total < size ? [...s, size - total] : [...s]
    } else {
      throw argumentError(name, 'sectionSizes', 'a positive integer or a non-empty array of positive integers', s)
    }
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    if (rev) {
      this.checkInputs(x, this.outputDims(this.dimsIn))
      return [[cat(x, this.dim + 1)], 0]
    }
    this.checkInputs(x)
    return [split(x[0], this.sectionSizes, this.dim + 1), 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input, got ${inputDims.length}`)
    const shape = inputDims[0]
    const total = this.sectionSizes.reduce((a, b) => a + b, 0)
    if (shape.length <= this.dim || shape[this.dim] !== total)
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: input ${dimsString(shape)} does not have size ${total} on axis ${this.dim}`)
    return this.sectionSizes.map((s) => shape.map((d, j) => (j === this.dim ? s : d)))
  }
}

/** @deprecated FrEIA's deprecated alias of {@link Split}. */
export class SplitChannel extends Split {}
/** @deprecated FrEIA's deprecated alias of {@link Split}. */
export class Split1D extends Split {}
