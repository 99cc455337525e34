/**
 * GaussianMixtureModel (FrEIA.modules.GaussianMixtureModel): an invertible map between data x (D,) and a
 * standard normal latent, given a Gaussian mixture whose parameters arrive as conditions (typically from a
 * mixture density network), c = [w, mu, U_entries, i]:
 *
 *   w          (B, K)           mixture weights (positive, summing to one: see normalizeWeights)
 *   mu         (B, K, D)        component means
 *   U_entries  (B, K, D(D+1)/2) entries of the upper-triangular Cholesky factors U of the precision matrices:
 *                               diag(U) = exp(U_entries[..., :D]); the strictly upper part, row by row, is
 *                               U_entries[..., D:]
 *   i          component indices (B,) (integers held in a float tensor), or a number (a seed for
 *              pickMixtureComponent), or null / omitted (all components at once)
 *
 * With fixed components (i given): z_b = U_{b,i_b}(x_b − μ_{b,i_b}), log|det J| = Σ U_entries[b, i_b, :D];
 * reverse x = μ + U⁻¹z (FrEIA multiplies by the explicit inverse; innflow solves the triangular system,
 * the same map to rounding). With all components: x (B, D) is compared with every component, z is (B, K, D)
 * and the log-det (B, K); the reverse takes z (B, K, D). With `jac: false` the log-det is null (FrEIA: None).
 * No parameters. Losses for training: nllLoss and nllUpperBound.
 */
import { noGrad } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { cat, linalg, matmul, maximum } from '../ops'
import { checkTensor, rand, tensor, Tensor, zeros } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** The component selector: indices (B,), a seed, or null for all components. */
export type MixtureComponents = Tensor | number | null

/** The conditions of {@link GaussianMixtureModel.forward}: [w, mu, U_entries] or [w, mu, U_entries, i]. */
export type GaussianMixtureConditions = [Tensor, Tensor, Tensor] | [Tensor, Tensor, Tensor, MixtureComponents] | (Tensor | number | null)[]

const shapeText = (s: readonly number[]): string => `(${s.join(', ')})`

/** The row-wise maximum over the last dimension (keepdim), by a halving tree of elementwise maxima. */
function lastDimMax(x: Tensor): Tensor {
  let t = x
  const d = x.ndim - 1
  while (t.shape[d] > 1) {
    const n = t.shape[d]
    const h = Math.floor(n / 2)
    let m = maximum(t.narrow(d, 0, h), t.narrow(d, h, h))
    if (n % 2 === 1) m = cat([m, t.narrow(d, n - 1, 1)], d)
    t = m
  }
  return t
}

/**
 * `count` uniforms in [0, 1) from a generator of its own seeded with `seed` (FrEIA seeds a local
 * torch.Generator so that a seed picks the same components every call without touching the global stream).
 * innflow's generator has no separate instances, so this is SplitMix64 (a few numbers per call); the picks
 * differ from torch's for the same seed, equal seeds give equal picks.
 */
function seededUniforms(seed: number, count: number): number[] {
  const mask = (1n << 64n) - 1n
  let state = BigInt.asUintN(64, BigInt(seed))
  return Array.from({ length: count }, () => {
    state = (state + 0x9e3779b97f4a7c15n) & mask
    let z = state
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask
    z ^= z >> 31n
    return Number(z >> 11n) / 2 ** 53
  })
}

/**
 * Invertible Gaussian mixture model over 1-D data, parameterised by its conditions.
 * @example
 * const gmm = new GaussianMixtureModel([[2]], { dimsC: [[K], [K, 2], [K, 3]] })
 * const [[z], logDet] = gmm.forward([x], [w, mu, U, indices])
 */
export class GaussianMixtureModel extends InvertibleModule {
  /** D, the data size. */
  readonly xDims: number
  /** Where each of the D·D entries of U comes from in [0, exp(diagonal entries), upper entries]. */
  private readonly fillIndex: number[]

  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    if (this.dimsIn[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${fn}: the input must be 1-D, got dims ${shapeText(this.dimsIn[0])}`)
    const D = this.dimsIn[0][0]
    this.xDims = D
    const c = this.dimsC
    if (c.length !== 3 && c.length !== 4)
      throw argumentError(fn, 'options.dimsC', 'the shapes of the conditions [w (K), mu (K, D), U_entries (K, D(D+1)/2)] and optionally of i', c)
    const K = c[0][0]
    const M = (D * (D + 1)) / 2
    if (c[0].length !== 1 || c[1].length !== 2 || c[2].length !== 2 || c[1][0] !== K || c[2][0] !== K || c[1][1] !== D || c[2][1] !== M)
      throw new InnflowError(
        'ERR_SHAPE',
        `${fn}: dimsC must be [(K), (K, ${D}), (K, ${M})] for data of size ${D}, got [${c.slice(0, 3).map(shapeText).join(', ')}]`,
      )
    const index: number[] = []
    for (let r = 0; r < D; r++)
      for (let col = 0; col < D; col++) {
        if (col === r) index.push(1 + r)
        else if (col < r) index.push(0)
        else index.push(1 + D + r * D - (r * (r + 1)) / 2 + (col - r - 1))
      }
    this.fillIndex = index
  }

  /** The upper-triangular factors U (..., D, D) from their entries (..., D(D+1)/2). */
  private choleskyFactors(entries: Tensor): Tensor {
    const D = this.xDims
    const last = entries.ndim - 1
    const lead = entries.shape.slice(0, -1)
    const parts = [zeros([...lead, 1], { dtype: entries.dtype, device: entries.device }), entries.narrow(last, 0, D).exp()]
    if (D > 1) parts.push(entries.narrow(last, D, entries.shape[last] - D))
    return cat(parts, last).indexSelect(last, this.fillIndex).reshape([...lead, D, D])
  }

  forward(x: Tensor[], c: GaussianMixtureConditions = [], rev = false, jac = true): ModuleOutput {
    const name = this.constructor.name
    if (!Array.isArray(x) || x.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${name}: expected a list of 1 input tensor, got ${Array.isArray(x) ? x.length : typeof x}`)
    const input = checkTensor(name, 'x[0]', x[0])
    if (!Array.isArray(c) || (c.length !== 3 && c.length !== 4))
      throw new InnflowError('ERR_ARGUMENT', `${name}: expected the conditions [w, mu, U_entries] or [w, mu, U_entries, i], got ${Array.isArray(c) ? c.length : typeof c} value(s)`)
    const [w, mu, entries] = c.slice(0, 3).map((t, k) => checkTensor(name, `c[${k}]`, t))
    const sel = c.length === 4 ? c[3] : null
    const B = input.shape[0]
    const D = this.xDims
    const K = this.dimsC[0][0]
    const M = this.dimsC[2][1]
    const expect = (t: Tensor, shape: number[], what: string): void => {
      if (t.shape.join() !== shape.join()) throw new InnflowError('ERR_SHAPE', `${name}: expected ${what} of shape ${shapeText(shape)}, got ${shapeText(t.shape)}`)
    }
    expect(w, [B, K], 'the weights w (c[0])')
    expect(mu, [B, K, D], 'the means mu (c[1])')
    expect(entries, [B, K, M], 'the Cholesky entries U_entries (c[2])')

    if (sel === null || sel === undefined) {
      // all components at once: (B, K, D) latents, (B, K) log-dets
      let xs = input
      if (xs.ndim === 2) expect(xs, [B, D], 'x[0]')
      else expect(xs, [B, K, D], 'x[0]')
      if (xs.ndim === 2) xs = rev ? xs.unsqueeze(1).expand([B, K, D]) : xs.unsqueeze(1)
      const U = this.choleskyFactors(entries)
      const logDet = jac ? entries.narrow(2, 0, D).sum(2) : null
      if (!rev) return [[matmul(U, xs.sub(mu).unsqueeze(3)).squeeze(3)], logDet]
      return [[linalg.solveTriangular(U, xs.unsqueeze(3), { upper: true }).squeeze(3).add(mu)], logDet && logDet.neg()]
    }

    expect(input, [B, D], 'x[0]')
    let indices: Tensor
    if (typeof sel === 'number') {
      if (!Number.isSafeInteger(sel)) throw argumentError(name, 'the component seed c[3]', 'an integer', sel)
      indices = GaussianMixtureModel.pickMixtureComponent(w, sel)
    } else {
      indices = checkTensor(name, 'the component indices c[3]', sel)
      if (!(indices.ndim === 1 && indices.shape[0] === B) && !(indices.ndim === 2 && indices.shape[0] === B && indices.shape[1] === 1))
        throw new InnflowError('ERR_SHAPE', `${name}: expected the component indices c[3] of shape (${B}), got ${shapeText(indices.shape)}`)
    }
    // one component per sample: gather its mean and Cholesky entries (index values are checked natively)
    const idx = indices.reshape([B, 1, 1])
    const pick = (t: Tensor): Tensor => t.gather(1, idx.expand([B, 1, t.shape[2]])).squeeze(1)
    const entriesSel = pick(entries) // (B, M)
    const muSel = pick(mu) // (B, D)
    const U = this.choleskyFactors(entriesSel) // (B, D, D)
    const logDet = jac ? entriesSel.narrow(1, 0, D).sum(1) : null
    if (!rev) return [[matmul(U, input.sub(muSel).unsqueeze(2)).squeeze(2)], logDet]
    return [[linalg.solveTriangular(U, input.unsqueeze(2), { upper: true }).squeeze(2).add(muSel)], logDet && logDet.neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }

  /**
   * Softmax over the last dimension, so that weights are positive and sum to one: softmax(w − max(w)).
   * FrEIA subtracts the maximum of the whole tensor; innflow subtracts each row's maximum (softmax does not
   * change under either shift, and no row underflows to 0/0). The shift carries no gradient, as the exact
   * gradient of a shift-invariant function through it is zero.
   */
  static normalizeWeights(w: Tensor): Tensor {
    checkTensor('GaussianMixtureModel.normalizeWeights', 'w', w)
    if (w.ndim === 0) throw new InnflowError('ERR_SHAPE', 'GaussianMixtureModel.normalizeWeights: w must be (batch, K), got a 0-d tensor')
    const shift = noGrad(() => lastDimMax(w))
    const e = w.sub(shift).exp()
    return e.div(e.sum(-1, true))
  }

  /**
   * Draws a component index per row with probabilities w (B, K): with u uniform in [0, 1), the index is the
   * number of cumulative weights below u (clamped to K − 1 against rounding in the cumulative sum). An integer
   * seed gives reproducible picks from a generator of its own (FrEIA's local torch.Generator); without one,
   * u comes from innflow's generator. Returns the indices as a (B,) tensor of w's dtype (FrEIA: int32).
   */
  static pickMixtureComponent(w: Tensor, seed?: number | null): Tensor {
    const fn = 'GaussianMixtureModel.pickMixtureComponent'
    checkTensor(fn, 'w', w)
    if (w.ndim !== 2) throw new InnflowError('ERR_SHAPE', `${fn}: w must be (batch, K), got ${shapeText(w.shape)}`)
    if (seed !== undefined && seed !== null && !Number.isSafeInteger(seed)) throw argumentError(fn, 'seed', 'an integer, null or undefined', seed)
    const [B, K] = w.shape
    return noGrad(() => {
      // cumulative sums as a product with the upper-triangular matrix of ones
      const tri: number[] = []
      for (let r = 0; r < K; r++) for (let col = 0; col < K; col++) tri.push(r <= col ? 1 : 0)
      const thresholds = matmul(w, tensor(tri, [K, K], { dtype: w.dtype, device: w.device }))
      const u = typeof seed === 'number' ? tensor(seededUniforms(seed, B), [B, 1], { dtype: w.dtype, device: w.device }) : rand([B, 1], { dtype: w.dtype, device: w.device })
      return u.gt(thresholds).sum(1).clamp(0, K - 1)
    })
  }

  /**
   * Negative log-likelihood for training a mixture density network, per sample:
   * −ln Σ_k w_k · exp(−½‖z_k‖² + logJacobian_k) (the constant (D/2)·ln 2π dropped).
   * w (B, K), z (B, K, D) (all components), logJacobian (B, K) → (B,).
   */
  static nllLoss(w: Tensor, z: Tensor, logJacobian: Tensor): Tensor {
    GaussianMixtureModel.checkLossArgs('GaussianMixtureModel.nllLoss', w, z, logJacobian)
    return z.square().sum(-1).mul(-0.5).add(logJacobian).exp().mul(w).sum(-1).log().neg()
  }

  /**
   * The numerically more stable upper bound of {@link nllLoss}: −Σ_k (ln w_k − ½‖z_k‖² + logJacobian_k), per sample.
   */
  static nllUpperBound(w: Tensor, z: Tensor, logJacobian: Tensor): Tensor {
    GaussianMixtureModel.checkLossArgs('GaussianMixtureModel.nllUpperBound', w, z, logJacobian)
    return w.log().sub(z.square().sum(-1).mul(0.5)).add(logJacobian).sum(-1).neg()
  }

  private static checkLossArgs(fn: string, w: Tensor, z: Tensor, logJacobian: Tensor): void {
    checkTensor(fn, 'w', w)
    checkTensor(fn, 'z', z)
    checkTensor(fn, 'logJacobian', logJacobian)
    if (w.ndim !== 2) throw new InnflowError('ERR_SHAPE', `${fn}: w must be (batch, K), got ${shapeText(w.shape)}`)
    const [B, K] = w.shape
    if (z.ndim !== 3 || z.shape[0] !== B || z.shape[1] !== K)
      throw new InnflowError('ERR_SHAPE', `${fn}: z must be (${B}, ${K}, D) like w, got ${shapeText(z.shape)}`)
    if (logJacobian.shape.join() !== [B, K].join())
      throw new InnflowError('ERR_SHAPE', `${fn}: logJacobian must be (${B}, ${K}) like w, got ${shapeText(logJacobian.shape)}`)
  }
}
