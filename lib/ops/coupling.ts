/**
 * The fused affine coupling (native/cpu/coupling.cc, cuda/coupling.cu): soft clamp, optional GIN centring,
 * y2 = x2·e^s + t (or its inverse) and the log-determinant in one native op per direction, with a handwritten
 * backward — instead of a dozen small elementwise ops, each allocating and passing over memory.
 */
import { bindingFor, NativeTensor } from '../binding'
import { isGradEnabled, record } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import { checkTensor, fromHandle, Tensor } from '../tensor'

interface CouplingBinding {
  couplingClampKinds: Record<string, number>
  affineCoupling(
    a: NativeTensor, x2: NativeTensor, kind: number, preScale: number, clamp: number, gin: boolean, rev: boolean, save: boolean,
  ): [NativeTensor, NativeTensor, NativeTensor | null, NativeTensor | null]
  affineCouplingBackward(
    gy2: NativeTensor | null, gLogDet: NativeTensor | null, a: NativeTensor, x2: NativeTensor, E: NativeTensor, D: NativeTensor,
    kind: number, preScale: number, gin: boolean, rev: boolean, needX2: boolean,
  ): [NativeTensor, NativeTensor | null]
}
const N = bindingFor<CouplingBinding>()

/**
 * The soft clamp s₀ = f(u) of the raw log-scales u = preScale·a_s:
 * - 'TANH_DIV': clamp·tanh(u/clamp) (AllInOneBlock's soft clamp)
 * - 'ATAN': clamp·0.636·atan(u) (the coupling blocks' default; u is not divided by clamp)
 * - 'TANH': clamp·tanh(u)
 * - 'SIGMOID': clamp·2(σ(u) − ½)
 * - 'NONE': u
 */
export type CouplingClampKind = 'TANH_DIV' | 'ATAN' | 'TANH' | 'SIGMOID' | 'NONE'

/** Options of {@link affineCoupling}. */
export interface AffineCouplingOptions {
  /** Factor applied to the raw subnet output (both halves) before anything else (default 1; AllInOneBlock: 0.1). */
  preScale?: number
  /** The soft clamp (default 'ATAN'). */
  clampKind?: CouplingClampKind
  /** Its bound (default 2). */
  clamp?: number
  /** GIN: centre s per sample (s ← s − mean(s) over all non-batch axes), a volume-preserving coupling (default false). */
  gin?: boolean
  /** The inverse: y2 = (x2 − t)·e^{−s} and log-det −Σ s (default false). */
  rev?: boolean
}

const KINDS: readonly string[] = ['TANH_DIV', 'ATAN', 'TANH', 'SIGMOID', 'NONE']

/**
 * The affine coupling of the active half x2 given the raw subnet output a = [a_s | a_t]:
 *   a_s = preScale·a[:, :C2], t = preScale·a[:, C2:], s = clamp(a_s) (see {@link CouplingClampKind}),
 *   with gin s ← s − mean(s) per sample;
 *   forward  y2 = x2·e^s + t,       logDet = Σ s over every non-batch axis   (shape (B,))
 *   rev      y2 = (x2 − t)·e^{−s},  logDet = −Σ s
 * a: (B, 2·C2, *spatial), x2: (B, C2, *spatial), one dtype and device. Differentiable in a and x2. float64
 * results equal those of the same formulas written with the elementwise ops.
 */
export function affineCoupling(a: Tensor, x2: Tensor, opts: AffineCouplingOptions = {}): [Tensor, Tensor] {
  const fn = 'affineCoupling'
  void checkTensor(fn, 'a', a).handle // ERR_DISPOSED before anything else is judged
  void checkTensor(fn, 'x2', x2).handle
  if (opts === null || typeof opts !== 'object') throw argumentError(fn, 'opts', 'an options object { preScale?, clampKind?, clamp?, gin?, rev? }', opts)
  const preScale = opts.preScale ?? 1
  if (typeof preScale !== 'number' || !Number.isFinite(preScale)) throw argumentError(fn, 'opts.preScale', 'a finite number', preScale)
  const clampKind = opts.clampKind ?? 'ATAN'
  if (typeof clampKind !== 'string' || !KINDS.includes(clampKind)) throw argumentError(fn, 'opts.clampKind', `one of ${KINDS.map((k) => `"${k}"`).join(', ')}`, clampKind)
  const clamp = opts.clamp ?? 2
  if (typeof clamp !== 'number' || !Number.isFinite(clamp)) throw argumentError(fn, 'opts.clamp', 'a finite number', clamp)
  const gin = opts.gin ?? false
  if (typeof gin !== 'boolean') throw argumentError(fn, 'opts.gin', 'a boolean', gin)
  const rev = opts.rev ?? false
  if (typeof rev !== 'boolean') throw argumentError(fn, 'opts.rev', 'a boolean', rev)
  if (a.dtype !== x2.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: dtypes differ (a is ${a.dtype}, x2 is ${x2.dtype})`)
  if (a.device !== x2.device) throw new InnflowError('ERR_DEVICE', `${fn}: a is on ${a.device} but x2 is on ${x2.device}`)
  const kind = N.couplingClampKinds[clampKind]
  const save = isGradEnabled() && (a.requiresGrad || x2.requiresGrad)
  const [yh, lh, eh, dh] = N.affineCoupling(a.handle, x2.handle, kind, preScale, clamp, gin, rev, save)
  const y2 = fromHandle(yh)
  const logDet = fromHandle(lh)
  if (save && eh && dh) {
    // e^{±s} and ∂s₀/∂a_s: what the backward needs besides a and x2 (tensors, so that tidy() frees them with the
    // rest of a step; the backward frees them as soon as it has run)
    const E = fromHandle(eh)
    const D = fromHandle(dh)
    record(fn, [a, x2], [y2, logDet], (gs) => {
      const [gy, gl] = gs
      const [ga, gx] = N.affineCouplingBackward(gy ? gy.handle : null, gl ? gl.handle : null, a.handle, x2.handle, E.handle, D.handle, kind, preScale, gin, rev, x2.requiresGrad)
      E.dispose()
      D.dispose()
      return [fromHandle(ga), gx && fromHandle(gx)]
    })
  }
  return [y2, logDet]
}

interface CatAffinePermuteBinding {
  catAffinePermute(x1: NativeTensor, y2: NativeTensor, scale: NativeTensor | null, shift: NativeTensor, perm: NativeTensor): NativeTensor
  catAffinePermuteBackward(
    gz: NativeTensor, x1: NativeTensor, y2: NativeTensor, scale: NativeTensor | null, shift: NativeTensor, perm: NativeTensor,
    needScale: boolean, needShift: boolean,
  ): [NativeTensor, NativeTensor, NativeTensor | null, NativeTensor | null]
}
const P = bindingFor<CatAffinePermuteBinding>()

/**
 * The end of AllInOneBlock's forward pass in one op: the concatenation of the two halves, the per-channel affine
 * map and a hard channel permutation,
 *   z[:, j] = src[:, k]·scale[k] + shift[k] with k = perm[j] and src = cat([x1, y2], 1)
 * (without scale: src[:, k] + shift[k]); the same roundings as `cat`, `mul`, `add`, `indexSelect(1, perm)`, so
 * float64 results are those of that chain.
 * x1: (B, C1, *spatial), y2: (B, C2, *spatial); scale (or null) and shift: C = C1 + C2 values, of shape (C) or
 * (1, C, 1, ...); perm: a 1-D index tensor holding a permutation of 0..C−1 (ERR_ARGUMENT otherwise; on CUDA,
 * NaN results). Differentiable in x1, y2, scale and shift; the backward is one native pass (the gradients of
 * scale and shift are sums over batch and spatial positions, accumulated in double).
 */
export function catAffinePermute(x1: Tensor, y2: Tensor, scale: Tensor | null, shift: Tensor, perm: Tensor): Tensor {
  const fn = 'catAffinePermute'
  void checkTensor(fn, 'x1', x1).handle
  void checkTensor(fn, 'y2', y2).handle
  if (scale !== null) void checkTensor(fn, 'scale', scale).handle
  void checkTensor(fn, 'shift', shift).handle
  void checkTensor(fn, 'perm', perm).handle
  for (const [name, t] of [['y2', y2], ['scale', scale], ['shift', shift]] as [string, Tensor | null][]) {
    if (t === null) continue
    if (t.dtype !== x1.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: dtypes differ (x1 is ${x1.dtype}, ${name} is ${t.dtype})`)
    if (t.device !== x1.device) throw new InnflowError('ERR_DEVICE', `${fn}: x1 is on ${x1.device} but ${name} is on ${t.device}`)
  }
  if (perm.device !== x1.device) throw new InnflowError('ERR_DEVICE', `${fn}: x1 is on ${x1.device} but perm is on ${perm.device}`)
  const z = fromHandle(P.catAffinePermute(x1.handle, y2.handle, scale ? scale.handle : null, shift.handle, perm.handle))
  const inputs = scale ? [x1, y2, shift, scale] : [x1, y2, shift]
  record(fn, inputs, [z], ([gz]) => {
    if (!gz) return inputs.map(() => null)
    const [g1, g2, gsc, gsh] = P.catAffinePermuteBackward(
      gz.handle, x1.handle, y2.handle, scale ? scale.handle : null, shift.handle, perm.handle, !!scale && scale.requiresGrad, shift.requiresGrad,
    )
    const grads: (Tensor | null)[] = [fromHandle(g1), fromHandle(g2), gsh && fromHandle(gsh)]
    if (scale) grads.push(gsc && fromHandle(gsc))
    return grads
  })
  return z
}

interface PermuteAffineSplitBinding {
  permuteAffineSplit(z: NativeTensor, scale: NativeTensor | null, shift: NativeTensor, index: NativeTensor, c1: number): [NativeTensor, NativeTensor]
  permuteAffineSplitBackward(
    gx1: NativeTensor | null, gx2: NativeTensor | null, z: NativeTensor, scale: NativeTensor | null, shift: NativeTensor, index: NativeTensor,
    c1: number, needScale: boolean, needShift: boolean,
  ): [NativeTensor, NativeTensor | null, NativeTensor | null]
}
const Q = bindingFor<PermuteAffineSplitBinding>()

/**
 * The inverse of {@link catAffinePermute}, AllInOneBlock's reverse pass up to the coupling in one op:
 *   src[:, k] = (z[:, index[k]] − shift[k]) / scale[k]   (without scale: z[:, index[k]] − shift[k]),
 *   [x1, x2] = [src[:, :c1], src[:, c1:]]
 * with the roundings of `indexSelect(1, index)`, `sub`, `div`, `split` (float64 results are that chain's).
 * z: (B, C, *spatial); scale (or null), shift: C values, (C) or (1, C, 1, ...); index: the inverse of
 * catAffinePermute's perm (a 1-D tensor holding a permutation of 0..C−1: ERR_ARGUMENT otherwise, NaN results on
 * CUDA); 0 ≤ c1 ≤ C. Differentiable in z, scale and shift.
 */
export function permuteAffineSplit(z: Tensor, scale: Tensor | null, shift: Tensor, index: Tensor, c1: number): [Tensor, Tensor] {
  const fn = 'permuteAffineSplit'
  void checkTensor(fn, 'z', z).handle
  if (scale !== null) void checkTensor(fn, 'scale', scale).handle
  void checkTensor(fn, 'shift', shift).handle
  void checkTensor(fn, 'index', index).handle
  if (typeof c1 !== 'number' || !Number.isInteger(c1)) throw argumentError(fn, 'c1', 'an integer', c1)
  for (const [name, t] of [['scale', scale], ['shift', shift]] as [string, Tensor | null][]) {
    if (t === null) continue
    if (t.dtype !== z.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: dtypes differ (z is ${z.dtype}, ${name} is ${t.dtype})`)
    if (t.device !== z.device) throw new InnflowError('ERR_DEVICE', `${fn}: z is on ${z.device} but ${name} is on ${t.device}`)
  }
  if (index.device !== z.device) throw new InnflowError('ERR_DEVICE', `${fn}: z is on ${z.device} but index is on ${index.device}`)
  const [h1, h2] = Q.permuteAffineSplit(z.handle, scale ? scale.handle : null, shift.handle, index.handle, c1)
  const x1 = fromHandle(h1)
  const x2 = fromHandle(h2)
  const inputs = scale ? [z, shift, scale] : [z, shift]
  record(fn, inputs, [x1, x2], ([g1, g2]) => {
    if (!g1 && !g2) return inputs.map(() => null)
    const [gz, gsc, gsh] = Q.permuteAffineSplitBackward(
      g1 ? g1.handle : null, g2 ? g2.handle : null, z.handle, scale ? scale.handle : null, shift.handle, index.handle, c1,
      !!scale && scale.requiresGrad, shift.requiresGrad,
    )
    const grads: (Tensor | null)[] = [fromHandle(gz), gsh && fromHandle(gsh)]
    if (scale) grads.push(gsc && fromHandle(gsc))
    return grads
  })
  return [x1, x2]
}
