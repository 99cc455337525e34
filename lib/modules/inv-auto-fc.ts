/**
 * InvAutoFC (FrEIA.modules.InvAutoFC): the fully connected "invertible autoencoder" layer
 * (arxiv.org/abs/1802.06869). It is only APPROXIMATELY invertible: the inverse uses the transposed weight,
 *
 *   forward  y = x·Wᵀ + b          W (dimsOut, D), b (1, dimsOut)
 *   reverse  x = (y − b)·W
 *
 * which inverts the forward exactly only when W has orthonormal columns (WᵀW = I); training with a
 * reconstruction loss drives it there. The log-det is reported as 0 in both directions (FrEIA's choice: it
 * is exact only for an orthogonal W), with a warning (once per process) when it is asked for, as FrEIA warns.
 * The output size may differ from the input size (`dimsOut`). Keys: `weights`, `bias`.
 * Init: W = √(1/dimsOut)·N(0, 1), b = N(0, 1). (FrEIA also prints the two shapes; innflow does not.)
 */
import { argumentError, InnflowError } from '../errors'
import { linear, matmul } from '../ops'
import { randn, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link InvAutoFC} (FrEIA's keyword arguments in camelCase). */
export interface InvAutoFCOptions extends InvertibleModuleOptions {
  /** Number of output features (default: the input size). */
  dimsOut?: number | null
}

const warned = new Set<string>()
/** @internal FrEIA warns on every call with jac = true (Python shows it once per place); innflow once per class. */
export function warnLogDetIntractable(cls: string): void {
  if (warned.has(cls)) return
  warned.add(cls)
  process.emitWarning(
    `${cls}: invertible autoencoder layers do not have a tractable log-det-Jacobian; 0 is returned. ` +
      'It approaches 0 at convergence, but the value may be incorrect during training.',
  )
}

/**
 * Fully connected invertible-autoencoder layer: y = x·Wᵀ + b forward, x = (y − b)·W in reverse.
 * @example new InvAutoFC([[8]], { dimsOut: 8 })
 */
export class InvAutoFC extends InvertibleModule {
  /** Output size. */
  readonly dimsOut: number
  /** W, shape (dimsOut, D) (key `weights`). */
  readonly weights: Tensor
  /** b, shape (1, dimsOut) (key `bias`). */
  readonly bias: Tensor

  constructor(dimsIn: Dims[], opts: InvAutoFCOptions = {}) {
    super(dimsIn, opts)
    const fn = new.target.name
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${fn} can only use 1 input, got ${this.dimsIn.length}`)
    if (this.dimsIn[0].length !== 1)
      throw new InnflowError('ERR_SHAPE', `${fn} can only use flattened (1-D) input, got dims (${this.dimsIn[0].join(', ')})`)
    const d = this.dimsIn[0][0]
    const out = opts.dimsOut ?? d
    if (!Number.isInteger(out) || out < 1) throw argumentError(fn, 'options.dimsOut', 'a positive integer', opts.dimsOut)
    this.dimsOut = out
    this.weights = this.registerParameter('weights', randn([out, d]).mul(Math.sqrt(1 / out)))
    this.bias = this.registerParameter('bias', randn([1, out]))
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    this.checkInputs(x, rev ? [[this.dimsOut]] : this.dimsIn)
    this.checkConditions(c, x[0].shape[0])
    if (jac) warnLogDetIntractable(this.constructor.name)
    if (!rev) return [[linear(x[0], this.weights).add(this.bias)], 0]
    return [[matmul(x[0].sub(this.bias), this.weights)], 0]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name} can only use 1 input, got ${inputDims.length}`)
    if (inputDims[0].length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name} can only use flattened (1-D) input`)
    return [[this.dimsOut]]
  }
}
