/**
 * InvertibleLinearSVD2D: {@link InvertibleLinearSVD} per pixel of images (C, H, W), invertnn's
 * `InvertibleLinear2D` — a general invertible 1×1 convolution in SVD form:
 *
 *   z[:, p] = W_V · diag(s) · W_U · x[:, p] + b,   reverse x = W_Uᵀ · diag(1/s) · W_Vᵀ · (z − b)
 *   log|det J| = H·W·Σ_c ln|s_c|
 *
 * Submodules `U` and `V` are {@link HouseholderTransform2D}s (V with the optional bias (1, C, 1, 1)), `S` a
 * {@link DiagonalLinearTransform2D} without bias (weight (1, C, 1, 1)).
 */
import { Dims } from './base'
import { InvertibleLinearSVD, InvertibleLinearSVDOptions } from './invertible-linear-svd'

/** Options of {@link InvertibleLinearSVD2D}: those of {@link InvertibleLinearSVD}. */
export type InvertibleLinearSVD2DOptions = InvertibleLinearSVDOptions

/**
 * A general invertible 1×1 convolution z = W_V·diag(s)·W_U·x + b per pixel.
 * @example
 * inn.append(InvertibleLinearSVD2D)   // on (C, H, W) data
 */
export class InvertibleLinearSVD2D extends InvertibleLinearSVD {
  /** @internal selects the per-pixel layout in the shared constructor */
  static readonly spatial = true

  constructor(dimsIn: Dims[], opts: InvertibleLinearSVD2DOptions = {}) {
    super(dimsIn, opts)
  }
}
