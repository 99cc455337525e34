/**
 * DiagonalLinearTransform2D: {@link DiagonalLinearTransform} per channel of images (C, H, W), invertnn's
 * `DiagonalLinearTransform2D` (a 1×1 convolution with a diagonal kernel):
 *
 *   z[:, c, h, w] = w_c · x[:, c, h, w] + b_c,   reverse x = (z − b) / w,   log|det J| = H·W·Σ_c ln|w_c|
 *
 * State: `weight` and `bias` of shape (1, C, 1, 1); initialised to the identity (invertnn: N(0, 1)).
 */
import { Dims } from './base'
import { DiagonalLinearTransform, DiagonalLinearTransformOptions } from './diagonal-linear-transform'

/** Options of {@link DiagonalLinearTransform2D}: those of {@link DiagonalLinearTransform}. */
export type DiagonalLinearTransform2DOptions = DiagonalLinearTransformOptions

/**
 * A learned per-channel scale and offset of images.
 * @example
 * inn.append(DiagonalLinearTransform2D)   // on (C, H, W) data
 */
export class DiagonalLinearTransform2D extends DiagonalLinearTransform {
  /** @internal selects the per-channel image layout in the shared constructor */
  static readonly spatial = true

  constructor(dimsIn: Dims[], opts: DiagonalLinearTransform2DOptions = {}) {
    super(dimsIn, opts)
  }
}
