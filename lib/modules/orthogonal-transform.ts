/**
 * OrthogonalTransform (FrEIA.modules.OrthogonalTransform): a learned orthogonal matrix with a soft-clamped
 * scaling and a bias, for 1-D inputs (row-vector convention, as FrEIA):
 *
 *   ls = clamp · 0.636 · atan(scaling / clamp)       (FrEIA's constant 0.636 ≈ 2/π; the docstring differs)
 *   forward  z = (x·W + b) ⊙ e^{ls}
 *   reverse  x = (z ⊙ e^{−ls} − b)·Wᵀ
 *   log|det J| = Σ ls, the same for every sample (negated in reverse); exact while W is orthogonal
 *
 * W (`weights`, D×D) is trained as a free matrix and projected back onto the orthogonal matrices from time to
 * time: FrEIA hooks the module's backward pass and counts backward passes; once the counter exceeds
 * `correctionInterval`, the rows of W are re-orthonormalised in place by Gram–Schmidt and the counter restarts
 * at randint(0, correctionInterval) // 4 (it starts at randint(0, correctionInterval) // 2). innflow does the
 * same: the output passes through an identity node on the autograd tape whose backward counts and corrects
 * (so, as in PyTorch, the correction happens during backward, before an optimiser step; the gradients of that
 * backward were computed for the old W). The random restarts draw from innflow's generator.
 *
 * Init: W = an orthogonal matrix (FrEIA: the U factor of the SVD of a random symmetric matrix; innflow: the
 * sign-normalised Q factor of the QR decomposition of one, equally orthogonal — initial values cannot match
 * PyTorch's random stream anyway), `bias` = 0.05·N(0, 1) (1, D), `scaling` = 0.02·N(0, 1) (1, D).
 */
import { isGradEnabled, noGrad, record } from '../autograd/tape'
import { core } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { linalg, matmul } from '../ops'
import { tidy } from '../scope'
import { eye, rand, randn, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link OrthogonalTransform} (FrEIA's keyword arguments in camelCase). */
export interface OrthogonalTransformOptions extends InvertibleModuleOptions {
  /** Re-orthonormalise W after about this many backward passes (positive integer, default 256). */
  correctionInterval?: number
  /** Soft clamp of the log-scaling, |ls| < clamp (positive, default 5). */
  clamp?: number
}

/** Rows of R made orthonormal by Gram–Schmidt (in order), via the QR decomposition of Rᵀ with a positive diagonal. */
function orthonormalRows(R: Tensor): Tensor {
  const n = R.shape[0]
  const { Q, R: tri } = linalg.qr(R.t())
  // Gram–Schmidt's vectors are Q's columns times the signs of R's diagonal (Householder QR may flip them)
  const signs = tri.mul(eye(n, { dtype: R.dtype, device: R.device })).sum(0).sign()
  return Q.mul(signs.reshape([1, n])).t()
}

/**
 * Learned orthogonal transform with scaling and bias: z = (x·W + b) ⊙ exp(clamp·0.636·atan(s/clamp)).
 * @example new OrthogonalTransform([[16]], { correctionInterval: 100 })
 */
export class OrthogonalTransform extends InvertibleModule {
  readonly width: number
  readonly clamp: number
  readonly correctionInterval: number
  /** Backward passes counted since the last correction (FrEIA's `back_counter`). */
  backCounter: number
  /** W, D×D (key `weights`). */
  readonly weights: Tensor
  /** b, (1, D) (key `bias`). */
  readonly bias: Tensor
  /** s, (1, D) (key `scaling`). */
  readonly scaling: Tensor

  constructor(dimsIn: Dims[], opts: OrthogonalTransformOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    if (this.dimsIn[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${fn}: the input must be 1-D, got dims (${this.dimsIn[0].join(', ')})`)
    const interval = opts.correctionInterval ?? 256
    if (!Number.isInteger(interval) || interval < 1) throw argumentError(fn, 'options.correctionInterval', 'a positive integer', opts.correctionInterval)
    const clamp = opts.clamp ?? 5.0
    if (typeof clamp !== 'number' || !Number.isFinite(clamp) || !(clamp > 0)) throw argumentError(fn, 'options.clamp', 'a positive finite number', opts.clamp)
    this.width = this.dimsIn[0][0]
    this.clamp = clamp
    this.correctionInterval = interval
    const w = noGrad(() =>
      tidy(() => {
        const a = randn([this.width, this.width])
        return orthonormalRows(a.add(a.t()))
      }),
    )
    this.weights = this.registerParameter('weights', w)
    this.bias = this.registerParameter('bias', randn([1, this.width]).mul(0.05))
    this.scaling = this.registerParameter('scaling', randn([1, this.width]).mul(0.02))
    this.backCounter = Math.floor(this.randint(interval) / 2)
  }

  /** A uniform integer in [0, n) from innflow's generator (numpy's randint(0, n) in FrEIA). */
  private randint(n: number): number {
    return tidy(() => Math.min(Math.floor(rand([1], { dtype: 'float64' }).item() * n), n - 1))
  }

  /** Re-orthonormalises the rows of W in place (FrEIA's `orth_correction`). */
  orthogonalize(): void {
    noGrad(() => tidy(() => core.copyInto(this.weights.handle, orthonormalRows(this.weights).handle)))
  }

  /** What FrEIA's backward hook does on each backward pass through the module. */
  private onBackward(): void {
    this.backCounter += 1
    if (this.backCounter > this.correctionInterval) {
      this.backCounter = Math.floor(this.randint(this.correctionInterval) / 4)
      this.orthogonalize()
    }
  }

  /** Passes y through an identity node whose backward runs {@link onBackward}. */
  private hooked(y: Tensor): Tensor {
    if (!isGradEnabled() || !y.requiresGrad) return y
    const out = noGrad(() => y.reshape([...y.shape]))
    record('OrthogonalTransform.backwardHook', [y], [out], (gs) => {
      this.onBackward()
      return [gs[0]]
    })
    return out
  }

  /** The log-det is returned whatever `jac` says (FrEIA ignores the flag here). */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const batch = x[0].shape[0]
    this.checkConditions(c, batch)
    const logScaling = this.scaling.div(this.clamp).atan().mul(this.clamp * 0.636)
    const j = logScaling.sum(1).expand([batch])
    if (!rev) return [[this.hooked(matmul(x[0], this.weights).add(this.bias).mul(logScaling.exp()))], j]
    return [[this.hooked(matmul(x[0].mul(logScaling.neg().exp()).sub(this.bias), this.weights.t()))], j.neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    if (inputDims[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: the input must be 1-D`)
    return [[...inputDims[0]]]
  }
}
