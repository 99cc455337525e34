/**
 * `nn.init`: in-place initialisers (torch.nn.init), drawing from innflow's seeded generator. Each writes new
 * values into the given tensor without recording anything on the autograd tape and returns the tensor.
 */
import { core } from '../binding'
import { noGrad } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { tidy } from '../scope'
import { checkTensor, full, rand, randn, Tensor } from '../tensor'

/** Nonlinearities known to {@link calculateGain} (PyTorch's names). */
export type Nonlinearity =
  | 'linear' | 'conv1d' | 'conv2d' | 'conv3d' | 'conv_transpose1d' | 'conv_transpose2d' | 'conv_transpose3d'
  | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu' | 'selu'

/** fan_in or fan_out (PyTorch's names). */
export type FanMode = 'fan_in' | 'fan_out'

function target(fn: string, t: unknown): Tensor {
  const x = checkTensor(fn, 'tensor', t)
  if (x.isDisposed) throw new InnflowError('ERR_DISPOSED', `${fn}: tensor was disposed`)
  return x
}

function finite(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw argumentError(fn, name, 'a finite number', v)
  return v
}

/** Overwrites t's values with those of make() (computed without the tape; temporaries freed). */
function fill(t: Tensor, make: () => Tensor): Tensor {
  noGrad(() =>
    tidy(() => {
      core.copyInto(t.handle, make().handle)
    }),
  )
  return t
}

/** Fills t with U(a, b). */
export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  const x = target('uniform_', t)
  finite('uniform_', 'a', a)
  finite('uniform_', 'b', b)
  if (a > b) throw new InnflowError('ERR_ARGUMENT', `uniform_: a (${a}) must not exceed b (${b})`)
  return fill(x, () => rand([...x.shape], { dtype: x.dtype, device: x.device }).mul(b - a).add(a))
}

/** Fills t with N(mean, std²). */
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  const x = target('normal_', t)
  finite('normal_', 'mean', mean)
  if (finite('normal_', 'std', std) < 0) throw argumentError('normal_', 'std', 'a non-negative number', std)
  return fill(x, () => randn([...x.shape], { dtype: x.dtype, device: x.device }).mul(std).add(mean))
}

/** Fills t with `value`. */
export function constant_(t: Tensor, value: number): Tensor {
  const x = target('constant_', t)
  if (typeof value !== 'number') throw argumentError('constant_', 'value', 'a number', value)
  return fill(x, () => full([...x.shape], value, { dtype: x.dtype, device: x.device }))
}
/** Fills t with zeros. */
export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0)
}
/** Fills t with ones. */
export function ones_(t: Tensor): Tensor {
  return constant_(t, 1)
}

/**
 * PyTorch's fan computation: for a weight of shape (out, in, *kernel), fanIn = in·∏kernel and
 * fanOut = out·∏kernel. Needs at least 2 dimensions.
 */
export function calculateFanInAndFanOut(t: Tensor): [number, number] {
  const x = target('calculateFanInAndFanOut', t)
  if (x.ndim < 2)
    throw new InnflowError('ERR_SHAPE', `fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions (shape [${x.shape.join(', ')}])`)
  const receptive = x.shape.slice(2).reduce((a, b) => a * b, 1)
  return [x.shape[1] * receptive, x.shape[0] * receptive]
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv1d': case 'conv2d': case 'conv3d':
    case 'conv_transpose1d': case 'conv_transpose2d': case 'conv_transpose3d': case 'sigmoid':
      return 1
    case 'tanh':
      return 5 / 3
    case 'relu':
      return Math.SQRT2
    case 'leaky_relu': {
      const slope = param ?? 0.01
      finite('calculateGain', 'param', slope)
      return Math.sqrt(2 / (1 + slope * slope))
    }
    case 'selu':
      return 3 / 4
    default:
      throw argumentError('calculateGain', 'nonlinearity', "one of 'linear', 'conv2d', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'selu'", nonlinearity)
  }
}

/** Xavier/Glorot uniform: U(−a, a) with a = gain·√(6 / (fanIn + fanOut)). */
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t)
  const std = finite('xavierUniform_', 'gain', gain) * Math.sqrt(2 / (fanIn + fanOut))
  const a = Math.sqrt(3) * std
  return uniform_(t, -a, a)
}

/** Xavier/Glorot normal: N(0, std²) with std = gain·√(2 / (fanIn + fanOut)). */
export function xavierNormal_(t: Tensor, gain = 1): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t)
  const std = finite('xavierNormal_', 'gain', gain) * Math.sqrt(2 / (fanIn + fanOut))
  return normal_(t, 0, std)
}

/** Options of the Kaiming initialisers. */
export interface KaimingOptions {
  /** Negative slope of the following leaky ReLU (default 0). */
  a?: number
  /** 'fan_in' (default) keeps the forward variance, 'fan_out' the backward one. */
  mode?: FanMode
  /** Default 'leaky_relu'. */
  nonlinearity?: Nonlinearity
}

function kaimingStd(fn: string, t: Tensor, a: number | KaimingOptions | undefined, opts: KaimingOptions | undefined): number {
  const o: KaimingOptions = typeof a === 'object' && a !== null ? a : { ...opts, a: a ?? opts?.a }
  const slope = finite(fn, 'a', o.a ?? 0)
  const mode = o.mode ?? 'fan_in'
  if (mode !== 'fan_in' && mode !== 'fan_out') throw argumentError(fn, 'mode', "'fan_in' or 'fan_out'", mode)
  const [fanIn, fanOut] = calculateFanInAndFanOut(t)
  const fan = mode === 'fan_in' ? fanIn : fanOut
  return calculateGain(o.nonlinearity ?? 'leaky_relu', slope) / Math.sqrt(fan)
}

/**
 * Kaiming/He uniform: U(−b, b) with b = gain·√(3 / fan) (torch.nn.init.kaiming_uniform_). With a = √5 this
 * is PyTorch's default for Linear and Conv weights, b = 1/√fanIn. Call as `kaimingUniform_(t, a, { mode,
 * nonlinearity })` or `kaimingUniform_(t, { a, mode, nonlinearity })`.
 */
export function kaimingUniform_(t: Tensor, a?: number | KaimingOptions, opts?: KaimingOptions): Tensor {
  const x = target('kaimingUniform_', t)
  if (x.size === 0) return x // PyTorch warns and leaves an empty tensor alone
  const bound = Math.sqrt(3) * kaimingStd('kaimingUniform_', x, a, opts)
  return uniform_(x, -bound, bound)
}

/** Kaiming/He normal: N(0, std²) with std = gain / √fan (torch.nn.init.kaiming_normal_). */
export function kaimingNormal_(t: Tensor, a?: number | KaimingOptions, opts?: KaimingOptions): Tensor {
  const x = target('kaimingNormal_', t)
  if (x.size === 0) return x
  return normal_(x, 0, kaimingStd('kaimingNormal_', x, a, opts))
}
