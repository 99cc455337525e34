/** Gradient clipping by total norm (torch.nn.utils.clip_grad_norm_), computed and applied in one native call. */
import { argumentError } from '../errors'
import { Tensor } from '../tensor'
import { collectParams, N } from './optimizer'

/**
 * Scales the gradients of `params` in place so that their total norm is at most `maxNorm`, and returns the
 * total norm before clipping (a number). The total is the `normType`-norm of all gradient entries together
 * (`Infinity` or `'inf'` for the largest magnitude); each gradient is multiplied by
 * min(1, maxNorm / (total + 1e-6)), as PyTorch does. Parameters without a gradient are skipped; with none,
 * the result is 0.
 * @example const norm = optim.clipGradNorm(model.parameters(), 1.0)
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType: number | 'inf' = 2): number {
  const ps = collectParams('clipGradNorm', params, true)
  if (typeof maxNorm !== 'number' || Number.isNaN(maxNorm) || maxNorm < 0) throw argumentError('clipGradNorm', 'maxNorm', 'a non-negative number', maxNorm)
  const p = normType === 'inf' ? Infinity : normType
  if (typeof p !== 'number' || !(p > 0)) throw argumentError('clipGradNorm', 'normType', "a positive number, Infinity or 'inf'", normType)
  const grads: Tensor[] = []
  for (const t of ps) if (t.grad) grads.push(t.grad)
  if (grads.length === 0) return 0
  return N.clipGradNorm(grads.map((g) => g.handle), maxNorm, p)
}
