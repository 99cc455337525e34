/**
 * GlowStep: one step of flow of Glow (Kingma & Dhariwal 2018, figure 2a) as a single module:
 * ActNorm → {@link InvertibleConv1x1} → affine coupling.
 *
 *   forward   h = ActNorm(x);  u = W·h (per position);  u1, u2 = u[:, :C1], u[:, C1:]  (C1 = ⌊C/2⌋)
 *             a = subnet(u1 ⊕ c);  t = a[:, 0::2], raw = a[:, 1::2]   (Glow's interleaved channel layout)
 *             y = u1 ⊕ (u2 + t)·s
 *   log|det J| = log|det J_actnorm| + S·log|det W| + Σ log s      (S = positions per channel, H·W for images)
 *   reverse   u2 = y2 / s − t, then W⁻¹, then the inverse ActNorm; log-det negated.
 *
 * The scale s: `scaleFunction: 'glow'` (default) s = sigmoid(raw + 2) as in Glow's code (log s is computed as
 * −softplus(−(raw + 2)), so it never overflows; s < 1 and s ≈ 0.88 for a zero-initialised subnet);
 * `scaleFunction: 'atan'` uses FrEIA's soft clamp, s = exp(clamp·0.636·atan(raw)) with `clamp` (default 2.0),
 * as FrEIA's coupling blocks with clampActivation 'ATAN' (the shift still comes before the scale, as Glow).
 *
 * The coupling is one-sided, as Glow's: u1 passes unchanged and the learned 1×1 convolution mixes the halves
 * between steps. Conditions (dimsC) are concatenated to u1 along the channel axis and must have the input's
 * non-channel shape (as in FrEIA's couplings). The subnet maps (N, C1 + condition channels, *spatial) to
 * (N, 2·(C − C1), *spatial); Glow zero-initialises its last layer (do so in the subnet constructor to start
 * every step near the identity).
 *
 * ActNorm initialises from the first batch it sees (see {@link ActNorm}). Works for 1-D (C,) inputs (fully
 * connected subnets) and images (C, H, W) (convolutional subnets); C must be at least 2.
 *
 * State-dict keys: `actnorm.log_scale`, `actnorm.loc`, `actnorm.is_initialized`; `invconv.w_p`,
 * `invconv.w_l`, `invconv.w_u`, `invconv.log_s`, `invconv.s_sign` (or `invconv.weight` with `lu: false`);
 * `subnet.*` (the subnet's own keys).
 * @example
 * const conv = (cIn: number, cOut: number) =>
 *   new nn.Sequential(new nn.Conv2d(cIn, 64, 3, { padding: 1 }), new nn.ReLU(), new nn.Conv2d(64, cOut, 3, { padding: 1 }))
 * const inn = new SequenceINN(4, 8, 8)
 * for (let k = 0; k < 8; k++) inn.append(GlowStep, { subnetConstructor: conv })
 */
import { argumentError, InnflowError } from '../errors'
import { Module } from '../nn/module'
import { cat } from '../ops/shape'
import { Tensor } from '../tensor'
import { ActNorm } from './actnorm'
import { checkOptionKeys, Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput, sameDims, SubnetConstructor } from './base'
import { ATAN_FACTOR } from './coupling-base'
import { InvertibleConv1x1 } from './invertible-conv1x1'

/** How the coupling's scale is made from the raw subnet output. */
export type GlowScaleFunction = 'glow' | 'atan'

/** Options of {@link GlowStep}. */
export interface GlowStepOptions extends InvertibleModuleOptions {
  /**
   * Builds the coupling's subnet: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial),
   * with cIn = ⌊C/2⌋ + condition channels and cOut = 2·(C − ⌊C/2⌋). Required.
   */
  subnetConstructor?: SubnetConstructor
  /** LU-parameterised 1×1 convolution (default true); see {@link InvertibleConv1x1}. */
  lu?: boolean
  /** 'glow' (default): s = sigmoid(raw + 2); 'atan': s = exp(clamp·0.636·atan(raw)) (FrEIA's soft clamp). */
  scaleFunction?: GlowScaleFunction
  /** The bound of log s with scaleFunction 'atan' (default 2.0; |log s| < clamp). Not used by 'glow'. */
  clamp?: number
}

const OPTIONS = ['subnetConstructor', 'lu', 'scaleFunction', 'clamp']

/**
 * One Glow step of flow: ActNorm, learnable invertible 1×1 convolution, affine coupling (see the file comment).
 */
export class GlowStep extends InvertibleModule {
  /** The data-initialised per-channel affine map (child `actnorm`). */
  readonly actnorm: ActNorm
  /** The learnable 1×1 convolution (child `invconv`). */
  readonly invconv: InvertibleConv1x1
  /** The coupling's subnet (child `subnet`). */
  readonly subnet: Module
  /** Channels passed through by the coupling (⌊C/2⌋, the first ones). */
  readonly splitLen1: number
  /** Channels transformed by the coupling (C − ⌊C/2⌋). */
  readonly splitLen2: number
  /** How the scale is computed. */
  readonly scaleFunction: GlowScaleFunction
  /** The soft-clamp bound (scaleFunction 'atan' only; NaN otherwise). */
  readonly clamp: number
  private readonly ndims: number

  constructor(dimsIn: Dims[], opts: GlowStepOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw argumentError(name, 'options', 'an options object', opts)
    checkOptionKeys(name, opts, OPTIONS)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    const shape = this.dimsIn[0]
    if (shape.length < 1 || shape[0] < 2)
      throw new InnflowError('ERR_SHAPE', `${name}: needs at least 2 channels (C, ...) to split for the coupling, got ${dimsString(shape)}`)
    const rest = shape.slice(1)
    this.dimsC.forEach((d) => {
      if (!sameDims(d.slice(1), rest))
        throw new InnflowError('ERR_SHAPE', `${name}: each condition must have the input's non-channel shape ${dimsString(rest)}, got ${dimsString(d)}`)
    })

    const scaleFunction = opts.scaleFunction ?? 'glow'
    if (scaleFunction !== 'glow' && scaleFunction !== 'atan') throw argumentError(name, 'scaleFunction', "'glow' or 'atan'", scaleFunction)
    this.scaleFunction = scaleFunction
    if (scaleFunction === 'glow') {
      if (opts.clamp !== undefined)
        throw new InnflowError('ERR_ARGUMENT', `${name}: clamp is only used with scaleFunction: 'atan' (the 'glow' scale sigmoid(raw + 2) needs no clamp)`)
      this.clamp = NaN
    } else {
      const clamp = opts.clamp ?? 2.0
      if (typeof clamp !== 'number' || !Number.isFinite(clamp) || clamp < 0) throw argumentError(name, 'clamp', 'a non-negative finite number', clamp)
      this.clamp = clamp
    }

    this.ndims = shape.length
    this.splitLen1 = Math.floor(shape[0] / 2)
    this.splitLen2 = shape[0] - this.splitLen1
    this.actnorm = this.registerModule('actnorm', new ActNorm([shape]))
    this.invconv = this.registerModule('invconv', new InvertibleConv1x1([shape], { lu: opts.lu }))

    const ctor: unknown = opts.subnetConstructor
    if (typeof ctor !== 'function') throw argumentError(name, 'subnetConstructor', 'a function (cIn, cOut) => nn.Module', ctor)
    const cIn = this.splitLen1 + this.dimsC.reduce((a, d) => a + d[0], 0)
    const net: unknown = (ctor as SubnetConstructor)(cIn, 2 * this.splitLen2)
    if (!(net instanceof Module) && !(net as { __isInnflowModule?: boolean } | null)?.__isInnflowModule)
      throw new InnflowError('ERR_ARGUMENT', `${name}: subnetConstructor(${cIn}, ${2 * this.splitLen2}) must return an nn.Module, got ${net === null ? 'null' : typeof net}`)
    this.subnet = this.registerModule('subnet', net as Module)
  }

  /** The shift t and log-scale log s of the active half, from the passive half u1 (and the conditions). */
  private shiftAndLogScale(u1: Tensor, c: Tensor[]): [Tensor, Tensor] {
    const input = c.length === 0 ? u1 : cat([u1, ...c], 1)
    const out: unknown = this.subnet.forward(input)
    if (!(out instanceof Tensor) && !(out as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
      throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: the subnet must return a Tensor, got ${out === null ? 'null' : typeof out}`)
    const a = out as Tensor
    const [b, , ...spatial] = input.shape
    const expected = [b, 2 * this.splitLen2, ...spatial]
    if (!sameDims(a.shape, expected))
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: the subnet must map ${dimsString(input.shape)} to ${dimsString(expected)}, but returned ${dimsString(a.shape)}`)
    // Glow's layout: channel 2k is the shift of active channel k, channel 2k + 1 its raw scale
    const pairs = a.reshape([b, this.splitLen2, 2, ...spatial])
    const half = [b, this.splitLen2, ...spatial]
    const t = pairs.narrow(2, 0, 1).reshape(half)
    const raw = pairs.narrow(2, 1, 1).reshape(half)
    const logS = this.scaleFunction === 'glow' ? raw.add(2).neg().softplus().neg() : raw.atan().mul(this.clamp * ATAN_FACTOR)
    return [t, logS]
  }

  /** The affine coupling: forward y2 = (u2 + t)·s, reverse u2 = y2·s⁻¹ − t; returns the output and ±Σ log s. */
  private coupling(u: Tensor, c: Tensor[], rev: boolean): [Tensor, Tensor] {
    const u1 = u.narrow(1, 0, this.splitLen1)
    const u2 = u.narrow(1, this.splitLen1, this.splitLen2)
    const [t, logS] = this.shiftAndLogScale(u1, c)
    const j = logS.sum(Array.from({ length: this.ndims }, (_, i) => i + 1))
    if (rev) return [cat([u1, u2.mul(logS.neg().exp()).sub(t)], 1), j.neg()]
    return [cat([u1, u2.add(t).mul(logS.exp())], 1), j]
  }

  /** ActNorm → 1×1 convolution → coupling (reverse: the inverses in the opposite order); summed log-dets. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x)
    const cs = this.checkConditions(c, x[0].shape[0])
    const ld = (j: Tensor | number | null): Tensor | number => j ?? 0
    if (!rev) {
      const [[h], j1] = this.actnorm.forward(x, [], false, jac)
      const [[u], j2] = this.invconv.forward([h], [], false, jac)
      const [y, j3] = this.coupling(u, cs, false)
      return [[y], j3.add(ld(j2)).add(ld(j1))]
    }
    const [u, j3] = this.coupling(x[0], cs, true)
    const [[h], j2] = this.invconv.forward([u], [], true, jac)
    const [[y], j1] = this.actnorm.forward([h], [], true, jac)
    return [[y], j3.add(ld(j2)).add(ld(j1))]
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1)
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input, got ${Array.isArray(inputDims) ? inputDims.length : typeof inputDims}`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `dims_in=[${dimsString(this.dimsIn[0])}], lu=${this.invconv.lu}, scale=${this.scaleFunction === 'glow' ? 'sigmoid(raw + 2)' : `atan clamp ${this.clamp}`}`
  }
}
