/**
 * IRevNetDownsampling: the invertible 2×2 "squeeze" of i-RevNet (Jacobsen et al. 2018), FrEIA's
 * `FrEIA.modules.IRevNetDownsampling`. Each 2×2 block of every channel becomes one pixel of four channels:
 * (C, H, W) → (4C, H/2, W/2). Volume-preserving (log-det 0).
 *
 * Output channel order (k = 2·r + s for the offset (r, s) of a pixel inside its 2×2 block):
 * - default: channel 4·c + k — FrEIA's strided convolution with the fixed 0/1 `downsample_kernel`;
 * - `legacyBackend: true`: channel k·C + c — FrEIA's split-and-stack backend from the i-RevNet code.
 * Both are computed here as one reshape-permute-reshape (a single copy, no convolution); the
 * `downsample_kernel` buffer is kept only so that state dicts match FrEIA's.
 *
 * This file also holds the 2×2 squeeze helpers shared with IRevNetUpsampling and the Haar modules.
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { tensor, Tensor } from '../tensor'
import { checkOptionKeys, Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

export { checkOptionKeys }

// ------------------------------------------------------------------------------------------ shared helpers


/** @internal Reads a boolean option (default when undefined). */
export function boolOption(name: string, key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw argumentError(name, key, 'a boolean', value)
  return value
}

/** @internal Validates the single (C, H, W) input of a 2×2 downsampling and returns its output shape. */
export function downsampledDims(name: string, inputDims: readonly Dims[]): number[] {
  if (!Array.isArray(inputDims) || inputDims.length !== 1)
    throw new InnflowError('ERR_SHAPE', `${name}: must have exactly 1 input, got ${Array.isArray(inputDims) ? inputDims.length : typeof inputDims}`)
  const d = inputDims[0]
  if (d.length !== 3) throw new InnflowError('ERR_SHAPE', `${name}: can only transform images of shape (C, H, W), got ${dimsString(d)}`)
  const [c, h, w] = d
  if (h % 2 !== 0 || w % 2 !== 0)
    throw new InnflowError('ERR_SHAPE', `${name}: input ${dimsString(d)} cannot be cleanly reshaped: height and width must be even`)
  return [4 * c, h / 2, w / 2]
}

/** @internal Validates the single (4C, H, W) input of a 2×2 upsampling and returns its output shape. */
export function upsampledDims(name: string, inputDims: readonly Dims[]): number[] {
  if (!Array.isArray(inputDims) || inputDims.length !== 1)
    throw new InnflowError('ERR_SHAPE', `${name}: must have exactly 1 input, got ${Array.isArray(inputDims) ? inputDims.length : typeof inputDims}`)
  const d = inputDims[0]
  if (d.length !== 3) throw new InnflowError('ERR_SHAPE', `${name}: can only transform images of shape (C, H, W), got ${dimsString(d)}`)
  const [c, h, w] = d
  if (c % 4 !== 0) throw new InnflowError('ERR_SHAPE', `${name}: input ${dimsString(d)} cannot be cleanly reshaped: the channel count must be a multiple of 4`)
  return [c / 4, 2 * h, 2 * w]
}

/**
 * @internal The channel layouts of a squeezed tensor: 'channelMajor' puts the four block offsets of input
 * channel c at 4c..4c+3; 'offsetMajor' puts offset k of every channel together at kC..kC+C−1.
 */
export type SqueezeOrder = 'channelMajor' | 'offsetMajor'

/**
 * @internal (B, C, H, W) → the four block offsets k = 2r + s as their own axis, without merging it into the
 * channels: (B, C, 4, H/2·W/2) for 'channelMajor', (B, 4, C·H/2·W/2) for 'offsetMajor'. One permute (copy).
 */
export function squeezeBlocks(x: Tensor, order: SqueezeOrder): Tensor {
  const [b, c, h, w] = x.shape
  const h2 = h / 2
  const w2 = w / 2
  // (B, C, h2, r, w2, s): pixel (2i + r, 2j + s)
  const blocks = x.reshape([b, c, h2, 2, w2, 2])
  if (order === 'channelMajor') return blocks.permute([0, 1, 3, 5, 2, 4]).reshape([b, c, 4, h2 * w2])
  return blocks.permute([0, 3, 5, 1, 2, 4]).reshape([b, 4, c * h2 * w2])
}

/**
 * @internal Inverse of {@link squeezeBlocks}: q holds the block offsets as laid out by `order` (any shape with
 * the same number of elements as (B, C, 4, h2·w2)); returns the (B, C, 2·h2, 2·w2) image.
 */
export function unsqueezeBlocks(q: Tensor, order: SqueezeOrder, b: number, c: number, h2: number, w2: number): Tensor {
  if (order === 'channelMajor') return q.reshape([b, c, 2, 2, h2, w2]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, 2 * h2, 2 * w2])
  return q.reshape([b, 2, 2, c, h2, w2]).permute([0, 3, 4, 1, 5, 2]).reshape([b, c, 2 * h2, 2 * w2])
}

/** @internal The 2×2 squeeze (C, H, W) → (4C, H/2, W/2) in the given channel order. */
export function squeeze2x2(x: Tensor, order: SqueezeOrder): Tensor {
  const [b, c, h, w] = x.shape
  return squeezeBlocks(x, order).reshape([b, 4 * c, h / 2, w / 2])
}

/** @internal The inverse squeeze (4C, H, W) → (C, 2H, 2W) in the given channel order. */
export function unsqueeze2x2(y: Tensor, order: SqueezeOrder): Tensor {
  const [b, c4, h2, w2] = y.shape
  return unsqueezeBlocks(y, order, b, c4 / 4, h2, w2)
}

/**
 * @internal FrEIA's `downsample_kernel` for C image channels: (4C, 1, 2, 2), 1 at [4c + k, 0, r, s] for
 * k = 2r + s, else 0 (the grouped stride-2 convolution that performs the channel-major squeeze).
 */
export function irevnetKernel(channels: number): Tensor {
  const v = new Array<number>(16 * channels).fill(0)
  for (let c = 0; c < channels; c++) for (let k = 0; k < 4; k++) v[(4 * c + k) * 4 + k] = 1
  return tensor(v, [4 * channels, 1, 2, 2], { dtype: getDefaultDtype() })
}

// ------------------------------------------------------------------------------------------ the module

/** Options of {@link IRevNetDownsampling} and {@link IRevNetUpsampling} (FrEIA's keyword arguments). */
export interface IRevNetDownsamplingOptions extends InvertibleModuleOptions {
  /**
   * Order the output channels as FrEIA's legacy backend does: channel k·C + c (all top-left pixels first,
   * then all top-right, bottom-left, bottom-right) instead of the default 4·c + k. Default false.
   * With true the module has no `downsample_kernel` buffer, as in FrEIA.
   */
  legacyBackend?: boolean
}

/**
 * Invertible spatial downsampling (C, H, W) → (4C, H/2, W/2) by regrouping each 2×2 block into channels.
 * @example
 * const inn = new SequenceINN(3, 32, 32)
 * inn.append(modules.IRevNetDownsampling)            // → (12, 16, 16)
 */
export class IRevNetDownsampling extends InvertibleModule {
  /** FrEIA's `legacy_backend`. */
  readonly legacyBackend: boolean
  /** The number of image channels C of the full-resolution side. */
  readonly channels: number
  /** FrEIA's fixed 0/1 kernel (4C, 1, 2, 2) (a buffer; null with legacyBackend). Not used for computing. */
  readonly downsampleKernel: Tensor | null
  private readonly order: SqueezeOrder
  private readonly outDims: number[]

  constructor(dimsIn: Dims[], opts: IRevNetDownsamplingOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['legacyBackend'])
    this.legacyBackend = boolOption(name, 'legacyBackend', o.legacyBackend, false)
    this.order = this.legacyBackend ? 'offsetMajor' : 'channelMajor'
    this.outDims = downsampledDims(name, this.dimsIn)
    this.channels = this.dimsIn[0][0]
    this.downsampleKernel = this.legacyBackend ? null : this.registerBuffer('downsample_kernel', irevnetKernel(this.channels))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.outDims] : this.dimsIn)
    return [[rev ? unsqueeze2x2(x[0], this.order) : squeeze2x2(x[0], this.order)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return [downsampledDims(this.constructor.name, inputDims)]
  }
}
