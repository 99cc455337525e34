/**
 * InvertiblePixelShuffle: torch's pixel shuffle as an invertible layer, invertnn's `InvertiblePixelShuffle`
 * (nn.PixelShuffle): (C·r², H, W) → (C, r·H, r·W) with
 *
 *   y[:, c, r·h + i, r·w + j] = x[:, c·r² + r·i + j, h, w]   (0 ≤ i, j < r),
 *
 * and the exact inverse (pixel unshuffle) in reverse. A permutation of the entries: log|det J| = 0 (the
 * number 0). Computed as one reshape–permute–reshape each way.
 *
 * Differences from invertnn (deliberate): invertnn's `invert` forgets to return its result (returns None),
 * and its helper `pixel_shuffle_inverse` uses the output height for both spatial sizes, so it is wrong for
 * non-square images; here the inverse uses H and W separately.
 */
import { argumentError, InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link InvertiblePixelShuffle}. */
export interface InvertiblePixelShuffleOptions extends InvertibleModuleOptions {
  /** The upscale factor r (required), a positive integer; the input channels must be divisible by r². */
  upscaleFactor?: number
}

/**
 * Moves blocks of r² channels into r×r pixel blocks: (C·r², H, W) → (C, r·H, r·W).
 * @example
 * inn.append(InvertiblePixelShuffle, { upscaleFactor: 2 })   // (12, 4, 6) → (3, 8, 12)
 */
export class InvertiblePixelShuffle extends InvertibleModule {
  /** The upscale factor r. */
  readonly upscaleFactor: number

  constructor(dimsIn: Dims[], opts: InvertiblePixelShuffleOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['upscaleFactor'])
    const r = o.upscaleFactor
    if (r === undefined || r === null) throw new InnflowError('ERR_ARGUMENT', `${name}: need to specify the upscaleFactor option`)
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw argumentError(name, 'upscaleFactor', 'a positive integer', r)
    this.upscaleFactor = r
    this.outputDims(this.dimsIn)
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    const r = this.upscaleFactor
    if (!rev) {
      this.checkInputs(x)
      const [b, cr2, h, w] = x[0].shape
      const c = cr2 / (r * r)
      const y = x[0].reshape([b, c, r, r, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, h * r, w * r])
      return [[y], 0]
    }
    this.checkInputs(x, this.outputDims(this.dimsIn))
    const [b, c, hr, wr] = x[0].shape
    const h = hr / r
    const w = wr / r
    const y = x[0].reshape([b, c, h, r, w, r]).permute([0, 1, 3, 5, 2, 4]).reshape([b, c * r * r, h, w])
    return [[y], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    const name = this.constructor.name
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input`)
    const d = inputDims[0]
    if (d.length !== 3) throw new InnflowError('ERR_SHAPE', `${name}: works on images of shape (C·r², H, W), got ${dimsString(d)}`)
    const r = this.upscaleFactor
    if (d[0] % (r * r) !== 0)
      throw new InnflowError('ERR_SHAPE', `${name}: the ${d[0]} input channels are not divisible by upscaleFactor² = ${r * r}`)
    return [[d[0] / (r * r), d[1] * r, d[2] * r]]
  }

  override extraRepr(): string {
    return `upscale_factor=${this.upscaleFactor}`
  }
}
