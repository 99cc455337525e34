/**
 * Layers with parameters: Linear and Conv2d, with torch.nn's positional arguments, an options object for
 * the rest, and PyTorch's default initialisation drawn from innflow's seeded generator.
 */
import { DType, getDefaultDtype, resolveDtype } from '../dtype'
import { argumentError } from '../errors'
import { linear } from '../ops/matmul'
import { conv2d } from '../ops/conv'
import { Tensor, zeros } from '../tensor'
import { kaimingUniform_, uniform_ } from './init'
import { Module } from './module'

function count(fn: string, name: string, v: unknown, min = 0): number {
  if (!Number.isInteger(v) || (v as number) < min) throw argumentError(fn, name, min === 0 ? 'a non-negative integer' : `an integer >= ${min}`, v)
  return v as number
}

function pair(fn: string, name: string, v: unknown, min: number): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= min))
    throw argumentError(fn, name, `an integer >= ${min} or a pair of them`, v)
  return [p[0], p[1]]
}

function options<T extends object>(fn: string, opts: unknown): Partial<T> {
  if (opts === undefined) return {}
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw argumentError(fn, 'options', 'an options object', opts)
  return opts as Partial<T>
}

function flag(fn: string, name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw argumentError(fn, name, 'a boolean', v)
  return v
}

/** PyTorch's default init of a weight with fan-in `fanIn` and its bias: both U(−1/√fanIn, 1/√fanIn). */
function resetWeightAndBias(weight: Tensor, bias: Tensor | null, fanIn: number): void {
  kaimingUniform_(weight, Math.sqrt(5))
  if (bias) {
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0
    uniform_(bias, -bound, bound)
  }
}

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean
  /** Parameter dtype (default: getDefaultDtype()). */
  dtype?: DType
}

/**
 * y = x Wᵀ + b, for x of shape (*, inFeatures). `weight` is (outFeatures, inFeatures), `bias` (outFeatures).
 * Both start as U(−1/√inFeatures, 1/√inFeatures), PyTorch's default.
 * @example new nn.Linear(2, 64)
 */
export class Linear extends Module {
  readonly inFeatures: number
  readonly outFeatures: number
  readonly weight: Tensor
  readonly bias: Tensor | null

  constructor(inFeatures: number, outFeatures: number, opts?: LinearOptions) {
    super()
    this.inFeatures = count('Linear', 'inFeatures', inFeatures)
    this.outFeatures = count('Linear', 'outFeatures', outFeatures)
    const o = options<LinearOptions>('Linear', opts)
    const dtype = o.dtype === undefined ? getDefaultDtype() : resolveDtype('Linear', o.dtype)
    this.weight = this.registerParameter('weight', zeros([this.outFeatures, this.inFeatures], { dtype }))
    this.bias = this.registerParameter('bias', flag('Linear', 'bias', o.bias, true) ? zeros([this.outFeatures], { dtype }) : null)
    this.resetParameters()
  }

  /** Draws the parameters again from PyTorch's default distribution. */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias, this.inFeatures)
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias)
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`
  }
}

/** Options of {@link Conv2d}. */
export interface Conv2dOptions {
  /** Step of the kernel (default 1). */
  stride?: number | [number, number]
  /** Zero padding on each side (default 0). */
  padding?: number | [number, number]
  /** Learn an additive bias per output channel (default true). */
  bias?: boolean
  /** Parameter dtype (default: getDefaultDtype()). */
  dtype?: DType
}

/**
 * 2-D convolution (cross-correlation, as in PyTorch) of x (N, inChannels, H, W). `weight` is
 * (outChannels, inChannels, kH, kW), `bias` (outChannels); both start as U(−1/√fanIn, 1/√fanIn) with
 * fanIn = inChannels·kH·kW.
 * @example new nn.Conv2d(3, 16, 3, { padding: 1 })
 */
export class Conv2d extends Module {
  readonly inChannels: number
  readonly outChannels: number
  readonly kernelSize: [number, number]
  readonly stride: [number, number]
  readonly padding: [number, number]
  readonly weight: Tensor
  readonly bias: Tensor | null

  constructor(inChannels: number, outChannels: number, kernelSize: number | [number, number], opts?: Conv2dOptions) {
    super()
    this.inChannels = count('Conv2d', 'inChannels', inChannels, 1)
    this.outChannels = count('Conv2d', 'outChannels', outChannels, 1)
    this.kernelSize = pair('Conv2d', 'kernelSize', kernelSize, 1)
    const o = options<Conv2dOptions>('Conv2d', opts)
    this.stride = pair('Conv2d', 'stride', o.stride ?? 1, 1)
    this.padding = pair('Conv2d', 'padding', o.padding ?? 0, 0)
    const dtype = o.dtype === undefined ? getDefaultDtype() : resolveDtype('Conv2d', o.dtype)
    const [kh, kw] = this.kernelSize
    this.weight = this.registerParameter('weight', zeros([this.outChannels, this.inChannels, kh, kw], { dtype }))
    this.bias = this.registerParameter('bias', flag('Conv2d', 'bias', o.bias, true) ? zeros([this.outChannels], { dtype }) : null)
    this.resetParameters()
  }

  /** Draws the parameters again from PyTorch's default distribution. */
  resetParameters(): void {
    resetWeightAndBias(this.weight, this.bias, this.inChannels * this.kernelSize[0] * this.kernelSize[1])
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding })
  }

  override extraRepr(): string {
    const k = this.kernelSize
    return `${this.inChannels}, ${this.outChannels}, kernel_size=(${k[0]}, ${k[1]}), stride=(${this.stride[0]}, ${this.stride[1]}), padding=(${this.padding[0]}, ${this.padding[1]}), bias=${this.bias !== null}`
  }
}
