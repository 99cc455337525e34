/**
 * Matrix products (native/cpu/matmul.cc): `matmul` with torch.matmul's semantics, `linear` (x·Wᵀ + b, the
 * layer every subnet is made of), `catLinear` (linear over a concatenation, without making it), and the choice
 * of GEMM backend (OpenBLAS or the built-in kernel).
 */
import { invalidateCompiledSteps } from '../capture'
import { bindingFor, NativeTensor } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { record, isGradEnabled } from '../autograd/tape'
import { checkTensor, fromHandle, Tensor } from '../tensor'

/** The GEMM implementations a build may contain: OpenBLAS (when found at build time) and the built-in kernel. */
export type GemmBackend = 'builtin' | 'openblas'

interface MatmulBinding {
  matmul(a: NativeTensor, b: NativeTensor): NativeTensor
  matmulBackward(g: NativeTensor, a: NativeTensor, b: NativeTensor, needA: boolean, needB: boolean): [NativeTensor | null, NativeTensor | null]
  linear(x: NativeTensor, weight: NativeTensor, bias: NativeTensor | null, activation?: LinearActivation): NativeTensor
  linearActivationBackward(
    g: NativeTensor,
    y: NativeTensor,
    x: NativeTensor,
    weight: NativeTensor,
    activation: LinearActivation,
    needX: boolean,
    needW: boolean,
    needBias: boolean,
  ): [NativeTensor | null, NativeTensor | null, NativeTensor | null]
  linearBackward(
    g: NativeTensor,
    x: NativeTensor,
    weight: NativeTensor,
    needX: boolean,
    needW: boolean,
    needBias: boolean,
  ): [NativeTensor | null, NativeTensor | null, NativeTensor | null]
  catLinear(xs: NativeTensor[], weight: NativeTensor, bias: NativeTensor | null): NativeTensor
  catLinearBackward(
    g: NativeTensor,
    xs: NativeTensor[],
    weight: NativeTensor,
    needXs: number[],
    needW: boolean,
    needBias: boolean,
  ): [(NativeTensor | null)[], NativeTensor | null, NativeTensor | null]
  setGemmBackend(name: string): void
  setMatmulPrecision(precision: string): void
  getMatmulPrecision(): MatmulPrecision
  getGemmBackend(): GemmBackend
}
const N = bindingFor<MatmulBinding>()

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`
const wrap = (h: NativeTensor | null): Tensor | null => (h ? fromHandle(h) : null)

function sameDtype(fn: string, what: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: ${what} have different dtypes (${a.dtype} and ${b.dtype}); convert one with .to({ dtype })`)
}

/** The broadcast of two batch shapes, or null when they do not broadcast. */
function broadcastBatch(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length)
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const da = a[i - (n - a.length)] ?? 1
    const db = b[i - (n - b.length)] ?? 1
    if (da !== db && da !== 1 && db !== 1) return null
    out.push(da === 1 ? db : da)
  }
  return out
}

/**
 * The matrix product with torch.matmul's rules: 1-D·1-D is a dot product (a 0-d tensor), a 1-D first operand
 * is a row vector and a 1-D second operand a column vector (the added dimension is removed from the result),
 * and the batch dimensions before the last two broadcast against each other.
 * @example matmul(randn([8, 3, 4]), randn([4, 5])) // shape [8, 3, 5]
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor('matmul', 'a', a)
  checkTensor('matmul', 'b', b)
  sameDtype('matmul', 'a and b', a, b)
  if (a.ndim === 0 || b.ndim === 0)
    throw new InnflowError('ERR_SHAPE', `matmul: both operands need at least one dimension, got a ${fmt(a.shape)} and b ${fmt(b.shape)}; use mul() for scalars`)
  const k = a.shape[a.ndim - 1]
  const kb = b.ndim === 1 ? b.shape[0] : b.shape[b.ndim - 2]
  if (k !== kb)
    throw new InnflowError('ERR_SHAPE', `matmul: a ${fmt(a.shape)} has ${k} columns but b ${fmt(b.shape)} has ${kb} rows`)
  const aBatch = a.shape.slice(0, Math.max(a.ndim - 2, 0))
  const bBatch = b.shape.slice(0, Math.max(b.ndim - 2, 0))
  if (!broadcastBatch(aBatch, bBatch))
    throw new InnflowError('ERR_SHAPE', `matmul: the batch dimensions of a ${fmt(a.shape)} and b ${fmt(b.shape)} do not broadcast (${fmt(aBatch)} and ${fmt(bBatch)})`)
  const y = fromHandle(N.matmul(a.handle, b.handle))
  if (isGradEnabled())
    record('matmul', [a, b], [y], (gs) => {
      const g = gs[0] as Tensor
      const [ga, gb] = N.matmulBackward(g.handle, a.handle, b.handle, a.requiresGrad, b.requiresGrad)
      return [wrap(ga), wrap(gb)]
    })
  return y
}

/** The activations `linear` can apply to its output in the same native call. */
export type LinearActivation = 'none' | 'relu' | 'tanh'

/** Options of {@link linear}. */
export interface LinearFunctionOptions {
  /**
   * Applied to x·weightᵀ + bias in the same native call ('none' by default): `linear(x, w, b, { activation: 'relu' })`
   * equals `relu(linear(x, w, b))` (bit for bit on the CPU) without a separate pass and tape node, and its
   * backward masks the gradient and computes the three products in one call. On the GPU the bias and relu run
   * in cuBLASLt's epilogue.
   */
  activation?: LinearActivation
}

const ACTIVATIONS: readonly LinearActivation[] = ['none', 'relu', 'tanh']

function activationOption(opts: unknown): LinearActivation {
  if (opts === undefined || opts === null) return 'none'
  if (typeof opts !== 'object' || Array.isArray(opts)) throw argumentError('linear', 'options', 'an object', opts)
  const a = (opts as { activation?: unknown }).activation
  if (a === undefined) return 'none'
  if (typeof a !== 'string' || !(ACTIVATIONS as readonly string[]).includes(a))
    throw argumentError('linear', 'activation', "'none', 'relu' or 'tanh'", a)
  return a as LinearActivation
}

/**
 * x·weightᵀ + bias, as torch.nn.functional.linear: x (..., in), weight (out, in), bias (out) → (..., out).
 * One GEMM with the bias added in place (no transposed copies); the backward is two GEMMs and a column sum.
 * With `{ activation: 'relu' | 'tanh' }` the activation is applied to the result in the same call (see
 * {@link LinearFunctionOptions}).
 * @example linear(x, w, b, { activation: 'relu' }) // relu(x·wᵀ + b)
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, options?: LinearFunctionOptions): Tensor {
  checkTensor('linear', 'x', x)
  checkTensor('linear', 'weight', weight)
  if (bias !== undefined && bias !== null) checkTensor('linear', 'bias', bias)
  const activation = activationOption(options)
  const b = bias ?? null
  sameDtype('linear', 'x and weight', x, weight)
  if (b) sameDtype('linear', 'x and bias', x, b)
  if (weight.ndim !== 2) throw new InnflowError('ERR_SHAPE', `linear: weight must be 2-D (out, in), got shape ${fmt(weight.shape)}`)
  if (x.ndim === 0) throw new InnflowError('ERR_SHAPE', `linear: x must have at least one dimension (..., in), got shape ${fmt(x.shape)}`)
  const [out, inFeatures] = weight.shape
  const features = x.shape[x.ndim - 1]
  if (features !== inFeatures)
    throw new InnflowError('ERR_SHAPE', `linear: x ${fmt(x.shape)} has ${features} features but weight ${fmt(weight.shape)} expects ${inFeatures}`)
  if (b && (b.ndim !== 1 || b.shape[0] !== out))
    throw new InnflowError('ERR_SHAPE', `linear: bias ${fmt(b.shape)} does not match weight ${fmt(weight.shape)} (expected [${out}])`)
  if (activation === 'none') {
    const y = fromHandle(N.linear(x.handle, weight.handle, b ? b.handle : null))
    if (isGradEnabled()) {
      const inputs = b ? [x, weight, b] : [x, weight]
      record('linear', inputs, [y], (gs) => {
        const g = gs[0] as Tensor
        const [gx, gw, gb] = N.linearBackward(g.handle, x.handle, weight.handle, x.requiresGrad, weight.requiresGrad, b !== null && b.requiresGrad)
        return b ? [wrap(gx), wrap(gw), wrap(gb)] : [wrap(gx), wrap(gw)]
      })
    }
    return y
  }
  const y = fromHandle(N.linear(x.handle, weight.handle, b ? b.handle : null, activation))
  if (isGradEnabled()) {
    const inputs = b ? [x, weight, b] : [x, weight]
    record(`linear_${activation}`, inputs, [y], (gs) => {
      const g = gs[0] as Tensor
      const [gx, gw, gb] = N.linearActivationBackward(
        g.handle,
        y.handle,
        x.handle,
        weight.handle,
        activation,
        x.requiresGrad,
        weight.requiresGrad,
        b !== null && b.requiresGrad,
      )
      return b ? [wrap(gx), wrap(gw), wrap(gb)] : [wrap(gx), wrap(gw)]
    })
  }
  return y
}

/**
 * linear over the concatenation of 2-D parts along dim 1, without making the concatenation:
 * `catLinear([x1, ..., xk], w, b)` equals `linear(cat([x1, ..., xk], 1), w, b)` up to the order of the sums
 * (each part xᵢ (B, nᵢ) meets its own column block of w (out, Σnᵢ) in one GEMM accumulated into the output).
 * The backward is one GEMM per part for each xᵢ, one per part writing its column block of w's gradient, and the
 * bias's column sum; one tape entry.
 * @example catLinear([x1, y2], w, b) // cat([x1, y2], 1)·wᵀ + b, shape (B, out)
 */
export function catLinear(xs: readonly Tensor[], weight: Tensor, bias?: Tensor | null): Tensor {
  if (!Array.isArray(xs)) throw argumentError('catLinear', 'xs', 'an array of tensors', xs)
  if (xs.length === 0) throw new InnflowError('ERR_ARGUMENT', 'catLinear: xs must hold at least one tensor')
  xs.forEach((x, i) => checkTensor('catLinear', `xs[${i}]`, x))
  checkTensor('catLinear', 'weight', weight)
  const b = bias ?? null
  if (b) checkTensor('catLinear', 'bias', b)
  xs.forEach((x, i) => sameDtype('catLinear', `xs[${i}] and weight`, x, weight))
  if (b) sameDtype('catLinear', 'bias and weight', b, weight)
  for (const [what, t] of [...xs.map((x, i): [string, Tensor] => [`xs[${i}]`, x]), ...(b ? [['bias', b] as [string, Tensor]] : [])])
    if (t.device !== weight.device)
      throw new InnflowError('ERR_DEVICE', `catLinear: ${what} is on ${t.device} but weight is on ${weight.device}; move one with .to({ device })`)
  if (weight.ndim !== 2) throw new InnflowError('ERR_SHAPE', `catLinear: weight must be 2-D (out, Σ in), got shape ${fmt(weight.shape)}`)
  const rows = xs[0].ndim === 2 ? xs[0].shape[0] : -1
  xs.forEach((x, i) => {
    if (x.ndim !== 2 || x.shape[0] !== rows)
      throw new InnflowError('ERR_SHAPE', `catLinear: every part must be 2-D (batch, n_i) with the batch of xs[0] ${fmt(xs[0].shape)}, got xs[${i}] ${fmt(x.shape)}`)
  })
  const features = xs.reduce((n, x) => n + x.shape[1], 0)
  const [out, inFeatures] = weight.shape
  if (features !== inFeatures)
    throw new InnflowError('ERR_SHAPE', `catLinear: the parts have ${features} features in all (${xs.map((x) => x.shape[1]).join(' + ')}) but weight ${fmt(weight.shape)} expects ${inFeatures}`)
  if (b && (b.ndim !== 1 || b.shape[0] !== out))
    throw new InnflowError('ERR_SHAPE', `catLinear: bias ${fmt(b.shape)} does not match weight ${fmt(weight.shape)} (expected [${out}])`)
  const parts = xs.slice()
  const y = fromHandle(N.catLinear(parts.map((x) => x.handle), weight.handle, b ? b.handle : null))
  if (isGradEnabled()) recordCatLinear(parts, weight, b, y)
  return y
}

/**
 * @internal Records catLinear's backward with `y` as its output without computing the product: invertible
 * backprop's rebuild (AllInOneBlock) already holds the block's output, and catLinear's gradients do not depend on
 * it. `y` must be a handle of its own (it receives the tape entry); the inputs are not checked again.
 */
export function recordCatLinear(xs: readonly Tensor[], weight: Tensor, bias: Tensor | null, y: Tensor): void {
  const parts = xs.slice()
  const inputs = bias ? [...parts, weight, bias] : [...parts, weight]
  record('catLinear', inputs, [y], (gs) => {
    const g = gs[0] as Tensor
    const [gxs, gw, gb] = N.catLinearBackward(
      g.handle,
      parts.map((x) => x.handle),
      weight.handle,
      parts.map((x) => (x.requiresGrad ? 1 : 0)),
      weight.requiresGrad,
      bias !== null && bias.requiresGrad,
    )
    const grads = [...gxs.map(wrap), wrap(gw)]
    return bias ? [...grads, wrap(gb)] : grads
  })
}

/**
 * Chooses the CPU GEMM: 'openblas' (the default when the addon was built with OpenBLAS) or 'builtin' (the
 * addon's own cache-blocked kernel; also chosen by INNFLOW_GEMM=builtin at load time). Throws ERR_ARGUMENT for
 * 'openblas' in a build without it.
 */
export function setGemmBackend(name: GemmBackend): void {
  if (name !== 'builtin' && name !== 'openblas') throw argumentError('setGemmBackend', 'name', "'builtin' or 'openblas'", name)
  N.setGemmBackend(name)
}

/** The arithmetic of float32 matrix products and convolutions (PyTorch's `torch.set_float32_matmul_precision`). */
export type MatmulPrecision = 'highest' | 'high' | 'medium'

/**
 * Sets the arithmetic of float32 GEMMs and convolutions on the GPU: 'highest' (float32, the default), 'high'
 * (TF32 tensor cores: 10-bit mantissas, float32 accumulation) or 'medium' (bfloat16 operands, float32
 * accumulation). float64 is never affected, and the CPU computes in float32 whatever is set.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  if (precision !== 'highest' && precision !== 'high' && precision !== 'medium')
    throw argumentError('setMatmulPrecision', 'precision', "'highest', 'high' or 'medium'", precision)
  if (precision !== N.getMatmulPrecision()) invalidateCompiledSteps() // CUDA graphs keep the math mode they were captured with
  N.setMatmulPrecision(precision)
}

/** The current float32 GEMM precision ('highest' unless changed). */
export function getMatmulPrecision(): MatmulPrecision {
  return N.getMatmulPrecision()
}

/** The CPU GEMM in use: 'openblas' or 'builtin'. */
export function getGemmBackend(): GemmBackend {
  return N.getGemmBackend()
}
