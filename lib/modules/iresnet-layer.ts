/**
 * IResNetLayer (FrEIA.modules.IResNetLayer): an invertible residual block (i-ResNet, Behrmann et al. 2019,
 * arxiv.org/abs/1811.00995), y = x + g(x), invertible while g is a contraction (Lipschitz constant < 1).
 *
 * g: for vectors (C,), Linear(C→H), nInternalLayers × Linear(H→H), Linear(H→C); for images (C, H', W'), the
 * same plan with 3×3 convolutions (padding 1). ELU between layers, none after the last; H = internalSize or 2C.
 * Keys `residual.0.weight`, `residual.0.bias`, `residual.2.weight`, ... (the ELUs sit at the odd indices).
 * Conditions are accepted (their shapes are checked) and ignored, as in FrEIA.
 *
 * Reverse: the fixed-point iteration x ← y − g(x) from x = y, `fixedPointIterations` times without
 * gradients, then one step x = y − g(x̂) on the tape (so gradients reach g's parameters; w.r.t. y it is the
 * identity, as in FrEIA). The error shrinks like Lip(g)^iterations: call {@link lipschitzCorrection} first.
 *
 * Log-det (jac = true only; null otherwise): the power series ln det(I + J_g) = Σ_{k=1..n} (−1)^{k+1} tr(J_g^k)/k,
 * n = jacobianIterations, each trace estimated à la Hutchinson as vᵀJ_g^k v with Rademacher vectors v (signs
 * of N(0, 1) draws from innflow's generator), averaged over hutchinsonSamples. It is an ESTIMATE: unbiased for
 * the truncated series (exact for D = 1), with a truncation error below Lip(g)^{n+1}/(n+1).
 * Choices, each documented where FrEIA differs:
 * - The vector–Jacobian products vᵀJ_g are computed by composing the layers' transposes (vᵀW for a linear
 *   layer, the transposed convolution for a convolution, times ELU' = min(e^a, 1) at each pre-activation a),
 *   from the activations of the forward pass, instead of FrEIA's autograd call that reruns g at each step.
 *   Same numbers; it also works under noGrad() (inference), where autograd would have nothing to differentiate.
 * - As in FrEIA, the estimate carries no gradient (FrEIA does not create the double-backward graph), and
 *   innflow does not mark a leaf input as requiring grad (FrEIA's side effect).
 * - Reverse: FrEIA returns minus the series evaluated at the reverse INPUT y; innflow evaluates it at the
 *   reconstructed x, where the log-det of the inverse map actually is −ln|det J_f(x)|.
 */
import { noGrad } from '../autograd/tape'
import { core } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { Conv2d, ELU, Linear, Sequential } from '../nn'
import { conv2d, linear, matmul } from '../ops'
import { tidy } from '../scope'
import { randn, Tensor, zeros } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { convTranspose2d } from './inv-auto-conv2d'

/** Options of {@link IResNetLayer} (FrEIA's keyword arguments in camelCase). */
export interface IResNetLayerOptions extends InvertibleModuleOptions {
  /** Width H of the hidden layers (default 2·C). */
  internalSize?: number | null
  /** Number of H→H layers between the first and the last (default 1). */
  nInternalLayers?: number
  /** Terms n of the log-det power series (default 20). */
  jacobianIterations?: number
  /** Hutchinson samples per trace (default 1). */
  hutchinsonSamples?: number
  /** Fixed-point iterations of the inverse (default 50). */
  fixedPointIterations?: number
  /** Power iterations per layer in {@link IResNetLayer.lipschitzCorrection} (default 10). */
  lipschitzIterations?: number
  /** Random vectors per power iteration in {@link IResNetLayer.lipschitzCorrection} (default 10). */
  lipschitzBatchsize?: number
  /** Largest spectral norm a layer keeps after lipschitzCorrection, in (0, 1] (default 0.8). */
  spectralNormMax?: number
}

function intOption(fn: string, name: string, value: unknown, dflt: number, min: number): number {
  if (value === undefined) return dflt
  if (!Number.isInteger(value) || (value as number) < min) throw argumentError(fn, `options.${name}`, `an integer >= ${min}`, value)
  return value as number
}

/**
 * Invertible residual block y = x + g(x) with a power-series log-det estimate.
 * @example
 * const layer = new IResNetLayer([[8]], { internalSize: 32, hutchinsonSamples: 4 })
 * layer.lipschitzCorrection()
 */
export class IResNetLayer extends InvertibleModule {
  readonly internalSize: number
  readonly nInternalLayers: number
  readonly jacobianIterations: number
  readonly hutchinsonSamples: number
  readonly fixedPointIterations: number
  readonly lipschitzIterations: number
  readonly lipschitzBatchsize: number
  readonly spectralNormMax: number
  /** g, the residual branch (key prefix `residual.`). */
  readonly residual: Sequential
  /** The linear / convolutional layers of g, in order (residual.0, residual.2, ...). */
  readonly layers: (Linear | Conv2d)[]
  private readonly convolutional: boolean

  constructor(dimsIn: Dims[], opts: IResNetLayerOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    const dims = this.dimsIn[0]
    if (dims.length !== 1 && dims.length !== 3)
      throw new InnflowError('ERR_SHAPE', `${fn}: the input must be 1-D (C) or an image (C, H, W), got dims (${dims.join(', ')})`)
    const C = dims[0]
    // FrEIA: `internal_size or 2·C`, so 0 and None both mean the default
    this.internalSize = opts.internalSize === null || opts.internalSize === 0 ? 2 * C : intOption(fn, 'internalSize', opts.internalSize, 2 * C, 1)
    this.nInternalLayers = intOption(fn, 'nInternalLayers', opts.nInternalLayers, 1, 0)
    this.jacobianIterations = intOption(fn, 'jacobianIterations', opts.jacobianIterations, 20, 0)
    this.hutchinsonSamples = intOption(fn, 'hutchinsonSamples', opts.hutchinsonSamples, 1, 1)
    this.fixedPointIterations = intOption(fn, 'fixedPointIterations', opts.fixedPointIterations, 50, 0)
    this.lipschitzIterations = intOption(fn, 'lipschitzIterations', opts.lipschitzIterations, 10, 0)
    this.lipschitzBatchsize = intOption(fn, 'lipschitzBatchsize', opts.lipschitzBatchsize, 10, 1)
    const snm = opts.spectralNormMax ?? 0.8
    if (typeof snm !== 'number' || !(snm > 0 && snm <= 1)) throw argumentError(fn, 'options.spectralNormMax', 'a number in (0, 1]', opts.spectralNormMax)
    this.spectralNormMax = snm

    this.convolutional = dims.length === 3
    const H = this.internalSize
    const make = (cin: number, cout: number): Linear | Conv2d => (this.convolutional ? new Conv2d(cin, cout, 3, { padding: 1 }) : new Linear(cin, cout))
    this.layers = [make(C, H)]
    for (let i = 0; i < this.nInternalLayers; i++) this.layers.push(make(H, H))
    this.layers.push(make(H, C))
    const seq: (Linear | Conv2d | ELU)[] = []
    this.layers.forEach((layer, i) => {
      if (i > 0) seq.push(new ELU())
      seq.push(layer)
    })
    this.residual = this.registerModule('residual', new Sequential(...seq))
  }

  /** The pre-activations a_0, ..., a_L of g at x (a_L = g(x)), recorded on the tape when grad is on. */
  private preActivations(x: Tensor): Tensor[] {
    const out: Tensor[] = []
    let h = x
    this.layers.forEach((layer, l) => {
      const a = layer.forward(h)
      out.push(a)
      if (l < this.layers.length - 1) h = a.elu()
    })
    return out
  }

  /** vᵀ·J_g, given ELU'(a_l) for the hidden pre-activations: back through each layer's transpose. */
  private vjp(eluDerivs: Tensor[], v: Tensor): Tensor {
    let u = v
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const W = this.layers[l].weight
      u = this.convolutional ? convTranspose2d(u, W, [1, 1]) : matmul(u, W)
      if (l > 0) u = u.mul(eluDerivs[l - 1])
    }
    return u
  }

  /** The power-series / Hutchinson estimate of ln det(I + J_g) at the point whose pre-activations are given. */
  private logDetEstimate(pre: Tensor[], x: Tensor): Tensor {
    return noGrad(() =>
      tidy(() => {
        const axes = x.shape.slice(1).map((_, i) => i + 1)
        const S = this.hutchinsonSamples
        const derivs = pre.slice(0, -1).map((a) => a.exp().minimum(1))
        const right = Array.from({ length: S }, () => randn([...x.shape], { dtype: x.dtype, device: x.device }).sign())
        let left = right.slice()
        let logDet = zeros([x.shape[0]], { dtype: x.dtype, device: x.device })
        for (let k = 1; k <= this.jacobianIterations; k++) {
          const [next, update] = tidy(() => {
            const products = left.map((v) => this.vjp(derivs, v))
            const trace = products.map((p, s) => p.mul(right[s]).sum(axes)).reduce((a, b) => a.add(b))
            return [products, logDet.add(trace.mul((k % 2 === 1 ? 1 : -1) / (k * S)))] as [Tensor[], Tensor]
          })
          if (k > 1) left.forEach((t) => t.dispose())
          logDet.dispose()
          left = next
          logDet = update
        }
        return logDet
      }),
    )
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x)
    this.checkConditions(c, x[0].shape[0])
    const x0 = x[0]
    if (!rev) {
      const pre = this.preActivations(x0)
      return [[x0.add(pre[pre.length - 1])], jac ? this.logDetEstimate(pre, x0) : null]
    }
    const y = x0
    let xh = y
    noGrad(() => {
      for (let i = 0; i < this.fixedPointIterations; i++) {
        const next = tidy(() => y.sub(this.residual.forward(xh)))
        if (xh !== y) xh.dispose()
        xh = next
      }
    })
    // xh is off the tape: this last step gives the gradients of FrEIA's `y − g(x̂.detach())`
    const out = y.sub(this.residual.forward(xh))
    const logDet = jac ? noGrad(() => tidy(() => this.logDetEstimate(this.preActivations(out), out).neg())) : null
    return [[out], logDet]
  }

  /**
   * Rescales each layer's weight so that its spectral norm is at most spectralNormMax (FrEIA's
   * `lipschitz_correction`, to be called by hand, e.g. after each optimiser step): the norm σ is estimated by
   * lipschitzIterations power iterations on lipschitzBatchsize random vectors (the largest ratio ‖Wv‖/‖v‖), and
   * W becomes W·spectralNormMax/σ when σ exceeds it. The iterates are renormalised at each step (FrEIA lets
   * them grow or shrink, which can overflow; the estimate is the same). For convolutions innflow iterates with
   * the operator the layer applies (padding 1) where FrEIA uses unpadded convolutions, which estimate the
   * norm of a slightly different operator and fail on images smaller than the kernel.
   */
  lipschitzCorrection(): void {
    const spatial = this.dimsIn[0].slice(1)
    noGrad(() => {
      for (const layer of this.layers)
        tidy(() => {
          const W = layer.weight
          const axes = [1, ...spatial.map((_, i) => i + 2)]
          const apply = (v: Tensor): Tensor => (this.convolutional ? conv2d(v, W, null, { padding: 1 }) : linear(v, W))
          const applyT = (v: Tensor): Tensor => (this.convolutional ? convTranspose2d(v, W, [1, 1]) : matmul(v, W))
          const norm = (v: Tensor): Tensor => v.square().sum(axes, true).sqrt()
          let v = randn([this.lipschitzBatchsize, W.shape[1], ...spatial], { dtype: W.dtype, device: W.device })
          for (let j = 0; j < this.lipschitzIterations; j++) {
            const next = applyT(apply(v))
            v = next.div(norm(next))
          }
          const ratios = norm(apply(v)).div(norm(v)).toArray()
          const sigma = Math.max(...Array.from(ratios))
          if (sigma > this.spectralNormMax) core.copyInto(W.handle, W.mul(this.spectralNormMax / sigma).handle)
        })
    })
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }
}
