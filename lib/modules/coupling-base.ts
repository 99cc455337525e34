/**
 * The shared machinery of FrEIA's coupling blocks (its `_BaseCouplingBlock`): AffineCouplingOneSided and
 * ConditionalAffineTransform extend {@link CouplingBlockBase}; NICE, RNVP, GLOW and GIN extend
 * {@link TwoSidedCouplingBlock}, which adds the two-sided scheme.
 *
 * - Channels: C = dimsIn[0][0] (axis 1 of the tensor); every block works at any rank (vectors, images,
 *   volumes) as long as the subnets map (N, cIn, *spatial) to (N, cOut, *spatial).
 * - Split: x1 = the first splitLen1 channels (the half that coupling 1 transforms), x2 = the other
 *   splitLen2 = C − splitLen1. A fractional `splitLen` f in [0, 1] gives splitLen1 = round(C·f) with Python's
 *   round-half-to-even (C = 1 → 0|1, 3 → 2|1, 5 → 2|3, 7 → 4|3), an integer `splitLen` is a channel count.
 * - Conditions: every condition must have the input's non-channel shape; they are concatenated, in list
 *   order, after the passive half that feeds a subnet (x2 ⊕ c1 ⊕ c2 …).
 * - Soft clamp: s = clamp · f(raw) with f = 'ATAN': 0.636·atan(u) (FrEIA's constant, not exactly 2/π),
 *   'TANH': tanh(u), 'SIGMOID': 2(σ(u) − ½), or a user function of a tensor. raw is not divided by clamp.
 * - Two-sided scheme: forward y1 = coupling1(x1 | x2 ⊕ c), y2 = coupling2(x2 | y1 ⊕ c), output y1 ⊕ y2,
 *   log-det j1 + j2; reverse undoes coupling 2 first (x2 from y2 | y1 ⊕ c), then coupling 1 (x1 from y1 |
 *   x2 ⊕ c), log-det −(j1 + j2).
 *
 * This file is internal: its classes are not exported from `modules`.
 */
import { argumentError, InnflowError } from '../errors'
import { Module } from '../nn/module'
import { affineCoupling } from '../ops/coupling'
import { cat } from '../ops/shape'
import { Tensor, zeros } from '../tensor'
import { checkOptionKeys, Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput, sameDims, SubnetConstructor } from './base'

export { checkOptionKeys }
export type { SubnetConstructor }


/**
 * The soft clamp applied to raw log-scales: a name ('ATAN', 'TANH', 'SIGMOID') or a function of a tensor
 * that should map ±∞ to ±1 (it is multiplied by `clamp`).
 */
export type ClampActivation = 'ATAN' | 'TANH' | 'SIGMOID' | ((u: Tensor) => Tensor)

/** Options shared by the coupling blocks (FrEIA's `clamp`, `clamp_activation`, `split_len`). */
export interface CouplingBaseOptions extends InvertibleModuleOptions {
  /**
   * Bound of the log-scales: s = clamp · f(raw), so |s| < clamp (the exponent of the scale). Default 2.
   */
  clamp?: number
  /** The soft clamp f: 'ATAN' (default, 0.636·atan), 'TANH', 'SIGMOID' (2σ(u) − 1) or a function. */
  clampActivation?: ClampActivation
  /**
   * Where to split the channels: a fraction in [0, 1] (default 0.5; the first round(C·splitLen) channels,
   * rounded half to even as Python does, form x1) or an integer number of channels in [0, C]. Note that
   * JavaScript cannot tell 1 from 1.0: an integer is always a channel count, so all channels are `splitLen: C`.
   */
  splitLen?: number
}

/** A log-det contribution: a (batch,) tensor, or a number for volume-preserving couplings. */
export type LogDet = Tensor | number

/** Python's round(): to the nearest integer, halves to the even neighbour. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v)
  const d = v - f
  if (d < 0.5) return f
  if (d > 0.5) return f + 1
  return f % 2 === 0 ? f : f + 1
}

/** FrEIA's constant in the 'ATAN' soft clamp: 0.636·atan maps ±∞ to ±0.999. */
export const ATAN_FACTOR = 0.636

/**
 * The soft clamp of a coupling block as a function of raw subnet outputs: `clamp · f(raw)`. Built-in
 * activations fold `clamp` into one scale factor.
 */
function clampFunction(fn: string, clamp: number, activation: unknown): (u: Tensor) => Tensor {
  if (activation === 'ATAN') {
    const k = clamp * ATAN_FACTOR
    return (u) => u.atan().mul(k)
  }
  if (activation === 'TANH') return (u) => u.tanh().mul(clamp)
  if (activation === 'SIGMOID') return (u) => u.sigmoid().sub(0.5).mul(2 * clamp)
  if (typeof activation === 'string')
    throw new InnflowError('ERR_ARGUMENT', `${fn}: Unknown clamp activation "${activation}" (expected "ATAN", "TANH", "SIGMOID" or a function)`)
  if (typeof activation === 'function') {
    const user = activation as (u: Tensor) => unknown
    return (u) => {
      const r = user(u)
      if (!(r instanceof Tensor) && !(r as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
        throw new InnflowError('ERR_ARGUMENT', `${fn}: clampActivation must return a Tensor, got ${typeof r}`)
      const t = r as Tensor
      if (!sameDims(t.shape, u.shape))
        throw new InnflowError('ERR_SHAPE', `${fn}: clampActivation must return a tensor of its input's shape ${dimsString(u.shape)}, got ${dimsString(t.shape)}`)
      return t.mul(clamp)
    }
  }
  throw argumentError(fn, 'clampActivation', 'either a string ("ATAN", "TANH", "SIGMOID") or a function', activation)
}


/**
 * Base of FrEIA's coupling blocks: options, split, soft clamp, conditions, subnet construction and checks.
 * Subclasses build their subnets with {@link makeSubnet} in the constructor and implement `forward` (the
 * two-sided blocks through {@link TwoSidedCouplingBlock}).
 */
export abstract class CouplingBlockBase extends InvertibleModule {
  /** Number of channels C (the first non-batch axis). */
  readonly channels: number
  /** Rank of the input without the batch dimension: log-dets sum over axes 1..ndims. */
  readonly ndims: number
  /** Channels in x1, the first part. */
  readonly splitLen1: number
  /** Channels in x2, the second part (C − splitLen1). */
  readonly splitLen2: number
  /** The soft-clamp bound. */
  readonly clamp: number
  /** Whether the block has conditions. */
  readonly conditional: boolean
  /** Total channels of the conditions, concatenated after a subnet's data input. */
  readonly conditionLength: number
  /** s = clamp · f(raw). */
  protected readonly softClamp: (raw: Tensor) => Tensor
  /** The named soft clamp ('ATAN', 'TANH', 'SIGMOID'), which the fused coupling op computes; null for a user function. */
  protected readonly clampKind: 'ATAN' | 'TANH' | 'SIGMOID' | null

  /**
   * @param allowedKeys the option names the concrete block accepts (others are refused, as FrEIA refuses
   *   unexpected keyword arguments)
   * @param fixed options the block sets itself (NICE: clamp 0 with the identity activation)
   */
  constructor(
    dimsIn: Dims[],
    opts: CouplingBaseOptions = {},
    allowedKeys: readonly string[] = ['clamp', 'clampActivation', 'splitLen'],
    fixed: Pick<CouplingBaseOptions, 'clamp' | 'clampActivation'> = {},
  ) {
    super(dimsIn, opts)
    const fn = new.target.name
    checkOptionKeys(fn, opts ?? {}, allowedKeys)
    const o: CouplingBaseOptions = { ...(opts ?? {}), ...fixed }
    if (this.dimsIn.length !== 1)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: Can only use 1 input, got ${this.dimsIn.length} (${this.dimsIn.map(dimsString).join(', ')})`)
    const shape = this.dimsIn[0]
    this.channels = shape[0]
    this.ndims = shape.length

    const splitLen = o.splitLen === undefined ? 0.5 : o.splitLen
    if (typeof splitLen !== 'number' || !Number.isFinite(splitLen)) throw argumentError(fn, 'splitLen', 'a fraction in [0, 1] or an integer channel count', splitLen)
    if (Number.isInteger(splitLen)) {
      if (splitLen < 0 || splitLen > this.channels)
        throw new InnflowError('ERR_ARGUMENT', `${fn}: Integer splitLen must be in range 0 <= splitLen <= ${this.channels} (the channel count), but is: ${splitLen}`)
      this.splitLen1 = splitLen
    } else {
      if (!(splitLen >= 0 && splitLen <= 1)) throw new InnflowError('ERR_ARGUMENT', `${fn}: Float splitLen must be in range [0, 1], but is: ${splitLen}`)
      this.splitLen1 = roundHalfEven(this.channels * splitLen)
    }
    this.splitLen2 = this.channels - this.splitLen1

    const clamp = o.clamp === undefined ? 2.0 : o.clamp
    if (typeof clamp !== 'number' || !Number.isFinite(clamp)) throw argumentError(fn, 'clamp', 'a finite number', clamp)
    this.clamp = clamp
    const activation = o.clampActivation === undefined ? 'ATAN' : o.clampActivation
    this.softClamp = clampFunction(fn, clamp, activation)
    this.clampKind = activation === 'ATAN' || activation === 'TANH' || activation === 'SIGMOID' ? activation : null

    const rest = shape.slice(1)
    this.dimsC.forEach((d) => {
      if (!sameDims(d.slice(1), rest))
        throw new InnflowError(
          'ERR_SHAPE',
          `${fn}: Dimensions of input ${this.dimsIn.map(dimsString).join(', ')} and one or more conditions ${this.dimsC.map(dimsString).join(', ')} don't agree: ` +
            `each condition must have the input's non-channel shape ${dimsString(rest)} (tile or broadcast a vector condition first)`,
        )
    })
    this.conditional = this.dimsC.length > 0
    this.conditionLength = this.dimsC.reduce((a, d) => a + d[0], 0)
  }

  /**
   * Calls `subnetConstructor(cIn, cOut)` and registers the result under FrEIA's attribute name (the
   * state-dict prefix), checking that a constructor was given and that it returned a module.
   */
  protected makeSubnet(name: string, ctor: unknown, cIn: number, cOut: number): Module {
    const fn = this.constructor.name
    if (typeof ctor !== 'function')
      throw argumentError(fn, 'subnetConstructor', 'a function (cIn, cOut) => nn.Module (see the module documentation)', ctor)
    const net: unknown = (ctor as SubnetConstructor)(cIn, cOut)
    if (!(net instanceof Module) && !(net as { __isInnflowModule?: boolean } | null)?.__isInnflowModule)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: subnetConstructor(${cIn}, ${cOut}) must return an nn.Module, got ${net === null ? 'null' : typeof net}`)
    return this.registerModule(name, net as Module)
  }

  /** Runs a subnet and checks that it returned a (N, cOut, *spatial) tensor for its (N, cIn, *spatial) input. */
  protected runSubnet(net: Module, input: Tensor, cOut: number, name: string): Tensor {
    const out: unknown = net.forward(input)
    const fn = this.constructor.name
    if (!(out instanceof Tensor) && !(out as { __isInnflowTensor?: boolean } | null)?.__isInnflowTensor)
      throw new InnflowError('ERR_ARGUMENT', `${fn}: subnet '${name}' must return a Tensor, got ${out === null ? 'null' : typeof out}`)
    const y = out as Tensor
    const expected = [input.shape[0], cOut, ...input.shape.slice(2)]
    if (!sameDims(y.shape, expected))
      throw new InnflowError('ERR_SHAPE', `${fn}: subnet '${name}' must map ${dimsString(input.shape)} to ${dimsString(expected)}, but returned ${dimsString(y.shape)}`)
    return y
  }

  /** t ⊕ c1 ⊕ c2 … along the channel axis (t itself when unconditional). */
  protected withConditions(t: Tensor, c: Tensor[]): Tensor {
    return c.length === 0 ? t : cat([t, ...c], 1)
  }

  /** Σ over every non-batch axis: a (batch,) tensor. */
  protected sumNonBatch(s: Tensor): Tensor {
    return s.sum(Array.from({ length: this.ndims }, (_, i) => i + 1))
  }

  /**
   * The affine coupling of the active part x given raw log-scales and shifts: forward y = e^s·x + t, reverse
   * x = (y − t)·e^{−s}, with s = clamp·f(sRaw); returns y and ±Σ s.
   */
  protected affine(x: Tensor, sRaw: Tensor, t: Tensor, rev: boolean): [Tensor, Tensor] {
    const s = this.softClamp(sRaw)
    const j = this.sumNonBatch(s)
    return rev ? [x.sub(t).mul(s.neg().exp()), j.neg()] : [s.exp().mul(x).add(t), j]
  }

  /**
   * {@link affine} with the raw log-scales and shifts in one subnet output a = [s_raw | t] (2·len channels for
   * the len channels of x): the fused native op for the named soft clamps (the same operations, one op per
   * direction), the op chain for a user function.
   */
  protected affineFromSubnet(x: Tensor, a: Tensor, len: number, rev: boolean): [Tensor, Tensor] {
    if (this.clampKind !== null) return affineCoupling(a, x, { clampKind: this.clampKind, clamp: this.clamp, rev })
    return this.affine(x, a.narrow(1, 0, len), a.narrow(1, len, len), rev)
  }

  /** A (batch,) tensor of zeros in x's dtype and device (the log-det of an identity). */
  protected zeroLogDet(x: Tensor): Tensor {
    return zeros([x.shape[0]], { dtype: x.dtype, device: x.device })
  }

  /** Checks the inputs and conditions of a call; returns the conditions. */
  protected checkCall(x: Tensor[], c: Tensor[] | undefined): Tensor[] {
    this.checkInputs(x)
    return this.checkConditions(c, x[0].shape[0])
  }

  /** x1, x2 = the first splitLen1 channels and the rest. */
  protected splitChannels(x: Tensor): [Tensor, Tensor] {
    return [x.narrow(1, 0, this.splitLen1), x.narrow(1, this.splitLen1, this.splitLen2)]
  }

  /** One output of the input's shape. */
  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1)
      throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}: Can only use 1 input, got ${Array.isArray(inputDims) ? inputDims.length : typeof inputDims}`)
    return [[...inputDims[0]]]
  }
}

/**
 * The two-sided scheme on top of {@link CouplingBlockBase}: subclasses implement `coupling1` (transforms x1
 * given x2 ⊕ c) and `coupling2` (transforms x2 given y1 ⊕ c).
 */
export abstract class TwoSidedCouplingBlock extends CouplingBlockBase {
  /**
   * Coupling 1: transforms x1 (splitLen1 channels) given u2 = x2 ⊕ c (forward) or undoes it given the same
   * u2 (reverse). Returns the result and its log-det (negated in reverse).
   */
  protected abstract coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet]
  /** Coupling 2: transforms x2 (splitLen2 channels) given u1 = y1 ⊕ c, or undoes it. */
  protected abstract coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet]

  /**
   * The two-sided scheme. A coupling whose active part has no channels (C = 1, or an integer splitLen of 0
   * or C) is the identity and is skipped: its subnet would return an empty tensor.
   */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    const cs = this.checkCall(x, c)
    const [x1, x2] = this.splitChannels(x[0])
    let y1: Tensor, y2: Tensor
    let j1: LogDet = 0, j2: LogDet = 0
    if (!rev) {
      ;[y1, j1] = this.splitLen1 > 0 ? this.coupling1(x1, this.withConditions(x2, cs), false) : [x1, 0]
      ;[y2, j2] = this.splitLen2 > 0 ? this.coupling2(x2, this.withConditions(y1, cs), false) : [x2, 0]
    } else {
      // here x1, x2 are the halves of the output; undo coupling 2 first, then coupling 1
      ;[y2, j2] = this.splitLen2 > 0 ? this.coupling2(x2, this.withConditions(x1, cs), true) : [x2, 0]
      ;[y1, j1] = this.splitLen1 > 0 ? this.coupling1(x1, this.withConditions(y2, cs), true) : [x1, 0]
    }
    return [[cat([y1, y2], 1)], addLogDets(j1, j2)]
  }
}

/** j1 + j2 where either may be a number (a constant log-det). */
export function addLogDets(a: LogDet, b: LogDet): LogDet {
  if (typeof a === 'number' && typeof b === 'number') return a + b
  if (typeof a === 'number') return a === 0 ? b : (b as Tensor).add(a)
  if (typeof b === 'number') return b === 0 ? a : a.add(b)
  return a.add(b)
}
