/** 2-D convolution (native/cpu/conv.cc: im2col + GEMM, with a native backward for x, weight and bias). */
import { bindingFor, NativeTensor } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { record, isGradEnabled } from '../autograd/tape'
import { checkTensor, fromHandle, Tensor } from '../tensor'

/** Options of {@link conv2d}: one number for both spatial dimensions, or [height, width]. */
export interface Conv2dOptions {
  stride?: number | [number, number]
  padding?: number | [number, number]
}

interface ConvBinding {
  conv2d(x: NativeTensor, weight: NativeTensor, bias: NativeTensor | null, strideH: number, strideW: number, padH: number, padW: number): NativeTensor
  conv2dBackward(
    g: NativeTensor,
    x: NativeTensor,
    weight: NativeTensor,
    strideH: number,
    strideW: number,
    padH: number,
    padW: number,
    needX: boolean,
    needW: boolean,
    needBias: boolean,
  ): [NativeTensor | null, NativeTensor | null, NativeTensor | null]
}
const N = bindingFor<ConvBinding>()

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`
const wrap = (h: NativeTensor | null): Tensor | null => (h ? fromHandle(h) : null)

function pair(name: string, value: unknown, fallback: number, min: number): [number, number] {
  if (value === undefined) return [fallback, fallback]
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min
  const what = min > 0 ? 'a positive integer' : 'a non-negative integer'
  if (ok(value)) return [value, value]
  if (Array.isArray(value) && value.length === 2 && ok(value[0]) && ok(value[1])) return [value[0], value[1]]
  throw argumentError('conv2d', `opts.${name}`, `${what} or a pair [height, width] of them`, value)
}

/**
 * Cross-correlation of x (N, C, H, W) with weight (O, C, KH, KW), plus bias (O), as
 * torch.nn.functional.conv2d: the result is (N, O, HO, WO) with HO = ⌊(H + 2·padding − KH) / stride⌋ + 1.
 * @example conv2d(x, w, b, { stride: 2, padding: 1 })
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts?: Conv2dOptions): Tensor {
  checkTensor('conv2d', 'x', x)
  checkTensor('conv2d', 'weight', weight)
  if (bias !== undefined && bias !== null) checkTensor('conv2d', 'bias', bias)
  const b = bias ?? null
  if (opts !== undefined && (opts === null || typeof opts !== 'object' || Array.isArray(opts)))
    throw argumentError('conv2d', 'opts', 'an options object { stride?, padding? }', opts)
  const [sh, sw] = pair('stride', opts?.stride, 1, 1)
  const [ph, pw] = pair('padding', opts?.padding, 0, 0)
  if (weight.dtype !== x.dtype || (b && b.dtype !== x.dtype))
    throw new InnflowError('ERR_DTYPE', `conv2d: x, weight and bias must have the same dtype (got ${x.dtype}, ${weight.dtype}${b ? ', ' + b.dtype : ''})`)
  if (x.ndim !== 4) throw new InnflowError('ERR_SHAPE', `conv2d: x must be 4-D (N, C, H, W), got shape ${fmt(x.shape)}`)
  if (weight.ndim !== 4) throw new InnflowError('ERR_SHAPE', `conv2d: weight must be 4-D (outChannels, inChannels, KH, KW), got shape ${fmt(weight.shape)}`)
  const [, c, h, w] = x.shape
  const [o, wc, kh, kw] = weight.shape
  if (c !== wc) throw new InnflowError('ERR_SHAPE', `conv2d: x ${fmt(x.shape)} has ${c} channels but weight ${fmt(weight.shape)} expects ${wc}`)
  if (kh < 1 || kw < 1) throw new InnflowError('ERR_SHAPE', `conv2d: weight ${fmt(weight.shape)} has an empty kernel`)
  if (b && (b.ndim !== 1 || b.shape[0] !== o))
    throw new InnflowError('ERR_SHAPE', `conv2d: bias ${fmt(b.shape)} does not match weight ${fmt(weight.shape)} (expected [${o}])`)
  if (h + 2 * ph < kh || w + 2 * pw < kw)
    throw new InnflowError(
      'ERR_SHAPE',
      `conv2d: x ${fmt(x.shape)} padded by [${ph}, ${pw}] is ${h + 2 * ph}x${w + 2 * pw}, smaller than the ${kh}x${kw} kernel of weight ${fmt(weight.shape)}`,
    )
  const y = fromHandle(N.conv2d(x.handle, weight.handle, b ? b.handle : null, sh, sw, ph, pw))
  if (isGradEnabled()) {
    const inputs = b ? [x, weight, b] : [x, weight]
    record('conv2d', inputs, [y], (gs) => {
      const g = gs[0] as Tensor
      const [gx, gw, gb] = N.conv2dBackward(g.handle, x.handle, weight.handle, sh, sw, ph, pw, x.requiresGrad, weight.requiresGrad, b !== null && b.requiresGrad)
      return b ? [wrap(gx), wrap(gw), wrap(gb)] : [wrap(gx), wrap(gw)]
    })
  }
  return y
}
