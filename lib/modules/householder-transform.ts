/**
 * HouseholderTransform: an orthogonal linear map of 1-D inputs parameterised by Householder reflections,
 * invertnn's `OrthogonalTransform` (renamed: FrEIA's `OrthogonalTransform` is a different module).
 *
 *   z = W·x + b,   W = H(v₀)·H(v₁)·…·H(v_{n−1}),   H(v) = I − 2·v·vᵀ / ‖v‖²   (H(0) = I)
 *
 * vᵢ is row i of the parameter `weight` (n, n) restricted to its upper triangle (columns i..n−1; the entries
 * below the diagonal are not used and get no gradient; a constant non-persistent buffer `mask` selects the
 * triangle). This triangular layout is the one a Householder QR produces, so every orthogonal matrix is
 * reachable: the first n − 1 reflections bring any orthogonal matrix to diag(1, …, 1, ±1), and the last row
 * holds a single number, weight[n−1][n−1], whose reflection flips the last coordinate when it is non-zero
 * and is the identity when it is 0 (this replaces invertnn's `h1` attribute, so that the choice is part of
 * the state dict). A row that is entirely zero is the identity too (as in invertnn).
 * Reverse x = Wᵀ·(z − b). log|det J| = 0 (W is orthogonal); returned as the number 0.
 *
 * State: `weight` (n, n), drawn from N(0, 1) as in invertnn, and `bias` (1, n) when `bias` is true (the
 * default), initialised to 0. Differences from invertnn, all deliberate: invertnn computes x·Wᵢ for row vectors
 * x with its `W` property Wᵢ = (H(v₀)·…·H(v_{n−1}))ᵀ — the same map as W·x here, written for column vectors
 * so that the 1-D and per-pixel modules agree (invertnn's 2-D class applies Wᵢ·x, the transposed product); invertnn never
 * adds its 1-D bias (here it is added) and draws it from N(0, 1) (here 0: a random shift at initialisation
 * serves no purpose); its log-det is +1 per sample through a mixin bug (here 0).
 *
 * {@link HouseholderTransform.setMatrix} writes the reflections of a given orthogonal matrix (invertnn's
 * `W = M` setter, through a Householder QR), {@link HouseholderTransform.matrix} assembles W.
 *
 * This file also holds the helpers shared by the invertnn linear modules (1-D and per-pixel layouts).
 */
import { noGrad } from '../autograd/tape'
import { core } from '../binding'
import { getDefaultDtype } from '../dtype'
import { InnflowError } from '../errors'
import { where } from '../ops/elementwise'
import { solveTriangular } from '../ops/linalg'
import { linear } from '../ops/matmul'
import { cat, stack } from '../ops/shape'
import { tidy } from '../scope'
import { checkTensor, eye, randn, tensor, Tensor, zeros } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { boolOption, checkOptionKeys } from './irevnet-downsampling'

// ------------------------------------------------------------------------------------------ shared helpers

/**
 * @internal Validates the single input of a channel-mixing module and returns its channel count: 1-D (n)
 * inputs for the 1-D modules, images (C, H, W) for the per-pixel ("2D") ones.
 */
export function channelCount(name: string, dimsIn: readonly Dims[], spatial: boolean): number {
  if (dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${dimsIn.length}`)
  const d = dimsIn[0]
  if (spatial && d.length !== 3) throw new InnflowError('ERR_SHAPE', `${name}: works per pixel on images of shape (C, H, W), got ${dimsString(d)}`)
  if (!spatial && d.length !== 1)
    throw new InnflowError('ERR_SHAPE', `${name}: works on 1-D inputs (n,), got ${dimsString(d)} (use the 2D variant for images)`)
  return d[0]
}

/** @internal The shape of a per-channel parameter: (1, n) for 1-D inputs, (1, C, 1, 1) for images. */
export const channelParamShape = (c: number, spatial: boolean): number[] => (spatial ? [1, c, 1, 1] : [1, c])

/**
 * @internal M·x for every sample (x (B, n)) or every pixel (x (B, C, H, W)), or Mᵀ·x with `transposed`.
 * One GEMM either way: x·Mᵀ for rows, M (C, C) times the (B, C, H·W) view for pixels.
 */
export function applyChannelMatrix(x: Tensor, M: Tensor, transposed = false): Tensor {
  if (x.ndim === 2) return transposed ? x.matmul(M) : linear(x, M)
  const [b, c] = x.shape
  const flat = x.reshape([b, c, x.size / (b * c)])
  return (transposed ? M.t() : M).matmul(flat).reshape(x.shape)
}

/**
 * @internal W = H(v₀)·H(v₁)·…·H(v_{n−1}) for the rows vᵢ of V (n, n), in the compact WY form of Schreiber
 * & Van Loan: with the rows scaled to unit length (ûᵢ = vᵢ/‖vᵢ‖, which changes no reflection) and Y = Ûᵀ,
 * the product is I − Y·T·Yᵀ where T is upper triangular with T⁻¹ = S = strict upper triangle of YᵀY + ½·I.
 * So W = I − Ûᵀ·X with S·X = Û — one Gram matrix, one triangular solve and one GEMM instead of n sequential
 * rank-1 updates, all differentiable in V. The unit scaling keeps S well scaled and makes a reflection with
 * a single non-zero entry exact (û = ±e, W = diag(…, −1) without rounding), so that such a weight entry,
 * on which W does not depend, has a numerically zero derivative too. A zero row is the identity: it stays
 * zero (its norm is replaced by 1 before the square root, so no 0/0 reaches the values or the gradient),
 * its diagonal entry of S is 1 instead of ½, and its row and column of S are zero, so its row of X is zero.
 */
export function householderProduct(V: Tensor): Tensor {
  const n = V.shape[0]
  const I = eye(n, { dtype: V.dtype, device: V.device })
  const norms = V.square().sum(1, true)
  const nonzero = norms.gt(0)
  const unit = V.div(where(nonzero, norms, 1).sqrt())
  const diag = where(nonzero, 0.5, 1).reshape([1, n])
  // the solver reads only the upper triangle; the diagonal is set exactly (½ or 1), not taken from the Gram matrix
  const S = linear(unit, unit).mul(I.neg().add(1)).add(I.mul(diag))
  const X = solveTriangular(S, unit, { upper: true })
  return I.sub(unit.t().matmul(X))
}

/** @internal The 0/1 mask of the entries of `weight` that hold reflection vectors (upper triangle). */
function upperMask(n: number): Tensor {
  const v = new Array<number>(n * n).fill(0)
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) v[i * n + j] = 1
  return new Tensor(core.fromArray(v, [n, n], getDefaultDtype()))
}

/** @internal Throws ERR_SHAPE/ERR_ARGUMENT unless Q is an n×n orthogonal matrix (QᵀQ = I within tol). */
export function checkOrthogonal(fn: string, Q: unknown, n: number): Tensor {
  const t = checkTensor(fn, 'M', Q)
  if (t.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: M was disposed`)
  if (t.ndim !== 2 || t.shape[0] !== n || t.shape[1] !== n)
    throw new InnflowError('ERR_SHAPE', `${fn}: M must be a ${n}×${n} matrix, got shape [${t.shape.join(', ')}]`)
  const tol = t.dtype === 'float64' ? 1e-9 : 1e-5
  const err = tidy(() =>
    noGrad(() => {
      const q = t.to({ dtype: 'float64' })
      return q.t().matmul(q).sub(eye(n, { dtype: 'float64' })).abs().sum().item()
    }),
  )
  if (!(err <= tol * n * n)) throw new InnflowError('ERR_ARGUMENT', `${fn}: M must be orthogonal (MᵀM = I), but ‖MᵀM − I‖₁ = ${err.toExponential(3)}`)
  return t
}

/**
 * @internal Householder vectors V (rows, upper-triangular) with householderProduct(V) = Q for an orthogonal
 * Q (float64, no gradient). Column by column, the reflection H(v) = I − 2vvᵀ/‖v‖² with v = a − ‖a‖·e₁ maps
 * the trailing part a of column i to ‖a‖·e₁ (a positive diagonal, so that the product of the reflections
 * equals Q itself, not Q times signs); v₁ = a₁ − ‖a‖ is formed as −‖a₂..‖² / (a₁ + ‖a‖) when a₁ > 0 to avoid
 * the cancellation (Golub & Van Loan, Alg. 5.1.1). The last column needs only a sign: v = 0 (identity) when
 * the remaining entry is positive, 1 (a flip) otherwise.
 */
export function householderVectors(Q: Tensor): Tensor {
  return tidy(() =>
    noGrad(() => {
      const n = Q.shape[0]
      let A = Q.to({ dtype: 'float64' })
      const rows: Tensor[] = []
      for (let i = 0; i < n; i++) {
        const a = A.narrow(1, i, 1).narrow(0, i, n - i).reshape([n - i])
        const a1 = a.narrow(0, 0, 1).item()
        let v: Tensor
        if (i === n - 1) v = tensor([a1 > 0 ? 0 : 1], [1], { dtype: 'float64' })
        else {
          const rest = a.narrow(0, 1, n - i - 1)
          const restSq = rest.square().sum().item()
          const norm = Math.sqrt(a1 * a1 + restSq)
          const v1 = a1 > 0 ? -restSq / (a1 + norm) : a1 - norm
          v = cat([tensor([v1], [1], { dtype: 'float64' }), rest])
        }
        const u = i === 0 ? v : cat([zeros([i], { dtype: 'float64' }), v])
        rows.push(u)
        const uu = u.square().sum().item()
        if (uu > 0) {
          const ur = u.reshape([1, n])
          A = A.sub(ur.t().matmul(ur.matmul(A)).mul(2 / uu))
        }
      }
      return stack(rows)
    }),
  )
}

// ------------------------------------------------------------------------------------------ the module

/** Options of {@link HouseholderTransform} and {@link HouseholderTransform2D}. */
export interface HouseholderTransformOptions extends InvertibleModuleOptions {
  /** Learn an offset b (parameter `bias`, initialised to 0). Default true. */
  bias?: boolean
}

/**
 * An orthogonal map z = W·x + b of 1-D inputs with W a product of n Householder reflections (log-det 0).
 * @example
 * inn.append(HouseholderTransform)                 // 1-D data
 * const m = new HouseholderTransform([[4]], { bias: false })
 * m.setMatrix(someRotation)                        // W = someRotation
 */
export class HouseholderTransform extends InvertibleModule {
  /** Reflection vectors as the rows of the upper triangle, (n, n). */
  readonly weight: Tensor
  /** The offset b, (1, n) (or (1, C, 1, 1) per pixel), or null without bias. */
  readonly bias: Tensor | null
  /** @internal true for the per-pixel variant */
  protected readonly spatial: boolean
  private readonly mask: Tensor

  constructor(dimsIn: Dims[], opts: HouseholderTransformOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['bias'])
    this.spatial = (new.target as unknown as { spatial?: boolean }).spatial === true
    const n = channelCount(name, this.dimsIn, this.spatial)
    const withBias = boolOption(name, 'bias', o.bias, true)
    this.weight = this.registerParameter('weight', randn([n, n]))
    this.bias = this.registerParameter('bias', withBias ? zeros(channelParamShape(n, this.spatial)) : null)
    this.mask = upperMask(n)
    // not state (a constant of the layout), but exempt from tidy like the parameters
    this.registerBuffer('mask', this.mask, false)
  }

  /**
   * The assembled orthogonal matrix W = H(v₀)·…·H(v_{n−1}) (differentiable in `weight`). A float32 module
   * assembles it in float64 and rounds once (the n×n work is small next to the batch GEMM), so W is
   * orthogonal to float32 precision however the reflections are conditioned.
   */
  matrix(): Tensor {
    const V = this.weight.mul(this.mask)
    if (V.dtype === 'float64') return householderProduct(V)
    return householderProduct(V.to({ dtype: 'float64' })).to({ dtype: V.dtype })
  }

  /**
   * Sets the reflections so that W equals the orthogonal matrix M (n×n; ERR_ARGUMENT if MᵀM ≠ I, ERR_SHAPE
   * for a wrong shape). invertnn's `W = M` setter. The bias is not changed. Returns this.
   */
  setMatrix(M: Tensor): this {
    const name = `${this.constructor.name}.setMatrix`
    const n = this.weight.shape[0]
    const Q = checkOrthogonal(name, M, n)
    noGrad(() =>
      tidy(() => {
        core.copyInto(this.weight.handle, householderVectors(Q).to({ dtype: this.weight.dtype }).handle)
      }),
    )
    return this
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const W = this.matrix()
    if (!rev) {
      const z = applyChannelMatrix(x[0], W)
      return [[this.bias ? z.add(this.bias) : z], 0]
    }
    const centred = this.bias ? x[0].sub(this.bias) : x[0]
    return [[applyChannelMatrix(centred, W, true)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `n=${this.weight.shape[0]}, bias=${this.bias !== null}`
  }
}
