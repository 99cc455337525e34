/**
 * Binned splines with a learned domain (FrEIA/modules/splines/binned.py): {@link BinnedSplineBase} holds the
 * options, buffers and the parameter handling every binned spline shares; {@link BinnedSpline} is the
 * two-sided coupling block that RationalQuadraticSpline and LinearSpline extend.
 *
 * Per transformed element, a spline has P raw parameters, laid out (FrEIA's order) as widths (K = bins),
 * heights (K), then bottom (1) and left (1) — or, with `identityTails`, total_width (1) — then the
 * subclass's own (RationalQuadraticSpline: deltas, K − 1). A subnet output (B, n·P, *spatial) holds the
 * parameter p of data channel d in its channel d·P + p.
 *
 * Constraints (raw 0 gives the default domain split into equal bins):
 * - affine tails (default): left = raw_left + x_min, bottom = raw_bottom + y_min,
 *   w_k = min_w + softplus(raw_w_k + softplus⁻¹(W/K − min_w)) with W = x_max − x_min, h_k likewise;
 *   with `domainClamping` dc the widths and left are rescaled by r = dc·tanh(Σw/dc)/Σw (heights and bottom
 *   by the y analogue).
 * - identity tails: T = default_width·softplus(raw_total + ln(e − 1)) (then dc·tanh(T/dc) with clamping),
 *   left = bottom = −T/2, widths = T·softmax(raw_w), heights = T·softmax(raw_h); min sizes do not apply.
 * Knots x_0 = left, x_k = left + Σ_{i≤k} w_i (y likewise). A value is inside when x_0 < x ≤ x_K (forward) or
 * y_0 < y ≤ y_K (reverse), and is transformed in its bin (found as torch.searchsorted does, side 'left');
 * outside, the map is affine, y = s·x + (bottom − s·left) with s = Σh/Σw, continuous at both ends (the
 * identity, up to rounding, with identity tails). The log-det sums the elementwise log-slopes over all
 * non-batch axes; the reverse returns its negative, evaluated at the recovered input.
 */
import { argumentError, InnflowError } from '../errors'
import { noGrad } from '../autograd/tape'
import { Module } from '../nn/module'
import * as ops from '../ops'
import { tensor, Tensor } from '../tensor'
import { getDefaultDtype } from '../dtype'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput, sameDims } from './base'
import { BinParameters, channelsFirst, channelsLast, knotOffsets, searchBins, softmaxLast, SplineResult, sumExceptBatch } from './spline-math'

export type { BinParameters, SplineResult } from './spline-math'

/**
 * Builds a subnet: called with the number of channels it receives and the number it must return, it returns
 * a module whose `forward(x)` maps (N, cIn, *spatial) to (N, cOut, *spatial).
 * @example (cIn, cOut) => new nn.Sequential(new nn.Linear(cIn, 64), new nn.ReLU(), new nn.Linear(64, cOut))
 */
export type SplineSubnetConstructor = (cIn: number, cOut: number) => Module

/** The in-bin transform of a binned spline: maps values inside their bins and returns the log-slopes. */
export type SplineFunction = (x: Tensor, bin: BinParameters, rev: boolean) => SplineResult

/** Options of {@link BinnedSplineBase} (FrEIA's keyword arguments, camelCase). */
export interface BinnedSplineBaseOptions extends InvertibleModuleOptions {
  /** Number of bins K (an integer ≥ 1; default 10). */
  bins?: number
  /**
   * Extra parameters per element a subclass needs, by name and count, placed after the base ones in this
   * order (e.g. `{ deltas: bins - 1 }`). A base name here changes that parameter's count in place.
   */
  parameterCounts?: Record<string, number>
  /** Smallest bin width and height [min_w, min_h] (≥ 0; default [0.1, 0.1]); unused with identity tails. */
  minBinSizes?: readonly [number, number] | readonly number[]
  /**
   * The spline's domain when the raw parameters are zero, [x_min, x_max, y_min, y_max] (default
   * [-3, 3, -3, 3]); it must hold K bins of the minimum sizes.
   */
  defaultDomain?: readonly [number, number, number, number] | readonly number[]
  /**
   * Identity outside the domain (default false: affine tails with the slope Σh/Σw). The domain is then the
   * symmetric square [−T/2, T/2]² of a learned total width T (default defaultDomain[1] − defaultDomain[0]).
   */
  identityTails?: boolean
  /** Soft bound dc > 0 on the domain size (dc·tanh(size/dc)); null or absent (default) for none. */
  domainClamping?: number | null
}

/** The option names BinnedSplineBase takes itself. */
export const BINNED_SPLINE_BASE_KEYS = ['bins', 'parameterCounts', 'minBinSizes', 'defaultDomain', 'identityTails', 'domainClamping'] as const

/**
 * Refuses option keys a module does not know (FrEIA raises TypeError on an unexpected keyword argument),
 * with a hint for snake_case spellings.
 */
export function checkSplineOptionKeys(fn: string, opts: object, allowed: readonly string[]): void {
  const known = new Set(['dimsC', ...allowed])
  for (const key of Object.keys(opts)) {
    if (known.has(key) || (opts as Record<string, unknown>)[key] === undefined) continue
    const camel = key.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase())
    const hint = camel !== key && known.has(camel) ? ` (did you mean ${camel}?)` : ''
    throw new InnflowError('ERR_ARGUMENT', `${fn}: unknown option '${key}'${hint}; accepted options: ${[...known].join(', ')}`)
  }
}

const isTensor = (v: unknown): v is Tensor => v instanceof Tensor || (v as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor === true
const isModule = (v: unknown): v is Module => v instanceof Module || (v as { __isInnflowModule?: boolean } | null)?.__isInnflowModule === true

/** ln(e − 1): softplus(ln(e − 1)) = 1, so raw 0 gives a unit factor. */
const LN_E_MINUS_1 = Math.log(Math.E - 1)

/**
 * The shared part of FrEIA's binned splines: option checks, the buffers `bins`, `min_bin_sizes`,
 * `default_domain`, `identity_tails` and `default_width`, and the three steps of a spline transform:
 * {@link splitParameters}, {@link constrainParameters} and {@link binnedSpline}. It is not a transform by
 * itself (its `forward` throws, as FrEIA's raises NotImplementedError); ElementwiseRationalQuadraticSpline
 * extends it, and the coupling splines own one as `spline_base`.
 */
export class BinnedSplineBase extends InvertibleModule {
  /** Number of bins K. */
  readonly bins: number
  /** Raw parameters per element by name, in layout order. */
  readonly parameterCounts: Readonly<Record<string, number>>
  /** Whether the tails are the identity (with a symmetric learned domain). */
  readonly identityTails: boolean
  /** The soft bound on the domain size, or null. */
  readonly domainClamping: number | null
  /** Buffers (float tensors; `bins` and `identity_tails` hold an integer and a 0/1 flag as FrEIA's int32/bool). */
  protected readonly binsBuffer: Tensor
  protected readonly minBinSizesBuffer: Tensor
  protected readonly defaultDomainBuffer: Tensor
  protected readonly identityTailsBuffer: Tensor
  protected readonly defaultWidthBuffer: Tensor

  /**
   * @param allowedKeys the option names the concrete class accepts (others are refused, as FrEIA refuses
   *   unexpected keyword arguments)
   * @param owner the class named in error messages (a coupling spline builds its `spline_base` with its own name)
   */
  constructor(dimsIn: Dims[], opts: BinnedSplineBaseOptions = {}, allowedKeys: readonly string[] = BINNED_SPLINE_BASE_KEYS, owner?: string) {
    super(dimsIn, opts)
    const fn = owner ?? new.target.name
    const o = opts ?? {}
    checkSplineOptionKeys(fn, o, allowedKeys)
    const bins = o.bins ?? 10
    if (typeof bins !== 'number' || !Number.isInteger(bins) || bins < 1) throw argumentError(fn, 'bins', 'an integer >= 1 (need at least one bin)', bins)
    const minSizes = o.minBinSizes ?? [0.1, 0.1]
    if (!Array.isArray(minSizes) || minSizes.length !== 2 || !minSizes.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw argumentError(fn, 'minBinSizes', 'a pair [minWidth, minHeight] of finite numbers', minSizes)
    if (!minSizes.every((v) => v >= 0)) throw argumentError(fn, 'minBinSizes', 'non-negative (minimum bin size cannot be negative)', minSizes)
    const dom = o.defaultDomain ?? [-3, 3, -3, 3]
    if (!Array.isArray(dom) || dom.length !== 4 || !dom.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw argumentError(fn, 'defaultDomain', 'four finite numbers [left, right, bottom, top]', dom)
    if (!(dom[1] > dom[0])) throw argumentError(fn, 'defaultDomain', 'increasing in x (x domain must be increasing: right > left)', dom)
    if (!(dom[3] > dom[2])) throw argumentError(fn, 'defaultDomain', 'increasing in y (y domain must be increasing: top > bottom)', dom)
    if (!(dom[1] - dom[0] >= minSizes[0] * bins))
      throw new InnflowError('ERR_ARGUMENT', `${fn}: ${bins} bins of size ${minSizes[0]} are too large for domain ${dom[0]} to ${dom[1]}`)
    if (!(dom[3] - dom[2] >= minSizes[1] * bins))
      throw new InnflowError('ERR_ARGUMENT', `${fn}: ${bins} bins of size ${minSizes[1]} are too large for domain ${dom[2]} to ${dom[3]}`)
    const identityTails = o.identityTails ?? false
    if (typeof identityTails !== 'boolean') throw argumentError(fn, 'identityTails', 'a boolean', identityTails)
    const dc = o.domainClamping ?? null
    if (dc !== null && (typeof dc !== 'number' || !Number.isFinite(dc) || dc <= 0)) throw argumentError(fn, 'domainClamping', 'a positive number or null', dc)

    const counts: Record<string, number> = identityTails ? { widths: bins, heights: bins, total_width: 1 } : { widths: bins, heights: bins, bottom: 1, left: 1 }
    const extra = o.parameterCounts ?? {}
    if (extra === null || typeof extra !== 'object' || Array.isArray(extra)) throw argumentError(fn, 'parameterCounts', 'an object of name → count', extra)
    for (const [k, v] of Object.entries(extra)) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw argumentError(fn, `parameterCounts.${k}`, 'a non-negative integer', v)
      counts[k] = v
    }

    this.bins = bins
    this.parameterCounts = Object.freeze(counts)
    this.identityTails = identityTails
    this.domainClamping = dc
    const dtype = getDefaultDtype()
    this.binsBuffer = this.registerBuffer('bins', tensor([bins], [], { dtype }))
    this.minBinSizesBuffer = this.registerBuffer('min_bin_sizes', tensor([minSizes[0], minSizes[1]], [2], { dtype }))
    this.defaultDomainBuffer = this.registerBuffer('default_domain', tensor([...dom], [4], { dtype }))
    this.identityTailsBuffer = this.registerBuffer('identity_tails', tensor([identityTails ? 1 : 0], [], { dtype }))
    this.defaultWidthBuffer = this.registerBuffer('default_width', tensor([dom[1] - dom[0]], [], { dtype }))
  }

  /** P, the number of raw parameters per transformed element. */
  get numParameters(): number {
    return Object.values(this.parameterCounts).reduce((a, b) => a + b, 0)
  }

  /**
   * Splits a subnet output (B, n·P, *spatial) into named raw parameters of shape (B, *spatial, n, count):
   * channel d·P + p holds parameter slot p of data channel d. Names with a count of 0 are left out.
   */
  splitParameters(parameters: Tensor, splitLen: number): Record<string, Tensor> {
    const p = this.numParameters
    const shaped = channelsLast(parameters)
    const grouped = shaped.reshape([...shaped.shape.slice(0, -1), splitLen, p])
    const out: Record<string, Tensor> = {}
    let at = 0
    for (const [k, n] of Object.entries(this.parameterCounts)) {
      if (n > 0) out[k] = grouped.narrow(-1, at, n)
      at += n
    }
    return out
  }

  /** Soft bound on a domain size: dc·tanh(size/dc), or the size itself without clamping. */
  clampDomain(size: Tensor): Tensor {
    const dc = this.domainClamping
    return dc === null ? size : size.div(dc).tanh().mul(dc)
  }

  /**
   * Maps raw parameters to a valid spline: positive widths and heights, and the domain's left and bottom
   * edges (see the file comment for the formulas). Reads the buffers, so a loaded state dict takes effect.
   */
  constrainParameters(parameters: Record<string, Tensor>): Record<string, Tensor> {
    const p = { ...parameters }
    if (this.identityTails) {
      let total = p.total_width.add(LN_E_MINUS_1).softplus().mul(this.defaultWidthBuffer.to({ dtype: p.total_width.dtype }))
      total = this.clampDomain(total)
      const half = total.mul(-0.5)
      p.left = half
      p.bottom = half
      p.widths = total.mul(softmaxLast(p.widths))
      p.heights = total.mul(softmaxLast(p.heights))
      return p
    }
    const dtype = p.widths.dtype
    const dom = this.defaultDomainBuffer.to({ dtype })
    const minSizes = this.minBinSizesBuffer.to({ dtype })
    const bins = this.binsBuffer.to({ dtype })
    const at = (t: Tensor, i: number): Tensor => t.narrow(0, i, 1)
    const left = p.left.add(at(dom, 0))
    const bottom = p.bottom.add(at(dom, 2))
    // softplus⁻¹(d) = d + ln(1 − e^{−d}): the shift that makes raw 0 give the default bin size exactly
    const inverseSoftplus = (d: Tensor): Tensor => d.add(d.neg().expm1().neg().log())
    const xShift = inverseSoftplus(at(dom, 1).sub(at(dom, 0)).div(bins).sub(at(minSizes, 0)))
    const yShift = inverseSoftplus(at(dom, 3).sub(at(dom, 2)).div(bins).sub(at(minSizes, 1)))
    let widths = p.widths.add(xShift).softplus().add(at(minSizes, 0))
    let heights = p.heights.add(yShift).softplus().add(at(minSizes, 1))
    if (this.domainClamping === null) {
      Object.assign(p, { left, bottom, widths, heights })
      return p
    }
    const domainWidth = widths.sum(-1, true)
    const domainHeight = heights.sum(-1, true)
    const widthResize = this.clampDomain(domainWidth).div(domainWidth)
    const heightResize = this.clampDomain(domainHeight).div(domainHeight)
    widths = widths.mul(widthResize)
    heights = heights.mul(heightResize)
    // as FrEIA: the left and bottom edges move with the rescaling too
    Object.assign(p, { left: left.mul(widthResize), bottom: bottom.mul(heightResize), widths, heights })
    return p
  }

  /**
   * Applies a spline with constrained parameters (shapes (B, *spatial, n, count)) to x (B, n, *spatial):
   * `spline` transforms the values inside the domain, the affine tails the others. Returns the result and
   * the log-det per sample (negated in reverse).
   */
  binnedSpline(x: Tensor, parameters: Record<string, Tensor>, spline: SplineFunction, rev: boolean): [Tensor, Tensor] {
    const v = channelsLast(x)
    const { left, bottom, widths, heights } = parameters
    const knotX = left.add(knotOffsets(widths))
    const knotY = bottom.add(knotOffsets(heights))
    const k = widths.shape[widths.ndim - 1]
    const knots = rev ? knotY : knotX
    const first = knots.narrow(-1, 0, 1).squeeze(-1)
    const last = knots.narrow(-1, k, 1).squeeze(-1)
    const inside = noGrad(() => first.lt(v).mul(v.le(last)))

    const scale = heights.sum(-1, true).div(widths.sum(-1, true))
    const shift = bottom.sub(scale.mul(left)).squeeze(-1)
    const tailScale = scale.squeeze(-1)

    const { lower, upper } = searchBins(knots, v)
    const take = (t: Tensor, idx: Tensor): Tensor => t.gather(-1, idx).squeeze(-1)
    const bin: BinParameters = { left: take(knotX, lower), right: take(knotX, upper), bottom: take(knotY, lower), top: take(knotY, upper) }
    for (const [key, value] of Object.entries(parameters)) {
      if (key === 'left' || key === 'bottom' || key === 'widths' || key === 'heights' || key === 'total_width') continue
      bin[`${key}_left`] = take(value, lower)
      bin[`${key}_right`] = take(value, upper)
    }
    // Values outside the domain are moved to the middle of their (end) bin before the spline sees them, so
    // the in-bin formulas stay finite there and their (masked) gradients are exact zeros, not NaN.
    const lo = rev ? bin.bottom : bin.left
    const hi = rev ? bin.top : bin.right
    const safe = ops.where(inside, v, lo.add(hi).mul(0.5))
    const { out, logJac } = spline(safe, bin, rev)
    const tail = rev ? v.sub(shift).div(tailScale) : v.mul(tailScale).add(shift)
    const y = ops.where(inside, out, tail)
    const logDet = sumExceptBatch(ops.where(inside, logJac, tailScale.log()))
    return [channelsFirst(y), rev ? logDet.neg() : logDet]
  }

  /** BinnedSplineBase is not a transform by itself (FrEIA raises NotImplementedError). */
  forward(_x: Tensor[], _c?: Tensor[], _rev?: boolean, _jac?: boolean): ModuleOutput {
    throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: BinnedSplineBase is a base class without a transform; use RationalQuadraticSpline, LinearSpline or ElementwiseRationalQuadraticSpline, or subclass it`)
  }

  /** One output of the input's shape. */
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }
}

/** Options of the coupling splines ({@link BinnedSpline}, RationalQuadraticSpline, LinearSpline). */
export interface BinnedSplineOptions extends BinnedSplineBaseOptions {
  /**
   * Builds the two subnets: `subnet1` (splitLen2 + condition channels → splitLen1·P) and `subnet2`
   * (splitLen1 + condition channels → splitLen2·P). Required.
   */
  subnetConstructor?: SplineSubnetConstructor
  /**
   * Where to split the channels: a fraction in [0, 1] (default 0.5; the first round(C·splitLen) channels,
   * rounded half to even as Python does, form x1) or an integer number of channels in [1, C − 1].
   * JavaScript cannot tell 1 from 1.0: an integer is always a channel count.
   */
  splitLen?: number
}

/** The option names of the concrete coupling splines (their `parameterCounts` is fixed by the class). */
export const COUPLING_SPLINE_KEYS: readonly string[] = ['subnetConstructor', 'splitLen', ...BINNED_SPLINE_BASE_KEYS.filter((k) => k !== 'parameterCounts')]

/** Python's round(): to the nearest integer, halves to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v)
  const d = v - f
  if (d < 0.5) return f
  if (d > 0.5) return f + 1
  return f % 2 === 0 ? f : f + 1
}

/**
 * FrEIA's BinnedSpline: a two-sided coupling block whose couplings are binned splines. Forward:
 * y1 = spline(x1; subnet1(x2 ⊕ c)), y2 = spline(x2; subnet2(y1 ⊕ c)), output y1 ⊕ y2, log-det the sum of
 * both; reverse undoes coupling 2 first. (The subnet names are swapped relative to GLOWCouplingBlock, as in
 * FrEIA.) Subclasses pass their extra `parameterCounts` and implement {@link spline}; they may extend
 * {@link constrainParameters}. State dict: `spline_base.{bins, min_bin_sizes, default_domain,
 * identity_tails, default_width}`, `subnet1.*`, `subnet2.*`.
 */
export abstract class BinnedSpline extends InvertibleModule {
  /** The shared options, buffers and parameter handling. */
  readonly splineBase: BinnedSplineBase
  readonly subnet1: Module
  readonly subnet2: Module
  /** Channels C of the input. */
  readonly channels: number
  /** Channels in x1 (the first part) and x2. */
  readonly splitLen1: number
  readonly splitLen2: number
  /** Total channels of the conditions. */
  readonly conditionLength: number

  constructor(dimsIn: Dims[], opts: BinnedSplineOptions = {}, allowedKeys: readonly string[] = ['subnetConstructor', 'splitLen', ...BINNED_SPLINE_BASE_KEYS]) {
    super(dimsIn, opts)
    const fn = new.target.name
    const o = opts ?? {}
    checkSplineOptionKeys(fn, o, allowedKeys)
    if (this.dimsIn.length !== 1)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: Can only use 1 input, got ${this.dimsIn.length} (${this.dimsIn.map(dimsString).join(', ')})`)
    const shape = this.dimsIn[0]
    this.channels = shape[0]
    const splitLen = o.splitLen ?? 0.5
    if (typeof splitLen !== 'number' || !Number.isFinite(splitLen)) throw argumentError(fn, 'splitLen', 'a fraction in [0, 1] or an integer channel count', splitLen)
    let s1: number
    if (Number.isInteger(splitLen)) {
      if (splitLen < 0 || splitLen > this.channels)
        throw new InnflowError('ERR_ARGUMENT', `${fn}: Integer splitLen must be in range 0 <= splitLen <= ${this.channels} (the channel count), but is: ${splitLen}`)
      s1 = splitLen
    } else {
      if (!(splitLen >= 0 && splitLen <= 1)) throw new InnflowError('ERR_ARGUMENT', `${fn}: Float splitLen must be in range [0, 1], but is: ${splitLen}`)
      s1 = roundHalfEven(this.channels * splitLen)
    }
    // FrEIA crashes in forward when a part is empty (a 1-channel input, issue #8): refuse it up front
    if (s1 === 0 || s1 === this.channels)
      throw new InnflowError(
        'ERR_ARGUMENT',
        `${fn}: splitLen ${splitLen} leaves one part of the ${this.channels} channel(s) empty; a coupling spline needs channels on both sides ` +
          '(for a 1-channel input use ElementwiseRationalQuadraticSpline, or squeeze the input first, e.g. with IRevNetDownsampling)',
      )
    this.splitLen1 = s1
    this.splitLen2 = this.channels - s1
    const rest = shape.slice(1)
    this.dimsC.forEach((d) => {
      if (!sameDims(d.slice(1), rest))
        throw new InnflowError(
          'ERR_SHAPE',
          `${fn}: Dimensions of input ${this.dimsIn.map(dimsString).join(', ')} and one or more conditions ${this.dimsC.map(dimsString).join(', ')} don't agree: ` +
            `each condition must have the input's non-channel shape ${dimsString(rest)}`,
        )
    })
    this.conditionLength = this.dimsC.reduce((a, d) => a + d[0], 0)

    const baseOpts: BinnedSplineBaseOptions = { dimsC: this.dimsC }
    for (const k of BINNED_SPLINE_BASE_KEYS) if (o[k] !== undefined) (baseOpts as Record<string, unknown>)[k] = o[k]
    this.splineBase = this.registerModule('spline_base', new BinnedSplineBase(this.dimsIn, baseOpts, BINNED_SPLINE_BASE_KEYS, fn))
    const p = this.splineBase.numParameters
    const ctor = o.subnetConstructor
    if (typeof ctor !== 'function') throw argumentError(fn, 'subnetConstructor', 'a function (cIn, cOut) => nn.Module', ctor)
    const make = (name: string, cIn: number, cOut: number): Module => {
      const net: unknown = ctor(cIn, cOut)
      if (!isModule(net)) throw new InnflowError('ERR_ARGUMENT', `${fn}: subnetConstructor(${cIn}, ${cOut}) must return an nn.Module, got ${net === null ? 'null' : typeof net}`)
      return this.registerModule(name, net)
    }
    this.subnet1 = make('subnet1', this.splitLen2 + this.conditionLength, this.splitLen1 * p)
    this.subnet2 = make('subnet2', this.splitLen1 + this.conditionLength, this.splitLen2 * p)
  }

  /** The in-bin transform (applied to values inside the domain). */
  protected abstract spline(x: Tensor, bin: BinParameters, rev: boolean): SplineResult

  /** Constrains raw parameters; subclasses extend this for their own parameters. */
  constrainParameters(parameters: Record<string, Tensor>): Record<string, Tensor> {
    return this.splineBase.constrainParameters(parameters)
  }

  private runSubnet(net: Module, input: Tensor, cOut: number, name: string): Tensor {
    const out: unknown = net.forward(input)
    const fn = this.constructor.name
    if (!isTensor(out)) throw new InnflowError('ERR_ARGUMENT', `${fn}: subnet '${name}' must return a Tensor, got ${out === null ? 'null' : typeof out}`)
    const expected = [input.shape[0], cOut, ...input.shape.slice(2)]
    if (!sameDims(out.shape, expected))
      throw new InnflowError('ERR_SHAPE', `${fn}: subnet '${name}' must map ${dimsString(input.shape)} to ${dimsString(expected)}, but returned ${dimsString(out.shape)}`)
    return out
  }

  private coupling(which: 1 | 2, xa: Tensor, u: Tensor, rev: boolean): [Tensor, Tensor] {
    const n = which === 1 ? this.splitLen1 : this.splitLen2
    const raw = this.runSubnet(which === 1 ? this.subnet1 : this.subnet2, u, n * this.splineBase.numParameters, `subnet${which}`)
    const params = this.constrainParameters(this.splineBase.splitParameters(raw, n))
    return this.splineBase.binnedSpline(xa, params, (v, bin, r) => this.spline(v, bin, r), rev)
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const cs = this.checkConditions(c, x[0].shape[0])
    const withC = (t: Tensor): Tensor => (cs.length === 0 ? t : ops.cat([t, ...cs], 1))
    const x1 = x[0].narrow(1, 0, this.splitLen1)
    const x2 = x[0].narrow(1, this.splitLen1, this.splitLen2)
    let y1: Tensor, y2: Tensor, j1: Tensor, j2: Tensor
    if (!rev) {
      ;[y1, j1] = this.coupling(1, x1, withC(x2), false)
      ;[y2, j2] = this.coupling(2, x2, withC(y1), false)
    } else {
      // x1, x2 are the halves of the output here: undo coupling 2 (given y1 ⊕ c), then coupling 1
      ;[y2, j2] = this.coupling(2, x2, withC(x1), true)
      ;[y1, j1] = this.coupling(1, x1, withC(y2), true)
    }
    return [[ops.cat([y1, y2], 1)], j1.add(j2)]
  }

  /** One output of the input's shape. */
  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1)
      throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: Can only use 1 input, got ${Array.isArray(inputDims) ? inputDims.length : typeof inputDims}`)
    return [[...inputDims[0]]]
  }
}
