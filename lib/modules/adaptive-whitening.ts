/**
 * AdaptiveWhitening: a ZCA or PCA whitening layer whose statistics are fitted to remembered batches,
 * invertnn's `AdaptiveInverseWhiteningTransformer` (which maps white noise to data; innflow's forward is
 * data → latent, so here forward whitens and reverse "de-whitens"):
 *
 *   'zca' (default):  z = Q · diag(1/s) · Qᵀ · (x − μ),   reverse x = Q · diag(s) · Qᵀ · z + μ
 *   'pca':            z =     diag(1/s) · Qᵀ · (x − μ),   reverse x = Q · diag(s) · z + μ
 *   log|det J| = −Σᵢ ln|sᵢ| (× H·W for images)   (per sample; negated in reverse)
 *
 * per sample for 1-D inputs (n), per pixel across channels for images (C, H, W). Q is an orthogonal matrix
 * of Householder reflections (submodule `U`, a {@link HouseholderTransform} or {@link HouseholderTransform2D}
 * without bias), s a scale (submodule `S`, a {@link DiagonalLinearTransform}(2D) without bias) and μ the
 * parameter `bias` ((1, n) or (1, C, 1, 1)). All three are ordinary parameters (trainable by gradient too).
 *
 * In training mode every forward call remembers a detached copy of its input (the last
 * `observationMemoryBatches` batches); {@link AdaptiveWhitening.adapt} then sets, from the mean μ and the
 * biased covariance C = u·diag(σ)·uᵀ of the remembered samples (eigenvalues σ in decreasing order):
 * Q = u, s = √(σ + eps), μ = μ — so that the whitened data have covariance u·diag(σ/(σ + eps))·uᵀ ≈ I
 * ('zca' is the symmetric whitening C^(−1/2); 'pca' gives the principal components, largest variance
 * first, each scaled to unit variance). With `autoAdaptEvery` = k > 0, forward adapts by itself on the 1st,
 * (k+1)-th, (2k+1)-th... remembered batch, before transforming it.
 *
 * Differences from invertnn (deliberate): directions as above; the PCA mode subtracts the mean (invertnn's
 * PCA bias is never applied); `autoAdaptEvery: 1` adapts on every batch (invertnn's `n % 1 == 1` never
 * fires); the log-det is the forward map's with shape (B,) (invertnn's has the +1 and (B, 1) bugs of its
 * mixins). invertnn's gradient-based `adapt_step` is left out: the closed-form `adapt` is exact.
 * The eigendecomposition is a shifted QR algorithm in float64 composed of `ops.linalg.qr` and GEMMs
 * (innflow has no symmetric eigensolver op yet).
 */
import { noGrad } from '../autograd/tape'
import { core } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { qr } from '../ops/linalg'
import { cat } from '../ops/shape'
import { keep, tidy } from '../scope'
import { eye, tensor, Tensor, zeros } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { DiagonalLinearTransform } from './diagonal-linear-transform'
import { DiagonalLinearTransform2D } from './diagonal-linear-transform-2d'
import { channelCount, channelParamShape, HouseholderTransform } from './householder-transform'
import { HouseholderTransform2D } from './householder-transform-2d'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link AdaptiveWhitening}. */
export interface AdaptiveWhiteningOptions extends InvertibleModuleOptions {
  /** 'zca' (symmetric whitening, the default) or 'pca' (principal components). */
  method?: 'zca' | 'pca'
  /** How many of the latest forward batches `adapt` uses (a positive integer, default 5). */
  observationMemoryBatches?: number
  /** Adapt automatically on every k-th remembered batch (0, the default, never). */
  autoAdaptEvery?: number
  /** Added to the variances before the square root, s = √(σ + eps) (≥ 0, default 1e-5). */
  eps?: number
}

/**
 * Eigenvalues (decreasing) and orthonormal eigenvectors (columns) of a symmetric matrix, float64, no
 * gradient: the QR algorithm with Wilkinson shifts and deflation, each step A ← R·Q + μI for
 * A − μI = Q·R (a similarity transform), accumulating V ← V·Q. @internal
 */
export function symmetricEigen(C: Tensor): { values: Tensor; vectors: Tensor } {
  return tidy(() =>
    noGrad(() => {
      const n = C.shape[0]
      const f64 = { dtype: 'float64' as const, device: C.device }
      let A = C.to(f64)
      A = A.add(A.t()).mul(0.5)
      let V = eye(n, f64)
      const scale = Math.sqrt(A.square().sum().item())
      const values = new Array<number>(n).fill(0)
      // rounding leaves entries of order ε·‖A‖·√n after each step; below this they count as zero
      const tol = 8 * n * Number.EPSILON * scale
      let m = n
      let steps = 0
      while (m > 1) {
        const off = Math.sqrt(A.narrow(0, m - 1, 1).narrow(1, 0, m - 1).square().sum().item())
        if (off <= tol) {
          values[m - 1] = A.narrow(0, m - 1, 1).narrow(1, m - 1, 1).item()
          A = A.narrow(0, 0, m - 1).narrow(1, 0, m - 1).clone()
          m--
          continue
        }
        if (++steps > 60 * n) throw new InnflowError('ERR_ARGUMENT', `AdaptiveWhitening: the eigendecomposition of the covariance did not converge`)
        const [a, b, , d] = Array.from(A.narrow(0, m - 2, 2).narrow(1, m - 2, 2).toArray())
        const delta = (a - d) / 2
        const denom = Math.abs(delta) + Math.hypot(delta, b)
        const mu = denom === 0 ? d : d - ((delta >= 0 ? 1 : -1) * b * b) / denom
        const next = tidy(() => {
          const I = eye(m, f64).mul(mu)
          const { Q, R } = qr(A.sub(I))
          const An = R.matmul(Q).add(I)
          const Vm = V.narrow(1, 0, m).matmul(Q)
          return { A: An.add(An.t()).mul(0.5), V: m < n ? cat([Vm, V.narrow(1, m, n - m)], 1) : Vm }
        })
        A = next.A
        V = next.V
      }
      values[0] = A.reshape([1]).item()
      const order = values.map((_, i) => i).sort((i, j) => values[j] - values[i])
      return { values: tensor(order.map((i) => values[i]), [n], f64), vectors: V.indexSelect(1, order) }
    }),
  )
}

/**
 * ZCA/PCA whitening fitted to the data it has seen.
 * @example
 * const w = new AdaptiveWhitening([[8]], { method: 'zca' })
 * w.forward([batch])   // remembers the batch (training mode)
 * w.adapt()            // now w whitens data like it
 */
export class AdaptiveWhitening extends InvertibleModule {
  readonly method: 'zca' | 'pca'
  readonly observationMemoryBatches: number
  readonly autoAdaptEvery: number
  readonly eps: number
  /** The mean μ subtracted before whitening, (1, n) or (1, C, 1, 1). */
  readonly bias: Tensor
  /** The orthogonal factor Q. */
  readonly U: HouseholderTransform
  /** The scales s. */
  readonly S: DiagonalLinearTransform
  private readonly spatial: boolean
  private memory: Tensor[] = []
  private seen = 0

  constructor(dimsIn: Dims[], opts: AdaptiveWhiteningOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['method', 'observationMemoryBatches', 'autoAdaptEvery', 'eps'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    this.spatial = this.dimsIn[0].length === 3
    const n = channelCount(name, this.dimsIn, this.spatial)
    const method = o.method ?? 'zca'
    if (method !== 'zca' && method !== 'pca') throw argumentError(name, 'method', "'zca' or 'pca'", o.method)
    this.method = method
    const mem = o.observationMemoryBatches ?? 5
    if (typeof mem !== 'number' || !Number.isInteger(mem) || mem < 1) throw argumentError(name, 'observationMemoryBatches', 'a positive integer', mem)
    this.observationMemoryBatches = mem
    const every = o.autoAdaptEvery ?? 0
    if (typeof every !== 'number' || !Number.isInteger(every) || every < 0) throw argumentError(name, 'autoAdaptEvery', 'a non-negative integer (0: never)', every)
    this.autoAdaptEvery = every
    const eps = o.eps ?? 1e-5
    if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) throw argumentError(name, 'eps', 'a finite number >= 0', eps)
    this.eps = eps
    this.bias = this.registerParameter('bias', zeros(channelParamShape(n, this.spatial)))
    const H = this.spatial ? HouseholderTransform2D : HouseholderTransform
    const D = this.spatial ? DiagonalLinearTransform2D : DiagonalLinearTransform
    this.U = this.registerModule('U', new H(this.dimsIn, { bias: false }))
    this.S = this.registerModule('S', new D(this.dimsIn, { bias: false }))
  }

  /** How many batches forward has remembered so far (including those the memory has dropped since). */
  get observations(): number {
    return this.seen
  }

  /** The number of batches currently remembered (at most observationMemoryBatches). */
  get rememberedBatches(): number {
    return this.memory.length
  }

  /** Forgets the remembered batches (frees them). */
  clearMemory(): void {
    for (const t of this.memory) t.dispose()
    this.memory = []
  }

  private observe(x: Tensor): void {
    const copy = keep(noGrad(() => x.detach().clone()))
    this.memory.push(copy)
    while (this.memory.length > this.observationMemoryBatches) (this.memory.shift() as Tensor).dispose()
    this.seen++
    if (this.autoAdaptEvery > 0 && (this.seen - 1) % this.autoAdaptEvery === 0) this.adapt()
  }

  /**
   * Fits μ, Q and s to the remembered batches (see the file comment). Throws ERR_ARGUMENT when nothing is
   * remembered, or when a variance is 0 with eps = 0 (the whitening would not be invertible). Returns this.
   */
  adapt(): this {
    const name = `${this.constructor.name}.adapt`
    if (this.memory.length === 0)
      throw new InnflowError('ERR_ARGUMENT', `${name}: no batches remembered yet; call forward in training mode first`)
    noGrad(() =>
      tidy(() => {
        const n = this.S.weight.size
        let X = cat(this.memory, 0).to({ dtype: 'float64' })
        if (this.spatial) X = X.permute([0, 2, 3, 1]).reshape([-1, n])
        const mean = X.mean(0, true)
        const centred = X.sub(mean)
        const cov = centred.t().matmul(centred).div(X.shape[0])
        const { values, vectors } = symmetricEigen(cov)
        const s = values.maximum(0).add(this.eps).sqrt()
        if (Array.from(s.toArray()).some((v) => !(v > 0)))
          throw new InnflowError('ERR_ARGUMENT', `${name}: the covariance is singular and eps is 0, so the whitening would not be invertible; use eps > 0`)
        this.U.setMatrix(vectors)
        core.copyInto(this.S.weight.handle, s.reshape(this.S.weight.shape).to({ dtype: this.S.weight.dtype }).handle)
        core.copyInto(this.bias.handle, mean.reshape(this.bias.shape).to({ dtype: this.bias.dtype }).handle)
      }),
    )
    return this
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    if (!rev) {
      if (this.training) this.observe(x[0])
      const [[rotated]] = this.U.forward([x[0].sub(this.bias)], [], true)
      const [[scaled], logDet] = this.S.forward([rotated], [], true)
      if (this.method === 'pca') return [[scaled], logDet]
      return [this.U.forward([scaled])[0], logDet]
    }
    const rotated = this.method === 'pca' ? x[0] : this.U.forward([x[0]], [], true)[0][0]
    const [[scaled], logDet] = this.S.forward([rotated])
    const [[back]] = this.U.forward([scaled])
    return [[back.add(this.bias)], logDet]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `method=${this.method}, observation_memory_batches=${this.observationMemoryBatches}`
  }
}
