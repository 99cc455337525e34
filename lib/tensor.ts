/**
 * The Tensor: a handle to native memory plus its shape, dtype, device and autograd state, with chainable ops.
 * Creation functions (`tensor`, `zeros`, `ones`, `full`, `rand`, `randn`, ...) live here too.
 */
import { core, NativeTensor } from './binding'
import { checkShape, Device, DType, resolveDtype } from './dtype'
import { resolveDevice } from './device'
import { argumentError, describe, InnflowError } from './errors'
import { adoptGrad, GradEdge, isGradEnabled, record, runBackward } from './autograd/tape'
import { track } from './scope'
import { invalidateCompiledSteps } from './capture'
import * as E from './ops/elementwise'
import * as R from './ops/reduce'
import * as V from './ops/view'
import * as S from './ops/shape'
import * as M from './ops/matmul'

// Node 20 defines Symbol.dispose only in its main realm (as the registered symbol 'nodejs.dispose'); code
// running in a vm context, such as jest's, sees a Symbol without it. Install the same symbol there.
if (typeof (Symbol as { dispose?: symbol }).dispose !== 'symbol')
  Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('nodejs.dispose'), configurable: true })

/** A tensor or a plain number (broadcast as a scalar of the tensor's dtype). */
export type TensorLike = Tensor | number

/** Options accepted by the creation functions. */
export interface TensorOptions {
  dtype?: DType
  device?: Device
  requiresGrad?: boolean
}

/**
 * An n-dimensional array in native memory. Create one with {@link tensor}, {@link zeros}, {@link randn}...;
 * free it with `dispose()` (or let {@link tidy} do it).
 */
export class Tensor {
  /** @internal marks tensors across module copies (jest realms) */
  readonly __isInnflowTensor = true
  /** The size of each dimension. */
  readonly shape: readonly number[]
  /** Element type. */
  readonly dtype: DType
  /** Where the data lives. */
  readonly device: Device = 'cpu'
  /** @internal */ _handle: NativeTensor | null
  /** @internal */ _gradFn: GradEdge | null = null
  /** @internal exempt from tidy() */ _kept = false
  private _requiresGrad = false
  private _grad: Tensor | null = null

  /** @internal Tensors are made by ops and creation functions, not with `new`. */
  constructor(handle: NativeTensor) {
    this._handle = handle
    const meta = handle.meta()
    this.dtype = meta[0] as DType
    this.device = meta[1] as Device
    this.shape = Object.freeze(meta.slice(2) as number[])
    track(this)
  }

  /** @internal The native handle; throws ERR_DISPOSED once disposed. */
  get handle(): NativeTensor {
    const h = this._handle
    if (h === null) throw new InnflowError('ERR_DISPOSED', `tensor of shape [${this.shape.join(', ')}] was disposed and cannot be used`)
    return h
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length
  }
  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1)
  }
  /** True after dispose(). */
  get isDisposed(): boolean {
    return this._handle === null
  }

  /** Whether ops on this tensor are recorded for backward(). Settable on leaf tensors. */
  get requiresGrad(): boolean {
    return this._requiresGrad
  }
  set requiresGrad(value: boolean) {
    if (typeof value !== 'boolean') throw argumentError('requiresGrad', 'value', 'a boolean', value)
    if (!value && this._gradFn) throw new InnflowError('ERR_ARGUMENT', 'requiresGrad: cannot turn off gradients of a non-leaf tensor; use detach()')
    this._requiresGrad = value
  }
  /** The accumulated gradient of a leaf tensor after backward(), or null. */
  get grad(): Tensor | null {
    return this._grad
  }
  set grad(g: Tensor | null) {
    if (g !== null) {
      if (!(g instanceof Tensor)) throw argumentError('grad', 'value', 'a Tensor or null', g)
      if (g.shape.join() !== this.shape.join()) throw new InnflowError('ERR_SHAPE', `grad: shape [${g.shape}] does not match the tensor's [${this.shape}]`)
      adoptGrad(g)
    }
    this._grad = g
  }
  /**
   * @internal Replaces the data of this tensor in place (object identity kept), as PyTorch's `param.data = ...`
   * does: used by Module.to() and loadStateDict so optimisers keep pointing at the same parameters.
   */
  _assign(h: NativeTensor): void {
    invalidateCompiledSteps() // a compiled step may hold the old storage
    this.dispose()
    this._handle = h
    const meta = h.meta()
    ;(this as { dtype: DType }).dtype = meta[0] as DType
    ;(this as { device: Device }).device = meta[1] as Device
    ;(this as { shape: readonly number[] }).shape = Object.freeze(meta.slice(2) as number[])
  }
  /** @internal */
  _setGrad(g: Tensor): void {
    adoptGrad(g)
    this._grad = g
  }
  /** @internal */
  _setGradFn(edge: GradEdge): void {
    this._gradFn = edge
    this._requiresGrad = true
  }
  /** True for tensors not produced by a recorded op. */
  get isLeaf(): boolean {
    return this._gradFn === null
  }

  /** A copy of the values (row-major) as a Float32Array or Float64Array. */
  toArray(): Float32Array | Float64Array {
    const h = this.handle
    const out = this.dtype === 'float32' ? new Float32Array(this.size) : new Float64Array(this.size)
    h.readInto(out)
    return out
  }
  /** The value of a one-element tensor. */
  item(): number {
    return this.handle.item()
  }
  /** The values, asynchronously (for device tensors this waits for the device; on the CPU it resolves at once). */
  async data(): Promise<Float32Array | Float64Array> {
    return this.toArray()
  }
  /** Nested arrays of numbers, for printing and tests. */
  toNested(): unknown {
    const flat = Array.from(this.toArray())
    const build = (dim: number, offset: number): unknown => {
      if (dim === this.shape.length) return flat[offset]
      const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1)
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride))
    }
    return build(0, 0)
  }

  /** Frees the native memory now. Idempotent; later use throws ERR_DISPOSED. */
  dispose(): void {
    if (this._handle) {
      this._handle.dispose()
      this._handle = null
    }
  }
  [Symbol.dispose](): void {
    this.dispose()
  }

  /**
   * Computes the gradients of this tensor with respect to every leaf that requires grad and adds them to the
   * leaves' `.grad`. Without `grad` the tensor must have one element (the gradient is 1).
   */
  backward(grad?: Tensor): void {
    if (!this._requiresGrad) throw new InnflowError('ERR_ARGUMENT', 'backward: this tensor does not require grad (no input had requiresGrad = true)')
    if (grad === undefined) {
      if (this.size !== 1) throw new InnflowError('ERR_SHAPE', `backward: a gradient must be given for a tensor of shape [${this.shape}] (only one-element tensors get an implicit 1)`)
      const one = full(this.shape as number[], 1, { dtype: this.dtype, device: this.device })
      try {
        runBackward(this, one)
      } finally {
        one.dispose()
      }
      return
    }
    if (!(grad instanceof Tensor)) throw argumentError('backward', 'grad', 'a Tensor', grad)
    if (grad.shape.join() !== this.shape.join()) throw new InnflowError('ERR_SHAPE', `backward: grad shape [${grad.shape}] does not match [${this.shape}]`)
    if (grad.dtype !== this.dtype) throw new InnflowError('ERR_DTYPE', `backward: grad dtype ${grad.dtype} does not match ${this.dtype}`)
    if (grad.device !== this.device) throw new InnflowError('ERR_DEVICE', `backward: grad is on ${grad.device} but the tensor is on ${this.device}`)
    runBackward(this, grad)
  }

  /** A tensor sharing this one's data, cut from the autograd graph. */
  detach(): Tensor {
    return new Tensor(core.reshape(this.handle, this.shape))
  }
  /** A copy of the data (differentiable). */
  clone(): Tensor {
    return V.clone(this)
  }
  /** Converts dtype (differentiable) and/or device. Returns this tensor when nothing changes. */
  to(opts: { dtype?: DType; device?: Device }): Tensor {
    if (opts === null || typeof opts !== 'object') throw argumentError('to', 'opts', '{ dtype?, device? }', opts)
    const device = resolveDevice('to', opts.device ?? this.device)
    const dtype = resolveDtype('to', opts.dtype ?? this.dtype)
    const moved = device === this.device ? this : V.toDevice(this, device)
    return dtype === this.dtype ? moved : V.cast(moved, dtype)
  }

  // ---- elementwise
  add(other: TensorLike): Tensor { return E.add(this, other) }
  sub(other: TensorLike): Tensor { return E.sub(this, other) }
  mul(other: TensorLike): Tensor { return E.mul(this, other) }
  div(other: TensorLike): Tensor { return E.div(this, other) }
  pow(exponent: TensorLike): Tensor { return E.pow(this, exponent) }
  maximum(other: TensorLike): Tensor { return E.maximum(this, other) }
  minimum(other: TensorLike): Tensor { return E.minimum(this, other) }
  neg(): Tensor { return E.neg(this) }
  exp(): Tensor { return E.exp(this) }
  log(): Tensor { return E.log(this) }
  log1p(): Tensor { return E.log1p(this) }
  expm1(): Tensor { return E.expm1(this) }
  sqrt(): Tensor { return E.sqrt(this) }
  square(): Tensor { return E.square(this) }
  reciprocal(): Tensor { return E.reciprocal(this) }
  abs(): Tensor { return E.abs(this) }
  sign(): Tensor { return E.sign(this) }
  sin(): Tensor { return E.sin(this) }
  cos(): Tensor { return E.cos(this) }
  tanh(): Tensor { return E.tanh(this) }
  atan(): Tensor { return E.atan(this) }
  sigmoid(): Tensor { return E.sigmoid(this) }
  softplus(beta = 1, threshold = 20): Tensor { return E.softplus(this, beta, threshold) }
  relu(): Tensor { return E.relu(this) }
  leakyRelu(negativeSlope = 0.01): Tensor { return E.leakyRelu(this, negativeSlope) }
  elu(alpha = 1): Tensor { return E.elu(this, alpha) }
  clamp(min: number, max: number): Tensor { return E.clamp(this, min, max) }
  gt(other: TensorLike): Tensor { return E.gt(this, other) }
  lt(other: TensorLike): Tensor { return E.lt(this, other) }
  ge(other: TensorLike): Tensor { return E.ge(this, other) }
  le(other: TensorLike): Tensor { return E.le(this, other) }
  eq(other: TensorLike): Tensor { return E.eq(this, other) }
  ne(other: TensorLike): Tensor { return E.ne(this, other) }

  // ---- reductions
  /** Sum over `dim` (a dimension or a list of them; all when omitted). */
  sum(dim?: number | number[], keepdim = false): Tensor { return R.sum(this, dim, keepdim) }
  /** Mean over `dim` (a dimension or a list of them; all when omitted). */
  mean(dim?: number | number[], keepdim = false): Tensor { return R.mean(this, dim, keepdim) }

  // ---- shapes
  /** The same data with another shape (one dimension may be -1). */
  reshape(...shape: number[] | [readonly number[]]): Tensor { return V.reshape(this, flatArgs(shape)) }
  /** Alias of reshape (data is always contiguous). */
  view(...shape: number[] | [readonly number[]]): Tensor { return V.reshape(this, flatArgs(shape)) }
  flatten(startDim = 0, endDim = -1): Tensor { return V.flatten(this, startDim, endDim) }
  unsqueeze(dim: number): Tensor { return V.unsqueeze(this, dim) }
  squeeze(dim?: number): Tensor { return V.squeeze(this, dim) }
  /** Broadcasts to `shape` (a copy). */
  expand(...shape: number[] | [readonly number[]]): Tensor { return V.expand(this, flatArgs(shape)) }
  permute(...dims: number[] | [readonly number[]]): Tensor { return S.permute(this, flatArgs(dims)) }
  transpose(dim0: number, dim1: number): Tensor { return S.transpose(this, dim0, dim1) }
  /** Transpose of a 2-D tensor. */
  t(): Tensor { return S.transpose(this, 0, 1) }
  narrow(dim: number, start: number, length: number): Tensor { return S.narrow(this, dim, start, length) }
  /** torch.split: chunks of `size` along dim, or pieces of the given sizes. */
  split(sizes: number | number[], dim = 0): Tensor[] { return S.split(this, sizes, dim) }
  indexSelect(dim: number, index: Tensor | number[]): Tensor { return S.indexSelect(this, dim, index) }
  gather(dim: number, index: Tensor): Tensor { return S.gather(this, dim, index) }
  matmul(other: Tensor): Tensor { return M.matmul(this, other) }

  toString(): string {
    if (this.isDisposed) return `Tensor(disposed, shape=[${this.shape}], dtype=${this.dtype})`
    const values = this.size <= 64 ? JSON.stringify(this.toNested()) : `[${Array.from(this.toArray().subarray(0, 8)).join(', ')}, ...]`
    return `Tensor(${values}, shape=[${this.shape}], dtype=${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`
  }
}

function flatArgs(args: number[] | [readonly number[]]): number[] {
  return (args.length === 1 && Array.isArray(args[0]) ? args[0] : args) as number[]
}

/** @internal Wraps a native result. */
export function fromHandle(h: NativeTensor): Tensor {
  return new Tensor(h)
}

/** @internal Validates that x is a live tensor (for op arguments). */
export function checkTensor(fn: string, name: string, x: unknown): Tensor {
  if (!(x instanceof Tensor)) {
    if (x && (x as { __isInnflowTensor?: boolean }).__isInnflowTensor) return x as Tensor
    throw argumentError(fn, name, 'a Tensor', x)
  }
  return x
}

/** @internal Records a one-output op. */
export function recordUnary(name: string, inputs: Tensor[], out: Tensor, backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (isGradEnabled()) record(name, inputs, [out], (gs) => backward(gs[0] as Tensor))
  return out
}

function withGrad(t: Tensor, opts: TensorOptions | undefined): Tensor {
  if (opts?.requiresGrad !== undefined) t.requiresGrad = opts.requiresGrad
  return t
}

function checkOptions(fn: string, opts: unknown): TensorOptions {
  if (opts === undefined) {
    resolveDevice(fn, undefined) // the default device (INNFLOW_DEVICE) must be usable too
    return {}
  }
  if (opts === null || typeof opts !== 'object') throw argumentError(fn, 'opts', 'an options object', opts)
  const o = opts as TensorOptions
  if (o.requiresGrad !== undefined && typeof o.requiresGrad !== 'boolean') throw argumentError(fn, 'opts.requiresGrad', 'a boolean', o.requiresGrad)
  resolveDevice(fn, o.device)
  return o
}

/**
 * A tensor from values in row-major order. `shape` defaults to [values.length].
 * @example tensor([1, 2, 3, 4], [2, 2], { dtype: 'float64' })
 */
export function tensor(values: number[] | Float32Array | Float64Array, shape?: number[], opts?: TensorOptions): Tensor {
  const o = checkOptions('tensor', opts)
  const dtype = resolveDtype('tensor', o.dtype)
  if (!Array.isArray(values) && !(values instanceof Float32Array) && !(values instanceof Float64Array) && !ArrayBuffer.isView(values))
    throw argumentError('tensor', 'values', 'a number[], Float32Array or Float64Array', values)
  const s = shape === undefined ? [(values as ArrayLike<number>).length] : checkShape('tensor', shape)
  const n = s.reduce((a, b) => a * b, 1)
  if ((values as ArrayLike<number>).length !== n)
    throw new InnflowError('ERR_SHAPE', `tensor: ${(values as ArrayLike<number>).length} values do not fill shape [${s.join(', ')}] (${n} elements)`)
  return withGrad(new Tensor(core.fromArray(values, s, dtype, resolveDevice('tensor', o.device))), o)
}

/** A tensor filled with `value`. */
export function full(shape: number[], value: number, opts?: TensorOptions): Tensor {
  const o = checkOptions('full', opts)
  if (typeof value !== 'number') throw argumentError('full', 'value', 'a number', value)
  return withGrad(new Tensor(core.full(checkShape('full', shape), value, resolveDtype('full', o.dtype), resolveDevice('full', o.device))), o)
}
/** A tensor of zeros. */
export function zeros(shape: number[], opts?: TensorOptions): Tensor {
  return full(shape, 0, opts)
}
/** A tensor of ones. */
export function ones(shape: number[], opts?: TensorOptions): Tensor {
  return full(shape, 1, opts)
}
/** Zeros shaped, typed and placed like t. */
export function zerosLike(t: Tensor): Tensor {
  return full(t.shape as number[], 0, { dtype: t.dtype, device: t.device })
}
/** Ones shaped, typed and placed like t. */
export function onesLike(t: Tensor): Tensor {
  return full(t.shape as number[], 1, { dtype: t.dtype, device: t.device })
}
/** The n×n identity matrix. */
export function eye(n: number, opts?: TensorOptions): Tensor {
  if (!Number.isInteger(n) || n < 0) throw argumentError('eye', 'n', 'a non-negative integer', n)
  const v = new Array<number>(n * n).fill(0)
  for (let i = 0; i < n; i++) v[i * n + i] = 1
  return tensor(v, [n, n], opts)
}
/** [0, 1, ..., n-1]. */
export function arange(n: number, opts?: TensorOptions): Tensor {
  if (!Number.isInteger(n) || n < 0) throw argumentError('arange', 'n', 'a non-negative integer', n)
  return tensor(Array.from({ length: n }, (_, i) => i), [n], opts)
}

/** Seeds the generator behind rand, randn and randperm (a counter-based Philox stream). */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw argumentError('manualSeed', 'seed', 'a non-negative safe integer', seed)
  core.manualSeed(seed)
}
/**
 * The state of the generator behind rand, randn and randperm, as an opaque string (32 hex digits), to be
 * restored with {@link setRngState} (torch.get_rng_state). Training checkpoints store it so that a resumed
 * run draws the same numbers as an uninterrupted one.
 */
export function getRngState(): string {
  return core.getRngState()
}
/** Restores a state from {@link getRngState}; the next draws repeat those that followed it. */
export function setRngState(state: string): void {
  if (typeof state !== 'string' || !/^[0-9a-fA-F]{32}$/.test(state))
    throw argumentError('setRngState', 'state', 'a string of 32 hex digits from getRngState()', state)
  core.setRngState(state)
}
/** Uniform samples in (0, 1). */
export function rand(shape: number[], opts?: TensorOptions): Tensor {
  const o = checkOptions('rand', opts)
  return withGrad(new Tensor(core.rand(checkShape('rand', shape), resolveDtype('rand', o.dtype), resolveDevice('rand', o.device))), o)
}
/** Standard normal samples. */
export function randn(shape: number[], opts?: TensorOptions): Tensor {
  const o = checkOptions('randn', opts)
  return withGrad(new Tensor(core.randn(checkShape('randn', shape), resolveDtype('randn', o.dtype), resolveDevice('randn', o.device))), o)
}
/** A random permutation of 0..n-1 (as float values of the default dtype). */
export function randperm(n: number, opts?: TensorOptions): Tensor {
  const o = checkOptions('randperm', opts)
  if (!Number.isInteger(n) || n < 0) throw argumentError('randperm', 'n', 'a non-negative integer', n)
  return new Tensor(core.randperm(n, resolveDtype('randperm', o.dtype), resolveDevice('randperm', o.device)))
}

/** Sets the number of CPU threads the kernels use (default: INNFLOW_NUM_THREADS or all cores). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw argumentError('setNumThreads', 'n', 'a positive integer', n)
  core.setNumThreads(n)
}
/** The number of CPU threads the kernels use. */
export function getNumThreads(): number {
  return core.getNumThreads()
}

export { describe }
