/**
 * DiagonalLinearTransform: a learned elementwise affine map of 1-D inputs, invertnn's
 * `DiagonalLinearTransform`:
 *
 *   z = w ⊙ x + b,   reverse x = (z − b) / w,   log|det J| = Σᵢ ln|wᵢ|   (per sample; negated in reverse)
 *
 * State: `weight` (1, n) and `bias` (1, n) (without bias when `bias` is false). w must stay non-zero; its
 * sign is free. Initialised to the identity (w = 1, b = 0). Differences from invertnn, all deliberate:
 * invertnn draws w and b from N(0, 1) (weights near zero make the map nearly singular — its own tests accept
 * reconstruction errors of 6e-4), and returns its log-det for the inverse direction with shape (B, 1); here
 * the log-det is that of the forward map, shape (B,).
 *
 * {@link DiagonalLinearTransform2D} is the per-channel version for images (the same file layout, × H·W).
 */
import { InnflowError } from '../errors'
import { ones, Tensor, zeros } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { channelCount, channelParamShape } from './householder-transform'
import { boolOption, checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link DiagonalLinearTransform} and {@link DiagonalLinearTransform2D}. */
export interface DiagonalLinearTransformOptions extends InvertibleModuleOptions {
  /** Learn an offset b (parameter `bias`, initialised to 0). Default true. */
  bias?: boolean
}

/**
 * z = w ⊙ x + b with a learned non-zero scale per feature.
 * @example
 * inn.append(DiagonalLinearTransform)
 */
export class DiagonalLinearTransform extends InvertibleModule {
  /** The scale w, (1, n) (or (1, C, 1, 1) per channel). */
  readonly weight: Tensor
  /** The offset b (same shape as weight), or null without bias. */
  readonly bias: Tensor | null
  /** @internal positions that share one scale: 1, or H·W for images */
  private readonly positions: number

  constructor(dimsIn: Dims[], opts: DiagonalLinearTransformOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['bias'])
    const spatial = (new.target as unknown as { spatial?: boolean }).spatial === true
    const n = channelCount(name, this.dimsIn, spatial)
    this.positions = this.dimsIn[0].slice(1).reduce((a, b) => a * b, 1)
    const shape = channelParamShape(n, spatial)
    this.weight = this.registerParameter('weight', ones(shape))
    this.bias = this.registerParameter('bias', boolOption(name, 'bias', o.bias, true) ? zeros(shape) : null)
  }

  /** Σ ln|w| × positions per channel, as a (batch,) tensor (differentiable in w). */
  private logDet(batch: number): Tensor {
    return this.weight.abs().log().sum().mul(this.positions).reshape([1]).expand([batch])
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const batch = x[0].shape[0]
    if (!rev) {
      const z = x[0].mul(this.weight)
      return [[this.bias ? z.add(this.bias) : z], this.logDet(batch)]
    }
    const centred = this.bias ? x[0].sub(this.bias) : x[0]
    return [[centred.div(this.weight)], this.logDet(batch).neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `n=${this.weight.size}, bias=${this.bias !== null}`
  }
}
