/**
 * InvAutoConv2D (FrEIA.modules.InvAutoConv2D): the convolutional "invertible autoencoder" layer
 * (arxiv.org/abs/1802.06869). Only APPROXIMATELY invertible: the inverse is the transposed convolution with
 * the same kernel,
 *
 *   forward  y = conv2d(x, K, padding) + b            K (C_out, C, k, k) without bias, b (1, C_out, 1, 1)
 *   reverse  x = conv_transpose2d(y − b, K, padding)
 *
 * which is the adjoint of the forward convolution, so the round trip is exact only when the convolution is
 * an orthogonal operator (e.g. a 1×1 kernel holding an orthogonal C×C matrix). The log-det is reported as 0
 * (with a warning once per process, as FrEIA warns). Keys: `bias`, `conv2d.weight` (an nn.Conv2d child
 * without bias, PyTorch's default init); b starts as N(0, 1).
 *
 * `dimsOut` (C_out, H_out, W_out) defaults to the input dims. FrEIA leaves it to the user to make H_out, W_out
 * match what the convolution produces; innflow checks it at construction (ERR_SHAPE) rather than letting the
 * graph's shapes silently disagree with the tensors.
 */
import { argumentError, InnflowError } from '../errors'
import { Conv2d } from '../nn'
import { conv2d } from '../ops'
import { randn, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { warnLogDetIntractable } from './inv-auto-fc'

/** Options of {@link InvAutoConv2D} (FrEIA's keyword arguments in camelCase). */
export interface InvAutoConv2DOptions extends InvertibleModuleOptions {
  /** Output shape (C_out, H_out, W_out); default the input shape. H_out, W_out must be what the convolution gives. */
  dimsOut?: Dims | null
  /** Kernel size, one number or [kH, kW] (default 3). */
  kernelSize?: number | [number, number]
  /** Zero padding, one number or [pH, pW] (default 1; kernelSize // 2 keeps the image size). */
  padding?: number | [number, number]
}

function pair(fn: string, name: string, v: unknown, dflt: number, min: number): [number, number] {
  if (v === undefined) return [dflt, dflt]
  const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= min
  if (ok(v)) return [v, v]
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]]
  throw argumentError(fn, `options.${name}`, `an integer >= ${min} or a pair [height, width] of them`, v)
}

/**
 * The transposed convolution conv_transpose2d(y, weight, padding) with stride 1 (the adjoint of
 * conv2d(·, weight, padding)), written as a convolution with the spatially flipped kernel whose in/out channels
 * are swapped, padded by k − 1 − p (a negative amount crops instead). y (N, C_out, H, W), weight
 * (C_out, C_in, kH, kW) → (N, C_in, H + kH − 1 − 2pH, W + kW − 1 − 2pW). Differentiable (composed of ops).
 */
export function convTranspose2d(y: Tensor, weight: Tensor, padding: [number, number]): Tensor {
  const [, , kh, kw] = weight.shape
  const rev = (n: number): number[] => Array.from({ length: n }, (_, i) => n - 1 - i)
  const flipped = weight.indexSelect(2, rev(kh)).indexSelect(3, rev(kw)).transpose(0, 1)
  const qh = kh - 1 - padding[0]
  const qw = kw - 1 - padding[1]
  let input = y
  if (qh < 0) input = input.narrow(2, -qh, input.shape[2] + 2 * qh)
  if (qw < 0) input = input.narrow(3, -qw, input.shape[3] + 2 * qw)
  return conv2d(input, flipped, null, { padding: [Math.max(qh, 0), Math.max(qw, 0)] })
}

/**
 * Convolutional invertible-autoencoder layer: y = conv(x, K) + b forward, x = conv_transpose(y − b, K) in reverse.
 * @example new InvAutoConv2D([[4, 8, 8]], { kernelSize: 3, padding: 1 })
 */
export class InvAutoConv2D extends InvertibleModule {
  /** Output shape (C_out, H_out, W_out). */
  readonly dimsOut: number[]
  readonly kernelSize: [number, number]
  readonly padding: [number, number]
  /** The convolution (key prefix `conv2d.`), without bias. */
  readonly conv2d: Conv2d
  /** b, shape (1, C_out, 1, 1) (key `bias`). */
  readonly bias: Tensor

  constructor(dimsIn: Dims[], opts: InvAutoConv2DOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    const d = this.dimsIn[0]
    if (d.length !== 3) throw new InnflowError('ERR_SHAPE', `${fn} can only use image input (C, H, W), got dims (${d.join(', ')})`)
    this.kernelSize = pair(fn, 'kernelSize', opts.kernelSize, 3, 1)
    this.padding = pair(fn, 'padding', opts.padding, 1, 0)
    const out = opts.dimsOut ?? d
    if (!Array.isArray(out) || out.length !== 3 || !out.every((v) => Number.isInteger(v) && v > 0))
      throw argumentError(fn, 'options.dimsOut', 'a shape (C_out, H_out, W_out) of positive integers', opts.dimsOut)
    const hOut = d[1] + 2 * this.padding[0] - this.kernelSize[0] + 1
    const wOut = d[2] + 2 * this.padding[1] - this.kernelSize[1] + 1
    if (out[1] !== hOut || out[2] !== wOut)
      throw new InnflowError(
        'ERR_SHAPE',
        `${fn}: dimsOut (${out.join(', ')}) does not match the convolution's output (${out[0]}, ${hOut}, ${wOut}) for input (${d.join(', ')}), ` +
          `kernelSize [${this.kernelSize.join(', ')}] and padding [${this.padding.join(', ')}]`,
      )
    this.dimsOut = [...out]
    this.conv2d = this.registerModule('conv2d', new Conv2d(d[0], out[0], this.kernelSize, { padding: this.padding, bias: false }))
    this.bias = this.registerParameter('bias', randn([1, out[0], 1, 1]))
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [this.dimsOut] : this.dimsIn)
    this.checkConditions(c, x[0].shape[0])
    if (jac) warnLogDetIntractable(this.constructor.name)
    if (!rev) return [[this.conv2d.forward(x[0]).add(this.bias)], 0]
    return [[convTranspose2d(x[0].sub(this.bias), this.conv2d.weight, this.padding)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    if (inputDims[0].length !== 3) throw new InnflowError('ERR_SHAPE', `${this.constructor.name} can only use image input (C, H, W)`)
    return [[...this.dimsOut]]
  }
}
