/**
 * IRevNetUpsampling: the inverse of {@link IRevNetDownsampling} (FrEIA's `FrEIA.modules.IRevNetUpsampling`),
 * (4C, H, W) → (C, 2H, 2W). Input channel 4·c + k (or k·C + c with `legacyBackend`) becomes the pixel at offset
 * k = 2r + s of the 2×2 blocks of channel c. Log-det 0.
 *
 * Deliberate difference from FrEIA: FrEIA builds this module as a downsampling of the UPSAMPLED shape, so its
 * `dims_in` attribute equals the output shape (and a built instance cannot be appended to a SequenceINN).
 * Here `dimsIn` is the real input shape. The `downsample_kernel` buffer keeps FrEIA's shape, (4C, 1, 2, 2) for
 * an input of 4C channels, so that state dicts load unchanged.
 */
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, ModuleOutput } from './base'
import {
  boolOption, checkOptionKeys, irevnetKernel, IRevNetDownsamplingOptions, SqueezeOrder, squeeze2x2, unsqueeze2x2, upsampledDims,
} from './irevnet-downsampling'

/** Options of {@link IRevNetUpsampling}: the same as IRevNetDownsampling's. */
export type IRevNetUpsamplingOptions = IRevNetDownsamplingOptions

/**
 * Invertible spatial upsampling (4C, H, W) → (C, 2H, 2W), the inverse of IRevNetDownsampling.
 * @example
 * inn.append(modules.IRevNetUpsampling)              // (12, 16, 16) → (3, 32, 32)
 */
export class IRevNetUpsampling extends InvertibleModule {
  /** FrEIA's `legacy_backend`: input channel k·C + c instead of 4·c + k. */
  readonly legacyBackend: boolean
  /** The number of image channels C of the full-resolution (output) side. */
  readonly channels: number
  /** FrEIA's fixed 0/1 kernel (4C, 1, 2, 2) (a buffer; null with legacyBackend). Not used for computing. */
  readonly downsampleKernel: Tensor | null
  private readonly order: SqueezeOrder
  private readonly outDims: number[]

  constructor(dimsIn: Dims[], opts: IRevNetUpsamplingOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['legacyBackend'])
    this.legacyBackend = boolOption(name, 'legacyBackend', o.legacyBackend, false)
    this.order = this.legacyBackend ? 'offsetMajor' : 'channelMajor'
    this.outDims = upsampledDims(name, this.dimsIn)
    this.channels = this.outDims[0]
    this.downsampleKernel = this.legacyBackend ? null : this.registerBuffer('downsample_kernel', irevnetKernel(this.channels))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.outDims] : this.dimsIn)
    return [[rev ? squeeze2x2(x[0], this.order) : unsqueeze2x2(x[0], this.order)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return [upsampledDims(this.constructor.name, inputDims)]
  }
}
