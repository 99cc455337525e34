/**
 * The weight of an LU-parameterised invertible 1×1 convolution (Glow), native/cpu/lu_conv.cc:
 * W = P·L·(U + diag(sign·exp(logS))) or its inverse by substitution, with gradients into L, U and logS.
 */
import { bindingFor, NativeTensor } from '../binding'
import { isGradEnabled, record } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, Tensor } from '../tensor'

interface LuConvBinding {
  luConvWeight(P: NativeTensor, L: NativeTensor, U: NativeTensor, logS: NativeTensor, sign: NativeTensor, inverse: boolean): NativeTensor
  luConvWeightBackward(
    g: NativeTensor, P: NativeTensor, L: NativeTensor, U: NativeTensor, logS: NativeTensor, sign: NativeTensor, out: NativeTensor, inverse: boolean,
  ): [NativeTensor, NativeTensor, NativeTensor]
}
const N = bindingFor<LuConvBinding>()

/** Options of {@link luConvWeight}. */
export interface LuConvWeightOptions {
  /** Return W⁻¹ (by substitution through the triangular factors) instead of W (default false). */
  inverse?: boolean
}

/**
 * The weight of an LU-parameterised 1×1 convolution, W = P·L̃·Ũ with L̃ = I + strictly-lower(L) and
 * Ũ = strictly-upper(U) + diag(sign·exp(logS)), or its inverse Ũ⁻¹·L̃⁻¹·Pᵀ with `inverse: true`. P (n, n)
 * must be a permutation matrix and sign (n,) must hold ±1; L and U are (n, n) (the other triangles are
 * ignored), logS is (n,). Differentiable in L, U and logS (P and sign are constants).
 */
export function luConvWeight(P: Tensor, L: Tensor, U: Tensor, logS: Tensor, sign: Tensor, opts: LuConvWeightOptions = {}): Tensor {
  const fn = 'luConvWeight'
  const args: [string, unknown][] = [['P', P], ['L', L], ['U', U], ['logS', logS], ['sign', sign]]
  for (const [name, t] of args) void checkTensor(fn, name, t).handle // ERR_DISPOSED before shapes are judged
  if (opts === null || typeof opts !== 'object') throw argumentError(fn, 'opts', 'an options object { inverse? }', opts)
  const inverse = opts.inverse ?? false
  if (typeof inverse !== 'boolean') throw argumentError(fn, 'opts.inverse', 'a boolean', inverse)
  if (P.ndim !== 2 || P.shape[0] !== P.shape[1])
    throw new InnflowError('ERR_SHAPE', `${fn}: P must be a square matrix (n, n), got shape [${P.shape.join(', ')}]`)
  const n = P.shape[0]
  for (const [name, t, want] of [['L', L, [n, n]], ['U', U, [n, n]], ['logS', logS, [n]], ['sign', sign, [n]]] as [string, Tensor, number[]][]) {
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
      throw new InnflowError('ERR_SHAPE', `${fn}: ${name} must have shape [${want.join(', ')}] for P of shape [${n}, ${n}], got [${t.shape.join(', ')}]`)
    if (t.dtype !== P.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: ${name} is ${t.dtype} but P is ${P.dtype}; all factors must share one dtype`)
  }
  const out = fromHandle(N.luConvWeight(P.handle, L.handle, U.handle, logS.handle, sign.handle, inverse))
  if (isGradEnabled())
    record(fn, [L, U, logS], [out], (gs) => {
      const g = gs[0] as Tensor
      const [gL, gU, gS] = N.luConvWeightBackward(g.handle, P.handle, L.handle, U.handle, logS.handle, sign.handle, out.handle, inverse)
      return [fromHandle(gL), fromHandle(gU), fromHandle(gS)]
    })
  return out
}


/** A C×C 0/1 mask of the strictly lower (lower = true) or strictly upper triangle. */
