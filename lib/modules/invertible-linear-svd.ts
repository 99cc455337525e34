/**
 * InvertibleLinearSVD: a learned invertible linear map of 1-D inputs in SVD form, invertnn's
 * `InvertibleLinear` (an InvertibleSequential of U, S and V):
 *
 *   z = W_V · diag(s) · W_U · x + b,   reverse x = W_Uᵀ · diag(1/s) · W_Vᵀ · (z − b)   (closed form)
 *   log|det J| = Σᵢ ln|sᵢ|   (negated in reverse)
 *
 * W_U and W_V are orthogonal matrices made of Householder reflections (submodules `U` and `V`, two
 * {@link HouseholderTransform}s, V carrying the optional bias) and s a non-zero scale (submodule `S`, a
 * {@link DiagonalLinearTransform} without bias). Any invertible matrix M has this form (its SVD, with the
 * signs of M's determinant absorbed into the reflections), so this is a general invertible linear layer
 * whose inverse and log-det never need an LU factorisation. State keys: `U.weight`, `S.weight`,
 * `V.weight`, `V.bias`. Initialisation: s = 1, so M = W_V·W_U is a random orthogonal matrix.
 *
 * Differences from invertnn (deliberate): the log-det is that of the forward map with shape (B,) (invertnn
 * adds +1 per orthogonal factor through a mixin bug and mixes (B, 1) and (B,) shapes into (B, B)); V's bias
 * is applied (invertnn's 1-D OrthogonalTransform never adds it).
 *
 * {@link InvertibleLinearSVD2D} applies the same composition per pixel of images (C, H, W).
 */
import { Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { DiagonalLinearTransform } from './diagonal-linear-transform'
import { DiagonalLinearTransform2D } from './diagonal-linear-transform-2d'
import { channelCount, HouseholderTransform } from './householder-transform'
import { HouseholderTransform2D } from './householder-transform-2d'
import { boolOption, checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link InvertibleLinearSVD} and {@link InvertibleLinearSVD2D}. */
export interface InvertibleLinearSVDOptions extends InvertibleModuleOptions {
  /** Learn an offset b (parameter `V.bias`, initialised to 0). Default true. */
  bias?: boolean
}

/**
 * A general invertible linear layer z = W_V·diag(s)·W_U·x + b.
 * @example
 * inn.append(InvertibleLinearSVD)
 */
export class InvertibleLinearSVD extends InvertibleModule {
  /** The first orthogonal factor (applied first). */
  readonly U: HouseholderTransform
  /** The diagonal scale. */
  readonly S: DiagonalLinearTransform
  /** The second orthogonal factor and the bias. */
  readonly V: HouseholderTransform

  constructor(dimsIn: Dims[], opts: InvertibleLinearSVDOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['bias'])
    const spatial = (new.target as unknown as { spatial?: boolean }).spatial === true
    channelCount(name, this.dimsIn, spatial)
    const withBias = boolOption(name, 'bias', o.bias, true)
    const H = spatial ? HouseholderTransform2D : HouseholderTransform
    const D = spatial ? DiagonalLinearTransform2D : DiagonalLinearTransform
    this.U = this.registerModule('U', new H(this.dimsIn, { bias: false }))
    this.S = this.registerModule('S', new D(this.dimsIn, { bias: false }))
    this.V = this.registerModule('V', new H(this.dimsIn, { bias: withBias }))
  }

  /** The assembled matrix M = W_V·diag(s)·W_U (differentiable). */
  matrix(): Tensor {
    return this.V.matrix().mul(this.S.weight.reshape([1, this.S.weight.size])).matmul(this.U.matrix())
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const order = rev ? [this.V, this.S, this.U] : [this.U, this.S, this.V]
    let h = x
    let logDet: Tensor | number | null = 0
    for (const m of order) {
      const [out, j] = m.forward(h, [], rev)
      h = out
      if (typeof j !== 'number' && j !== null) logDet = j
    }
    return [h, logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    return this.U.outputDims(inputDims)
  }
}
