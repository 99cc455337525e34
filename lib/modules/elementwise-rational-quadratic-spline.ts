/**
 * ElementwiseRationalQuadraticSpline (FrEIA/modules/splines/rational_quadratic.py): not a coupling — every
 * element of the input gets its own rational-quadratic spline (same parameter layout, constraints and
 * formulas as {@link RationalQuadraticSpline}, see {@link BinnedSplineBase}), with P = 3K + 1 raw
 * parameters per element (3K with identity tails).
 * - Unconditional: the raw parameters are the trainable `spline_parameters`, zeros of shape
 *   (C·P, *spatial) (the identity at initialisation), shared by every sample of the batch.
 * - Conditional: they are `subnet(c_1 ⊕ c_2 ⊕ …)`, a subnet from (condition channels) to C·P channels;
 *   conditions must have the input's non-channel shape.
 * Log-det: Σ of the elementwise log-slopes over all non-batch axes (negated in reverse).
 * State dict: `spline_parameters` (or `subnet.*`), `bins`, `min_bin_sizes`, `default_domain`,
 * `identity_tails`, `default_width`.
 */
import { InnflowError, argumentError } from '../errors'
import { Module } from '../nn/module'
import * as ops from '../ops'
import { Tensor, zeros } from '../tensor'
import { Dims, dimsString, ModuleOutput, sameDims } from './base'
import { BinnedSplineBase, BinnedSplineBaseOptions, BINNED_SPLINE_BASE_KEYS, checkSplineOptionKeys, SplineSubnetConstructor } from './binned-spline-base'
import { BinParameters, constrainDeltas, rationalQuadratic, SplineResult } from './spline-math'

/** Options of {@link ElementwiseRationalQuadraticSpline} (FrEIA's keyword arguments, camelCase). */
export interface ElementwiseRationalQuadraticSplineOptions extends Omit<BinnedSplineBaseOptions, 'parameterCounts'> {
  /** With conditions (required then): builds the subnet (condition channels → C·P). Unused without conditions. */
  subnetConstructor?: SplineSubnetConstructor
}

const KEYS: readonly string[] = ['subnetConstructor', ...BINNED_SPLINE_BASE_KEYS.filter((k) => k !== 'parameterCounts')]

const isModule = (v: unknown): v is Module => v instanceof Module || (v as { __isInnflowModule?: boolean } | null)?.__isInnflowModule === true
const isTensor = (v: unknown): v is Tensor => v instanceof Tensor || (v as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor === true

/**
 * One rational-quadratic spline per element.
 * @example
 * const inn = new SequenceINN(3, 8, 8)
 * inn.append(modules.ElementwiseRationalQuadraticSpline, { bins: 6, identityTails: true })
 */
export class ElementwiseRationalQuadraticSpline extends BinnedSplineBase {
  /** Channels C of the input. */
  readonly channels: number
  /** Total channels of the conditions. */
  readonly conditionLength: number
  readonly conditional: boolean
  /** The raw parameters (C·P, *spatial) when unconditional, else null. */
  readonly splineParameters: Tensor | null = null
  /** The condition subnet when conditional, else null. */
  readonly subnet: Module | null = null

  constructor(dimsIn: Dims[], opts: ElementwiseRationalQuadraticSplineOptions = {}) {
    const o = opts ?? {}
    const bins = (o as { bins?: unknown }).bins ?? 10
    const deltas = typeof bins === 'number' && Number.isInteger(bins) && bins >= 1 ? bins - 1 : 0
    // parameterCounts is set here (as FrEIA passes it explicitly), so a caller's is refused
    checkSplineOptionKeys(new.target.name, o, KEYS)
    super(dimsIn, { ...o, parameterCounts: { deltas } } as BinnedSplineBaseOptions, [...KEYS, 'parameterCounts'])
    const fn = new.target.name
    if (this.dimsIn.length !== 1)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: expects exactly 1 input, got ${this.dimsIn.length} (${this.dimsIn.map(dimsString).join(', ')})`)
    const shape = this.dimsIn[0]
    this.channels = shape[0]
    this.conditional = this.dimsC.length > 0
    this.conditionLength = this.dimsC.reduce((a, d) => a + d[0], 0)
    const p = this.numParameters
    if (this.conditional) {
      const rest = shape.slice(1)
      this.dimsC.forEach((d) => {
        if (!sameDims(d.slice(1), rest))
          throw new InnflowError('ERR_SHAPE', `${fn}: every condition must have the input's non-channel shape ${dimsString(rest)}, got ${this.dimsC.map(dimsString).join(', ')}`)
      })
      const ctor = o.subnetConstructor
      if (typeof ctor !== 'function') throw argumentError(fn, 'subnetConstructor', 'a function (cIn, cOut) => nn.Module (required with conditions)', ctor)
      const net: unknown = ctor(this.conditionLength, this.channels * p)
      if (!isModule(net)) throw new InnflowError('ERR_ARGUMENT', `${fn}: subnetConstructor(${this.conditionLength}, ${this.channels * p}) must return an nn.Module, got ${net === null ? 'null' : typeof net}`)
      this.subnet = this.registerModule('subnet', net)
    } else {
      this.splineParameters = this.registerParameter('spline_parameters', zeros([this.channels * p, ...shape.slice(1)]))
    }
  }

  override constrainParameters(parameters: Record<string, Tensor>): Record<string, Tensor> {
    return constrainDeltas(this.bins, super.constrainParameters(parameters))
  }

  /** The rational-quadratic map of one bin. */
  spline(x: Tensor, b: BinParameters, rev: boolean): SplineResult {
    return rationalQuadratic(x, b.left, b.right, b.bottom, b.top, b.deltas_left, b.deltas_right, rev)
  }

  override forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const batch = x[0].shape[0]
    const cs = this.checkConditions(c, batch)
    let raw: Tensor
    if (this.subnet) {
      // FrEIA casts the conditions to float32 (`.float()`); innflow keeps the model's dtype
      const input = cs.length === 1 ? cs[0] : ops.cat(cs, 1)
      const out: unknown = this.subnet.forward(input)
      const fn = this.constructor.name
      if (!isTensor(out)) throw new InnflowError('ERR_ARGUMENT', `${fn}: subnet must return a Tensor, got ${out === null ? 'null' : typeof out}`)
      const expected = [batch, this.channels * this.numParameters, ...x[0].shape.slice(2)]
      if (!sameDims(out.shape, expected))
        throw new InnflowError('ERR_SHAPE', `${fn}: subnet must map ${dimsString(input.shape)} to ${dimsString(expected)}, but returned ${dimsString(out.shape)}`)
      raw = out
    } else {
      const sp = this.splineParameters as Tensor
      raw = sp.unsqueeze(0).expand([batch, ...sp.shape])
    }
    const params = this.constrainParameters(this.splitParameters(raw, this.channels))
    const [y, logDet] = this.binnedSpline(x[0], params, (v, b, r) => this.spline(v, b, r), rev)
    return [[y], logDet]
  }
}
