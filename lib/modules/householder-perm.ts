/**
 * HouseholderPerm (FrEIA.modules.HouseholderPerm): a learned orthogonal map of 1-D inputs as a product of
 * Householder reflections (Mathiesen et al. 2020), row-vector convention as FrEIA:
 *
 *   W = H(v₁)·H(v₂)·…·H(vₙ),  H(v) = I − 2vvᵀ/‖v‖²
 *   forward  y = x·W;  reverse  x = y·Wᵀ;  log|det J| = 0 (W is orthogonal)
 *
 * Unconditional: the reflection vectors are the rows of the parameter `Vs` (n × D), initialised to
 * (eye(D, n) + 0.1·N(0, 1))ᵀ (near the identity), or N(0, 1) with `fixed`. With `fixed`, W is computed once
 * at construction and stored as a parameter that is not trained (requiresGrad = false) under TWO keys, `W` and
 * `weight` (FrEIA registers it twice); `Vs` stays a trainable but unused parameter, as in FrEIA.
 *
 * Conditional (dimsC = [shape with D·n elements]): each sample's condition holds its own reflection vectors,
 * read as a (D, n) matrix whose columns are v₁..vₙ; there are no parameters and gradients flow into the
 * condition. FrEIA builds the batch of matrices but then multiplies with a 2-D matmul and crashes ("mat2 must
 * be a matrix"); innflow applies each sample's W to that sample (y_b = x_b·W_b).
 *
 * FrEIA refuses nReflections < 2 ("Need at least 2 householder reflections.", a limitation of its WY-product
 * code), so its default of 1 always fails. innflow multiplies the reflections one by one and accepts any
 * nReflections ≥ 1, keeping the default 1 (a single reflection).
 */
import { noGrad } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { matmul } from '../ops'
import { tidy } from '../scope'
import { eye, randn, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link HouseholderPerm} (FrEIA's keyword arguments in camelCase). */
export interface HouseholderPermOptions extends InvertibleModuleOptions {
  /** Number of reflections n (positive integer, default 1). */
  nReflections?: number
  /** Draw the reflections at random once and keep W fixed (default false; not with a condition). */
  fixed?: boolean
}

/**
 * The product H(v₁)·…·H(vₙ) of the reflections whose vectors are the rows of V (..., n, D) → (..., D, D),
 * accumulated left to right: P ← P − 2(P v)vᵀ/‖v‖². Differentiable (composed of ops).
 */
export function householderProduct(V: Tensor): Tensor {
  const n = V.shape[V.ndim - 2]
  const d = V.shape[V.ndim - 1]
  const batch = V.shape.slice(0, -2)
  let P = eye(d, { dtype: V.dtype, device: V.device })
  if (batch.length > 0) P = P.reshape([...batch.map(() => 1), d, d]).expand([...batch, d, d])
  for (let i = 0; i < n; i++) {
    const v = V.narrow(V.ndim - 2, i, 1) // (..., 1, D)
    const scale = v.square().sum(V.ndim - 1, true).reciprocal().mul(2) // (..., 1, 1)
    P = P.sub(matmul(matmul(P, v.transpose(-2, -1)), v).mul(scale))
  }
  return P
}

/**
 * Orthogonal map x ↦ x·W with W a product of learned (or conditioned) Householder reflections.
 * @example new HouseholderPerm([[10]], { nReflections: 4 })
 */
export class HouseholderPerm extends InvertibleModule {
  readonly width: number
  readonly nReflections: number
  readonly fixed: boolean
  readonly conditional: boolean
  /** Reflection vectors as rows, (n, D) (key `Vs`); null in conditional mode. */
  readonly Vs: Tensor | null
  /** The fixed product (keys `W` and `weight`); null unless `fixed`. */
  readonly W: Tensor | null

  constructor(dimsIn: Dims[], opts: HouseholderPermOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    if (this.dimsIn[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${fn}: the input must be 1-D, got dims (${this.dimsIn[0].join(', ')})`)
    const n = opts.nReflections ?? 1
    if (!Number.isInteger(n) || n < 1) throw argumentError(fn, 'options.nReflections', 'a positive integer', opts.nReflections)
    const fixed = opts.fixed ?? false
    if (typeof fixed !== 'boolean') throw argumentError(fn, 'options.fixed', 'a boolean', opts.fixed)
    this.width = this.dimsIn[0][0]
    this.nReflections = n
    this.fixed = fixed
    this.conditional = this.dimsC.length > 0
    const d = this.width
    if (this.conditional) {
      if (this.dimsC.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn}: no more than one condition is supported, got ${this.dimsC.length}`)
      if (fixed) throw new InnflowError('ERR_ARGUMENT', `${fn}: the reflections cannot be fixed and conditional at once`)
      const size = this.dimsC[0].reduce((a, b) => a * b, 1)
      if (size !== d * n)
        throw new InnflowError('ERR_SHAPE', `${fn}: the condition (${this.dimsC[0].join(', ')}) must hold input size × nReflections = ${d}·${n} = ${d * n} values, got ${size}`)
      this.Vs = null
      this.W = null
      return
    }
    const init = noGrad(() =>
      tidy(() => {
        if (fixed) return randn([d, n]).t()
        const m = Math.max(d, n)
        return eye(m).narrow(0, 0, d).narrow(1, 0, n).add(randn([d, n]).mul(0.1)).t()
      }),
    )
    this.Vs = this.registerParameter('Vs', init)
    if (fixed) {
      const W = noGrad(() => householderProduct(init))
      this.W = this.registerParameter('W', W)
      this.registerParameter('weight', W)
      W.requiresGrad = false
    } else this.W = null
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const batch = x[0].shape[0]
    const cs = this.checkConditions(c, batch)
    if (this.conditional) {
      // each sample's condition is its (D, n) matrix of column vectors; the rows of Vs are the vectors
      const Vs = cs[0].reshape([batch, this.width, this.nReflections]).transpose(1, 2)
      let W = householderProduct(Vs)
      if (rev) W = W.transpose(1, 2)
      return [[matmul(x[0].unsqueeze(1), W).squeeze(1)], 0]
    }
    const W = this.fixed ? (this.W as Tensor) : householderProduct(this.Vs as Tensor)
    return [[matmul(x[0], rev ? W.t() : W)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    if (inputDims[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: the input must be 1-D`)
    return [[...inputDims[0]]]
  }
}
