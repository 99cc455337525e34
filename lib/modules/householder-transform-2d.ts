/**
 * HouseholderTransform2D: the per-pixel version of {@link HouseholderTransform} for images (C, H, W),
 * invertnn's `OrthogonalTransform2D` (a 1×1 convolution with an orthogonal kernel):
 *
 *   z[:, p] = W·x[:, p] + b   for every pixel p,   W = H(v₀)·…·H(v_{C−1}),   H(v) = I − 2·v·vᵀ / ‖v‖²
 *
 * with the reflection vectors in the upper triangle of `weight` (C, C) exactly as in the 1-D module (see
 * there), and `bias` of shape (1, C, 1, 1) (initialised to 0; invertnn draws it from N(0, 1)).
 * Reverse x = Wᵀ·(z − b) per pixel; log|det J| = 0 (returned as the number 0; invertnn's mixin returns +1).
 * Computed as one GEMM of W with the (B, C, H·W) view of the batch.
 */
import { Dims } from './base'
import { HouseholderTransform, HouseholderTransformOptions } from './householder-transform'

/** Options of {@link HouseholderTransform2D}: those of {@link HouseholderTransform}. */
export type HouseholderTransform2DOptions = HouseholderTransformOptions

/**
 * An orthogonal 1×1 convolution parameterised by C Householder reflections (log-det 0).
 * @example
 * inn.append(HouseholderTransform2D)   // on (C, H, W) data
 */
export class HouseholderTransform2D extends HouseholderTransform {
  /** @internal selects the per-pixel layout in the shared constructor */
  static readonly spatial = true

  constructor(dimsIn: Dims[], opts: HouseholderTransform2DOptions = {}) {
    super(dimsIn, opts)
  }
}
