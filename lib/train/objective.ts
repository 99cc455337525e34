/**
 * The maximum-likelihood objective of a normalizing flow with a standard normal latent, shared by
 * {@link train} and `plot.densityMap`:
 *   log p(x) = log N(z; 0, I) + log|det ∂z/∂x|,  z = f(x),
 * and the training loss is the mean negative log-likelihood over the batch, in nats.
 */
import { StandardNormal } from '../distributions'
import { argumentError, InnflowError } from '../errors'
import { isInvertibleModule } from '../framework/common'
import { gaussianNll } from '../ops/loss'
import { Tensor } from '../tensor'

/**
 * A flow as train() and plot.densityMap() call it: a SequenceINN, a GraphINN, any InvertibleModule (called
 * in the module form forward([x], c, false, true)), or any object whose `forward(x, { c })` returns
 * `[z, logJacDet]`.
 */
export interface FlowLike {
  forward(x: Tensor, opts?: { c?: Tensor[] }): readonly [Tensor | Tensor[], Tensor | number]
}

/** True when `flow` can be run by {@link runFlow}. */
export function isFlowLike(flow: unknown): flow is FlowLike {
  return flow !== null && typeof flow === 'object' && typeof (flow as { forward?: unknown }).forward === 'function'
}

/** Runs `flow` forward on x (with conditions c) and returns the latent outputs as an array and the log-det. */
export function runFlow(fn: string, flow: FlowLike, x: Tensor, c: Tensor[]): [Tensor[], Tensor | number] {
  let out: readonly [unknown, unknown]
  if (isInvertibleModule(flow)) out = flow.forward([x], c, false, true)
  else out = flow.forward(x, c.length ? { c } : undefined)
  if (!Array.isArray(out) || out.length !== 2)
    throw new InnflowError('ERR_ARGUMENT', `${fn}: flow.forward must return [z, logJacDet], got ${Array.isArray(out) ? `an array of ${out.length}` : typeof out}`)
  const [z, logJacDet] = out
  const zs = Array.isArray(z) ? z : [z]
  for (const t of zs) if (!(t instanceof Tensor)) throw argumentError(fn, 'the z returned by flow.forward', 'a Tensor or an array of Tensors', t)
  if (!(logJacDet instanceof Tensor) && typeof logJacDet !== 'number')
    throw argumentError(fn, 'the logJacDet returned by flow.forward', 'a Tensor or a number', logJacDet)
  return [zs as Tensor[], logJacDet]
}

const latents = new Map<string, StandardNormal>()

/** The standard normal over z's non-batch dimensions (cached per event shape). */
function latentFor(z: Tensor): StandardNormal {
  const key = z.shape.slice(1).join(',')
  let d = latents.get(key)
  if (!d) latents.set(key, (d = new StandardNormal(...z.shape.slice(1))))
  return d
}

/**
 * log p(x) per sample, shape (batch,): the standard normal log-density of the latent outputs (summed over
 * all of them when the flow has several) plus the log-Jacobian-determinant. Differentiable.
 */
export function logLikelihood(z: Tensor | Tensor[], logJacDet: Tensor | number): Tensor {
  const zs = Array.isArray(z) ? z : [z]
  if (zs.length === 0) throw new InnflowError('ERR_ARGUMENT', 'logLikelihood: z is an empty array')
  let logp = latentFor(zs[0]).logProb(zs[0])
  for (let i = 1; i < zs.length; i++) logp = logp.add(latentFor(zs[i]).logProb(zs[i]))
  return logp.add(logJacDet)
}

/**
 * The training loss of a flow with a standard normal latent: the mean negative log-likelihood over the
 * batch in nats, −mean(log N(z; 0, I) + logJacDet) = mean(½‖z‖² − logJacDet) + (D/2)·log 2π (a 0-d tensor).
 * @example const [z, logJacDet] = flow.forward(x); const loss = nllLoss(z, logJacDet)
 */
export function nllLoss(z: Tensor | Tensor[], logJacDet: Tensor | number): Tensor {
  const zs = Array.isArray(z) ? z : [z]
  if (fusable(zs, logJacDet)) {
    // one native pass per latent (lib/ops/loss.ts): the mean of ½‖z‖² + (D/2)·log 2π − logJacDet, the further
    // latents without the log-det term; equal to the composition below up to rounding
    let loss = gaussianNll(zs[0], logJacDet)
    for (let i = 1; i < zs.length; i++) loss = loss.add(gaussianNll(zs[i], null))
    return loss
  }
  return logLikelihood(z, logJacDet).mean().neg()
}

/**
 * True when the fused gaussianNll computes nllLoss: every latent is (B, ...) with positive event dimensions (what
 * latentFor accepts), all of one batch size, dtype and device, and logJacDet is a (B,) tensor of the same. Anything
 * else (a number or broadcast log-det, mixed dtypes, a malformed latent) takes the composed path, which
 * broadcasts or explains the error as before.
 */
function fusable(zs: Tensor[], logJacDet: Tensor | number): logJacDet is Tensor {
  if (zs.length === 0 || !(logJacDet instanceof Tensor)) return false
  const z0 = zs[0]
  for (const t of zs) {
    if (!(t instanceof Tensor) || t.isDisposed) return false
    if (t.ndim < 2 || t.shape.slice(1).some((d) => d === 0)) return false
    if (t.shape[0] !== z0.shape[0] || t.dtype !== z0.dtype || t.device !== z0.device) return false
  }
  if (logJacDet.isDisposed) return false
  return logJacDet.ndim === 1 && logJacDet.shape[0] === z0.shape[0] && logJacDet.dtype === z0.dtype && logJacDet.device === z0.device
}
