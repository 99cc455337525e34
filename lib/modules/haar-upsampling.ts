/**
 * HaarUpsampling: the inverse of {@link HaarDownsampling} (FrEIA's `FrEIA.modules.HaarUpsampling`),
 * (4C, H, W) → (C, 2H, 2W): the input channels are read as Haar coefficients (4·c + k, or k·C + c with
 * `orderByWavelet`) and the image is rebuilt with (0.5 / rebalance)·H per 2×2 block.
 * log|det J| = −C·H·W·ln|rebalance| per sample (the negative of the downsampling's), a number.
 *
 * Deliberate difference from FrEIA: FrEIA builds this module as a downsampling of the UPSAMPLED shape, so its
 * `dims_in` attribute equals the output shape (and a built instance cannot be appended to a SequenceINN). Here
 * `dimsIn` is the real input shape. The `haar_weights` buffer keeps FrEIA's shape, (4C, 1, 2, 2) for an input
 * of 4C channels.
 */
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, ModuleOutput } from './base'
import { HaarDownsamplingOptions, haarOptions, haarTransform, haarWeights } from './haar-downsampling'
import { upsampledDims } from './irevnet-downsampling'

/** Options of {@link HaarUpsampling}: the same as HaarDownsampling's, describing the expected input. */
export type HaarUpsamplingOptions = HaarDownsamplingOptions

/**
 * Haar wavelet upsampling (4C, H, W) → (C, 2H, 2W), the inverse of HaarDownsampling with the same options.
 * @example
 * inn.append(modules.HaarUpsampling)                 // (12, 16, 16) → (3, 32, 32)
 */
export class HaarUpsampling extends InvertibleModule {
  /** FrEIA's `order_by_wavelet`: how the input channels are grouped. */
  readonly orderByWavelet: boolean
  /** FrEIA's `rebalance`. */
  readonly rebalance: number
  /** The number of image channels C of the full-resolution (output) side. */
  readonly inChannels: number
  /** FrEIA's fixed Haar kernel (4C, 1, 2, 2) (a buffer). Not used for computing. */
  readonly haarWeights: Tensor
  private readonly outDims: number[]

  constructor(dimsIn: Dims[], opts: HaarUpsamplingOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = haarOptions(name, opts)
    this.orderByWavelet = o.orderByWavelet
    this.rebalance = o.rebalance
    this.outDims = upsampledDims(name, this.dimsIn)
    this.inChannels = this.outDims[0]
    this.haarWeights = this.registerBuffer('haar_weights', haarWeights(this.inChannels))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.outDims] : this.dimsIn)
    const logDet = this.dimsIn[0].reduce((a, b) => a * b, 1) * Math.log(Math.abs(this.rebalance))
    if (rev) return [[haarTransform(x[0], true, this.orderByWavelet, 0.5 * this.rebalance)], logDet]
    return [[haarTransform(x[0], false, this.orderByWavelet, 0.5 / this.rebalance)], logDet === 0 ? 0 : -logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return [upsampledDims(this.constructor.name, inputDims)]
  }
}
