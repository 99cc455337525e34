/**
 * The Gaussian negative log-likelihood of a normalizing flow (native/cpu/loss.cc, cuda/loss.cu): the mean
 * training loss in one native pass and a handwritten backward, instead of square, sum, mul, sub, add, mean, neg.
 */
import { bindingFor, NativeTensor } from '../binding'
import { record } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, Tensor } from '../tensor'

interface LossBinding {
  gaussianNll(z: NativeTensor, logJacDet: NativeTensor | null): NativeTensor
  gaussianNllBackward(g: NativeTensor, z: NativeTensor, needZ: boolean, needLogJacDet: boolean): [NativeTensor | null, NativeTensor | null]
}
const N = bindingFor<LossBinding>()

/**
 * The mean negative log-likelihood (nats) of latents z under a standard normal, given the flow's
 * log-Jacobian-determinant:
 *   loss = (1/B)·Σ_b (½‖z_b‖² + (D/2)·log 2π − logJacDet_b),   D = elements per sample
 * z: (B, ...), logJacDet: (B,) of z's dtype and device, or null (the term is left out: the further latents of a
 * flow with several outputs). Returns a 0-d tensor. Differentiable in z (gz = g·z/B) and logJacDet
 * (gljd = −g/B). Each sample's Σ z² is accumulated in double, then the samples in order (float32 too).
 * @example const [z, ljd] = flow.forward(x); const loss = ops.gaussianNll(z as Tensor, ljd as Tensor)
 */
export function gaussianNll(z: Tensor, logJacDet: Tensor | null): Tensor {
  const fn = 'gaussianNll'
  void checkTensor(fn, 'z', z).handle
  if (logJacDet === undefined) throw argumentError(fn, 'logJacDet', 'a Tensor of shape (B,) or null', logJacDet)
  if (logJacDet !== null) void checkTensor(fn, 'logJacDet', logJacDet).handle
  if (z.ndim < 1) throw new InnflowError('ERR_SHAPE', `${fn}: z must have shape (B, ...), got a 0-d tensor`)
  if (logJacDet !== null) {
    if (logJacDet.ndim !== 1 || logJacDet.shape[0] !== z.shape[0])
      throw new InnflowError('ERR_SHAPE', `${fn}: logJacDet must have shape (${z.shape[0]}) for z of shape (${z.shape.join(', ')}), got (${logJacDet.shape.join(', ')})`)
    if (logJacDet.dtype !== z.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: dtypes differ (z is ${z.dtype}, logJacDet is ${logJacDet.dtype})`)
    if (logJacDet.device !== z.device) throw new InnflowError('ERR_DEVICE', `${fn}: z is on ${z.device} but logJacDet is on ${logJacDet.device}`)
  }
  const loss = fromHandle(N.gaussianNll(z.handle, logJacDet ? logJacDet.handle : null))
  const inputs = logJacDet ? [z, logJacDet] : [z]
  record(fn, inputs, [loss], ([g]) => {
    if (!g) return inputs.map(() => null)
    const needL = !!logJacDet && logJacDet.requiresGrad
    const [gz, gl] = N.gaussianNllBackward(g.handle, z.handle, z.requiresGrad, needL)
    const grads: (Tensor | null)[] = [gz && fromHandle(gz)]
    if (logJacDet) grads.push(gl && fromHandle(gl))
    return grads
  })
  return loss
}
