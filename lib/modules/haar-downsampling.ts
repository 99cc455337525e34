/**
 * HaarDownsampling: one level of the 2-D Haar wavelet transform per channel (FrEIA's
 * `FrEIA.modules.HaarDownsampling`), (C, H, W) → (4C, H/2, W/2).
 *
 * For each channel and 2×2 block [[a, b], [c, d]] the four outputs are, with f = 0.5·rebalance,
 *   average    f·(a + b + c + d)      vertical   f·(a − b + c − d)
 *   horizontal f·(a + b − c − d)      diagonal   f·(a − b − c + d)
 * i.e. f·H·q for q = (a, b, c, d) and the symmetric 4×4 Haar matrix H (H·H = 4I, so the inverse is
 * (0.5 / rebalance)·H). Output channel 4·c + k by default (a1, v1, h1, d1, a2, …); k·C + c with
 * `orderByWavelet` (all averages first, then each detail type).
 *
 * log|det J| = C·H·W·ln|rebalance| per sample (0 for the default rebalance 1; FrEIA writes it as
 * numel·(ln 16 + 4·ln f)/4), returned as a number; the reverse returns its negative.
 *
 * Computed as one reshape-permute (the squeeze) and one batched 4×4 matrix product, instead of FrEIA's grouped
 * stride-2 convolution; the `haar_weights` buffer (4C, 1, 2, 2) is kept so that state dicts match FrEIA's.
 * Deliberate differences from FrEIA: its reverse pass scales the caller's tensor in place when
 * orderByWavelet is false (a bug: it modifies the input and fails on leaves that require grad); here the input is
 * never modified. A negative rebalance gives FrEIA a NaN log-det; here ln|rebalance| (the true value).
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { tensor, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { boolOption, checkOptionKeys, downsampledDims, SqueezeOrder, squeezeBlocks, unsqueezeBlocks } from './irevnet-downsampling'

/** Options of {@link HaarDownsampling} and {@link HaarUpsampling} (FrEIA's keyword arguments). */
export interface HaarDownsamplingOptions extends InvertibleModuleOptions {
  /**
   * Group the output channels by wavelet (a1, a2, …, v1, v2, …, h1, …, d1, …) instead of by input channel
   * (a1, v1, h1, d1, a2, …). Useful to split off the averages with a Split of the first quarter. Default false.
   */
  orderByWavelet?: boolean
  /**
   * Factor applied to the wavelet coefficients in the forward direction (the reverse divides by it); must be
   * non-zero. Values below 1 (e.g. 0.5) may make training more stable. Default 1.
   */
  rebalance?: number
}

/** The Haar matrix: row k = wavelet (average, vertical, horizontal, diagonal), column 2r + s = block pixel. */
const HAAR = [
  [1, 1, 1, 1],
  [1, -1, 1, -1],
  [1, 1, -1, -1],
  [1, -1, -1, 1],
]

/** @internal FrEIA's `haar_weights` for C channels: (4C, 1, 2, 2), [4c + k, 0, r, s] = H[k][2r + s]. */
export function haarWeights(channels: number): Tensor {
  const v: number[] = []
  for (let c = 0; c < channels; c++) for (const row of HAAR) v.push(...row)
  return tensor(v, [4 * channels, 1, 2, 2], { dtype: getDefaultDtype() })
}

/** @internal Validated Haar options. */
export function haarOptions(name: string, opts: HaarDownsamplingOptions | undefined): { orderByWavelet: boolean; rebalance: number } {
  const o = checkOptionKeys(name, opts, ['orderByWavelet', 'rebalance'])
  const orderByWavelet = boolOption(name, 'orderByWavelet', o.orderByWavelet, false)
  const rebalance = o.rebalance ?? 1
  if (typeof rebalance !== 'number' || !Number.isFinite(rebalance)) throw argumentError(name, 'rebalance', 'a finite non-zero number', rebalance)
  if (rebalance === 0) throw new InnflowError('ERR_ARGUMENT', `${name}: 'rebalance' must be != 0`)
  return { orderByWavelet, rebalance }
}

/**
 * @internal The Haar transform of x (B, C, H, W) → (B, 4C, H/2, W/2) when `down`, else its inverse
 * (B, 4C, H, W) → (B, C, 2H, 2W). `factor` multiplies H (0.5·rebalance down, 0.5/rebalance up).
 */
export function haarTransform(x: Tensor, down: boolean, orderByWavelet: boolean, factor: number): Tensor {
  const order: SqueezeOrder = orderByWavelet ? 'offsetMajor' : 'channelMajor'
  const m = tensor(HAAR.flat().map((v) => v * factor), [4, 4], { dtype: x.dtype, device: x.device })
  const [b, c, h, w] = x.shape
  if (down) {
    // (B, C, 4, P) or (B, 4, C·P): the offset axis is the second-to-last one, so H multiplies from the left
    const q = squeezeBlocks(x, order)
    return m.matmul(q).reshape([b, 4 * c, h / 2, w / 2])
  }
  const q = orderByWavelet ? x.reshape([b, 4, (c / 4) * h * w]) : x.reshape([b, c / 4, 4, h * w])
  return unsqueezeBlocks(m.matmul(q), order, b, c / 4, h, w)
}

/**
 * Haar wavelet downsampling (C, H, W) → (4C, H/2, W/2).
 * @example
 * inn.append(modules.HaarDownsampling, { orderByWavelet: true, rebalance: 0.5 })
 */
export class HaarDownsampling extends InvertibleModule {
  /** FrEIA's `order_by_wavelet` (its attribute is called `permute`). */
  readonly orderByWavelet: boolean
  /** FrEIA's `rebalance`. */
  readonly rebalance: number
  /** The number of image channels C of the full-resolution side. */
  readonly inChannels: number
  /** FrEIA's fixed Haar kernel (4C, 1, 2, 2) (a buffer). Not used for computing. */
  readonly haarWeights: Tensor
  private readonly outDims: number[]

  constructor(dimsIn: Dims[], opts: HaarDownsamplingOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = haarOptions(name, opts)
    this.orderByWavelet = o.orderByWavelet
    this.rebalance = o.rebalance
    this.outDims = downsampledDims(name, this.dimsIn)
    this.inChannels = this.dimsIn[0][0]
    this.haarWeights = this.registerBuffer('haar_weights', haarWeights(this.inChannels))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.outDims] : this.dimsIn)
    const logDet = this.dimsIn[0].reduce((a, b) => a * b, 1) * Math.log(Math.abs(this.rebalance))
    if (!rev) return [[haarTransform(x[0], true, this.orderByWavelet, 0.5 * this.rebalance)], logDet]
    return [[haarTransform(x[0], false, this.orderByWavelet, 0.5 / this.rebalance)], logDet === 0 ? 0 : -logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return [downsampledDims(this.constructor.name, inputDims)]
  }
}
