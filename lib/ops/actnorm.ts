/**
 * ActNorm's per-channel affine map with its log-determinant (native/cpu/actnorm.cc, cuda/actnorm.cu): one native
 * op per direction and a handwritten backward, instead of the exp, sub, div (or mul, add) and sum chain.
 */
import { bindingFor, NativeTensor } from '../binding'
import { record } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, Tensor } from '../tensor'

interface ActNormBinding {
  actnorm(x: NativeTensor, loc: NativeTensor, logScale: NativeTensor, rev: boolean): [NativeTensor, NativeTensor]
  actnormBackward(
    gy: NativeTensor | null, gLogDet: NativeTensor | null, x: NativeTensor, loc: NativeTensor, logScale: NativeTensor, rev: boolean,
    needX: boolean, needLoc: boolean, needLogScale: boolean,
  ): [NativeTensor | null, NativeTensor | null, NativeTensor | null]
}
const N = bindingFor<ActNormBinding>()

/**
 * ActNorm's map (FrEIA's ActNorm, Kingma & Dhariwal 2018) and its log-Jacobian-determinant per sample:
 *   forward  y = (x − loc) / exp(logScale),   logJacDet = −nPix·Σ_c logScale_c
 *   rev      y = x·exp(logScale) + loc,       logJacDet = +nPix·Σ_c logScale_c
 * x: (B, C, *spatial); loc and logScale: one value per channel, of shape (1, C, 1, ...) (x's rank) or (C); nPix
 * is the spatial size. Returns [y, logJacDet] with logJacDet of shape (B,). Differentiable in x, loc and
 * logScale (one native backward pass; the parameter gradients are sums over batch and spatial positions,
 * accumulated in double). float64 results equal those of the op chain written with the elementwise ops.
 */
export function actnorm(x: Tensor, loc: Tensor, logScale: Tensor, rev = false): [Tensor, Tensor] {
  const fn = 'actnorm'
  void checkTensor(fn, 'x', x).handle // ERR_DISPOSED before anything else is judged
  void checkTensor(fn, 'loc', loc).handle
  void checkTensor(fn, 'logScale', logScale).handle
  if (typeof rev !== 'boolean') throw argumentError(fn, 'rev', 'a boolean', rev)
  if (x.ndim < 2) throw new InnflowError('ERR_SHAPE', `${fn}: x must have shape (B, C, ...), got (${x.shape.join(', ')})`)
  for (const [name, t] of [['loc', loc], ['logScale', logScale]] as [string, Tensor][]) {
    if (t.dtype !== x.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: dtypes differ (x is ${x.dtype}, ${name} is ${t.dtype})`)
    if (t.device !== x.device) throw new InnflowError('ERR_DEVICE', `${fn}: x is on ${x.device} but ${name} is on ${t.device}`)
  }
  const [yh, lh] = N.actnorm(x.handle, loc.handle, logScale.handle, rev)
  const y = fromHandle(yh)
  const logDet = fromHandle(lh)
  record(fn, [x, loc, logScale], [y, logDet], ([gy, gl]) => {
    if (!gy && !gl) return [null, null, null]
    const [gx, gloc, gls] = N.actnormBackward(
      gy ? gy.handle : null, gl ? gl.handle : null, x.handle, loc.handle, logScale.handle, rev,
      x.requiresGrad && !!gy, loc.requiresGrad && !!gy, logScale.requiresGrad,
    )
    return [gx && fromHandle(gx), gloc && fromHandle(gloc), gls && fromHandle(gls)]
  })
  return [y, logDet]
}
