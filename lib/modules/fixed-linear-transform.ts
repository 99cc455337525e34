/**
 * FixedLinearTransform: y = M·x + b per sample for 1-D inputs, with a fixed invertible d×d matrix M and an
 * optional offset b (FrEIA's `FrEIA.modules.FixedLinearTransform`). Reverse x = M⁻¹·(y − b).
 * log|det J| = ln|det M| for every sample (negated in reverse). Nothing is trained.
 *
 * Buffers with FrEIA's names and layouts (FrEIA keeps them as non-trainable parameters): `M` holds Mᵀ (the
 * batch is multiplied as rows, x·Mᵀ), `M_inv` holds (Mᵀ)⁻¹, `b` is (1, d) and exists only when b was given
 * (FrEIA then uses the number 0), `logDetM` is the 0-d ln|det M|. The matrices are stored in the default dtype.
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { noGrad } from '../autograd/tape'
import { tidy } from '../scope'
import { slogdet, inverse } from '../ops/linalg'
import { tensor, Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link FixedLinearTransform} (FrEIA's keyword arguments). */
export interface FixedLinearTransformOptions extends InvertibleModuleOptions {
  /** The invertible d×d matrix M (required): a Tensor or nested arrays of numbers. y = M·x + b. */
  M?: Tensor | number[][]
  /** Optional offset of length d: a Tensor of shape (d) or (1, d), or an array of numbers. */
  b?: Tensor | number[] | null
}

/** @internal A d×d matrix option (Tensor or nested arrays) as a tensor of the default dtype. */
export function matrixOption(name: string, key: string, value: unknown, d: number): Tensor {
  if (value instanceof Tensor || (value !== null && typeof value === 'object' && (value as { __isInnflowTensor?: boolean }).__isInnflowTensor)) {
    const t = value as Tensor
    if (t.isDisposed) throw new InnflowError('ERR_DISPOSED', `${name}: the tensor given as ${key} was disposed`)
    if (t.ndim !== 2 || t.shape[0] !== d || t.shape[1] !== d)
      throw new InnflowError('ERR_SHAPE', `${name}: ${key} must be a ${d}×${d} matrix (the input has ${d} channels), got shape [${t.shape.join(', ')}]`)
    return t.dtype === getDefaultDtype() ? t.detach() : t.detach().to({ dtype: getDefaultDtype() })
  }
  if (!Array.isArray(value) || value.length !== d || !value.every((row) => Array.isArray(row) && row.length === d && row.every((v) => typeof v === 'number' && Number.isFinite(v))))
    throw argumentError(name, key, `a ${d}×${d} matrix (a Tensor or ${d} arrays of ${d} finite numbers)`, value)
  return tensor((value as number[][]).flat(), [d, d], { dtype: getDefaultDtype() })
}

/** @internal Mᵀ, (Mᵀ)⁻¹ and ln|det M| of an invertible matrix (ERR_ARGUMENT for a singular one). */
export function fixedMatrices(name: string, M: Tensor): { Mt: Tensor; MtInv: Tensor; logDet: Tensor } {
  return tidy(() =>
    noGrad(() => {
      const { sign, logabsdet } = slogdet(M)
      if (sign.item() === 0 || !Number.isFinite(logabsdet.item())) throw new InnflowError('ERR_ARGUMENT', `${name}: M must be invertible, but it is singular`)
      const Mt = M.t()
      return { Mt, MtInv: inverse(Mt), logDet: logabsdet }
    }),
  )
}

/**
 * A fixed affine map y = M·x + b of 1-D inputs.
 * @example
 * inn.append(modules.FixedLinearTransform, { M: [[2, 0.3], [0, 1.5]], b: [0.1, -0.2] })
 */
export class FixedLinearTransform extends InvertibleModule {
  /** Mᵀ (buffer `M`). */
  readonly M: Tensor
  /** (Mᵀ)⁻¹ (buffer `M_inv`). */
  readonly MInv: Tensor
  /** The offset as (1, d) (buffer `b`), or null when none was given. */
  readonly b: Tensor | null
  /** ln|det M|, 0-d (buffer `logDetM`). */
  readonly logDetM: Tensor

  constructor(dimsIn: Dims[], opts: FixedLinearTransformOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['M', 'b'])
    if (this.dimsIn.length !== 1 || this.dimsIn[0].length !== 1)
      throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one 1-D input (d,), got ${this.dimsIn.map(dimsString).join(', ')}`)
    const d = this.dimsIn[0][0]
    if (o.M === undefined || o.M === null) throw new InnflowError('ERR_ARGUMENT', `${name}: need to specify the M option, the matrix to be multiplied`)
    const { Mt, MtInv, logDet } = tidy(() => fixedMatrices(name, matrixOption(name, 'M', o.M, d)))
    this.M = this.registerBuffer('M', Mt)
    this.MInv = this.registerBuffer('M_inv', MtInv)
    this.b = o.b === undefined || o.b === null ? null : this.registerBuffer('b', vectorOption(name, o.b, d))
    this.logDetM = this.registerBuffer('logDetM', logDet)
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const batch = x[0].shape[0]
    const j = this.logDetM.expand([batch])
    if (!rev) {
      const y = x[0].matmul(this.M)
      return [[this.b ? y.add(this.b) : y], j]
    }
    const centred = this.b ? x[0].sub(this.b) : x[0]
    return [[centred.matmul(this.MInv)], j.neg()]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: can only use 1 input, got ${inputDims.length}`)
    return [[...inputDims[0]]]
  }
}

function vectorOption(name: string, value: unknown, d: number): Tensor {
  if (value instanceof Tensor || (value !== null && typeof value === 'object' && (value as { __isInnflowTensor?: boolean }).__isInnflowTensor)) {
    const t = value as Tensor
    if (t.isDisposed) throw new InnflowError('ERR_DISPOSED', `${name}: the tensor given as b was disposed`)
    if (!((t.ndim === 1 && t.shape[0] === d) || (t.ndim === 2 && t.shape[0] === 1 && t.shape[1] === d)))
      throw new InnflowError('ERR_SHAPE', `${name}: b must have shape [${d}] or [1, ${d}], got [${t.shape.join(', ')}]`)
    // a copy: loading a state dict later writes into this buffer, never into the caller's tensor
    return tidy(() => noGrad(() => t.reshape([1, d]).to({ dtype: getDefaultDtype() }).clone()))
  }
  if (!Array.isArray(value) || value.length !== d || !value.every((v) => typeof v === 'number' && Number.isFinite(v)))
    throw argumentError(name, 'b', `a vector of ${d} finite numbers (a Tensor or an array)`, value)
  return tensor(value as number[], [1, d], { dtype: getDefaultDtype() })
}
