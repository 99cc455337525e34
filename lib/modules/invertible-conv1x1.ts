/**
 * InvertibleConv1x1: Glow's learnable invertible 1×1 convolution (Kingma & Dhariwal 2018, section 3.2), which
 * FrEIA lacks (its issue #50). A C×C matrix W mixes the channels of every position of a (C, *spatial) input —
 * a 1×1 convolution for (C, H, W) images, a plain linear map y = W·x for 1-D (C,) data:
 *
 *   forward  y[:, :, p] = W·x[:, :, p]       log|det J| = S·log|det W|       (S = number of positions, H·W)
 *   reverse  x[:, :, p] = W⁻¹·y[:, :, p]     log|det J| = −S·log|det W|
 *
 * `lu: true` (the default, Glow's LU-decomposed parameterisation):
 *   W = P·L·(U + diag(sign·exp(logS))) with P a fixed permutation matrix, L unit lower triangular, U strictly
 *   upper triangular, sign a fixed ±1 vector, so log|det W| = Σ logS costs O(C) and W⁻¹ = (U + diag)⁻¹·L⁻¹·Pᵀ
 *   comes from forward and back substitution, never from a general matrix inverse. Both W and W⁻¹ are built
 *   by one native kernel (native/cpu/lu_conv.cc, {@link luConvWeight}) whose backward carries the gradient
 *   into L, U and logS.
 *   State dict: `w_p` (buffer, C×C permutation matrix), `w_l` (parameter, C×C, only its strictly lower
 *   triangle is used), `w_u` (parameter, C×C, only its strictly upper triangle is used), `log_s` (parameter,
 *   (C,)), `s_sign` (buffer, (C,), ±1). The unused triangles hold zeros and receive zero gradients; storing
 *   full matrices keeps the parameter count of the common PyTorch Glow code (C² + C² + C per layer).
 * `lu: false`: W is learned directly (parameter `weight`, C×C); log|det W| by slogdet and W⁻¹ from the LU
 *   factorisation of W (ops.linalg.lu and two triangular solves), each with its native backward.
 *
 * Initialisation (both): W is a random orthogonal matrix, the Q of the QR decomposition of a standard normal
 * C×C matrix drawn from innflow's generator, with its columns multiplied by sign(diag R) so that Q is
 * distributed uniformly (Haar) over the orthogonal group; log|det W| starts at 0.
 * @example
 * const inn = new SequenceINN(4, 8, 8)
 * inn.append(InvertibleConv1x1)                 // LU-parameterised
 * inn.append(InvertibleConv1x1, { lu: false })  // W learned directly
 */
import { noGrad } from '../autograd/tape'
import { getDefaultDtype } from '../dtype'
import { argumentError, InnflowError } from '../errors'
import * as linalg from '../ops/linalg'
import { linear } from '../ops/matmul'
import { luConvWeight } from '../ops/lu-conv'
import { tidy } from '../scope'
import { eye, randn, tensor, Tensor } from '../tensor'
import { checkOptionKeys, Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link InvertibleConv1x1}. */
export interface InvertibleConv1x1Options extends InvertibleModuleOptions {
  /**
   * LU-parameterised weight W = P·L·(U + diag(sign·exp(logS))) (true, the default: O(C) log-det, inverse by
   * triangular substitution), or W learned directly (false: log-det by slogdet, inverse through LU).
   */
  lu?: boolean
}

function triangleMask(c: number, lower: boolean): Tensor {
  const v = new Array<number>(c * c).fill(0)
  for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) if (lower ? j < i : j > i) v[i * c + j] = 1
  return tensor(v, [c, c], { dtype: getDefaultDtype() })
}

/** A Haar-distributed random orthogonal C×C matrix from innflow's generator. */
function randomRotation(c: number): Tensor {
  const { Q, R } = linalg.qr(randn([c, c]))
  const d = R.mul(eye(c, { dtype: R.dtype })).sum(0) // diag(R)
  return Q.mul(d.sign().reshape([1, c]))
}

/**
 * Glow's learnable invertible 1×1 convolution (see the file comment).
 * @example
 * const conv = new InvertibleConv1x1([[4, 8, 8]])
 * const [[y], logDet] = conv.forward([x])          // logDet = 64·Σ log_s per sample
 */
export class InvertibleConv1x1 extends InvertibleModule {
  /** Whether W is LU-parameterised. */
  readonly lu: boolean
  /** The number of channels C. */
  readonly channels: number
  /** lu: the permutation matrix P (buffer `w_p`, C×C). */
  readonly wP: Tensor | null = null
  /** lu: L's strictly lower triangle (parameter `w_l`, C×C). */
  readonly wL: Tensor | null = null
  /** lu: U's strictly upper triangle (parameter `w_u`, C×C). */
  readonly wU: Tensor | null = null
  /** lu: log|diagonal of U| (parameter `log_s`, (C,)). */
  readonly logS: Tensor | null = null
  /** lu: the signs of U's diagonal (buffer `s_sign`, (C,)). */
  readonly sSign: Tensor | null = null
  /** lu: false: W itself (parameter `weight`, C×C). */
  readonly weight: Tensor | null = null
  private readonly positions: number

  constructor(dimsIn: Dims[], opts: InvertibleConv1x1Options = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['lu'])
    if (this.dimsC.length > 0) throw new InnflowError('ERR_ARGUMENT', `${name} is unconditional (dimsC must be empty)`)
    this.checkDims(name, this.dimsIn)
    const lu = o.lu ?? true
    if (typeof lu !== 'boolean') throw argumentError(name, 'lu', 'a boolean', lu)
    this.lu = lu
    const c = this.dimsIn[0][0]
    this.channels = c
    this.positions = this.dimsIn[0].slice(1).reduce((a, b) => a * b, 1)
    if (!lu) {
      this.weight = this.registerParameter('weight', tidy(() => noGrad(() => randomRotation(c))))
      return
    }
    const f = tidy(() =>
      noGrad(() => {
        const { P, L, U } = linalg.lu(randomRotation(c))
        const d = U.mul(eye(c, { dtype: U.dtype })).sum(0) // diag(U), never 0 for an orthogonal W
        return [P, L.mul(triangleMask(c, true)), U.mul(triangleMask(c, false)), d.abs().log(), d.sign()]
      }),
    )
    this.wP = this.registerBuffer('w_p', f[0])
    this.wL = this.registerParameter('w_l', f[1])
    this.wU = this.registerParameter('w_u', f[2])
    this.logS = this.registerParameter('log_s', f[3])
    this.sSign = this.registerBuffer('s_sign', f[4])
  }

  private checkDims(name: string, dims: readonly Dims[]): void {
    if (dims.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${dims.length}`)
    if (dims[0].length < 1)
      throw new InnflowError('ERR_SHAPE', `${name}: needs a channel axis: (C,) or (C, H, W), got ${dimsString(dims[0])}`)
  }

  /** The weight W (differentiable in the parameters). */
  assembledWeight(): Tensor {
    if (this.weight) return this.weight
    return luConvWeight(this.wP as Tensor, this.wL as Tensor, this.wU as Tensor, this.logS as Tensor, this.sSign as Tensor)
  }

  /**
   * W⁻¹ (differentiable in the parameters): with lu, Ũ⁻¹·L̃⁻¹·Pᵀ by substitution in one native kernel;
   * without, from W's LU factorisation and two triangular solves.
   */
  inverseWeight(): Tensor {
    if (this.weight) {
      const { P, L, U } = linalg.lu(this.weight)
      const y = linalg.solveTriangular(L, P.t(), { upper: false, unitriangular: true })
      return linalg.solveTriangular(U, y, { upper: true })
    }
    return luConvWeight(this.wP as Tensor, this.wL as Tensor, this.wU as Tensor, this.logS as Tensor, this.sSign as Tensor, { inverse: true })
  }

  /** log|det W| as a 0-d tensor (differentiable). */
  logAbsDetWeight(): Tensor {
    if (this.weight) return linalg.slogdet(this.weight).logabsdet
    return (this.logS as Tensor).sum()
  }

  /** y = W·x per position (W⁻¹·y in reverse); log-det ±S·log|det W| per sample. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    if (c && c.length > 0) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} is unconditional (got conditions)`)
    this.checkInputs(x)
    const h = x[0]
    const param = (this.weight ?? this.logS) as Tensor
    if (h.dtype !== param.dtype)
      throw new InnflowError('ERR_DTYPE', `${this.constructor.name}: the input is ${h.dtype} but the parameters are ${param.dtype}; convert one (x.to({ dtype }) or module.to({ dtype }))`)
    const w = rev ? this.inverseWeight() : this.assembledWeight()
    const b = h.shape[0]
    // 1-D: one linear map per sample; images: the same C×C matrix applied to the (C, S) block of each sample
    const y = h.ndim === 2 ? linear(h, w) : w.matmul(h.reshape([b, this.channels, this.positions])).reshape([...h.shape])
    const logDet = this.logAbsDetWeight().mul(rev ? -this.positions : this.positions).expand([b])
    return [[y], logDet]
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    this.checkDims(this.constructor.name, inputDims)
    return inputDims.map((d) => [...d])
  }

  override extraRepr(): string {
    return `dims_in=[${dimsString(this.dimsIn[0])}], lu=${this.lu}`
  }
}
