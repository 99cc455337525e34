/**
 * Small dense linear algebra (native/cpu/linalg.cc), exported as `ops.linalg`: LU with partial pivoting,
 * slogdet, det, inverse, triangular solves and reduced QR, each with its native backward kernel.
 *
 * Every function takes one matrix (m, n) or a batch of them (..., m, n), float32 or float64, and follows the
 * conventions of `torch.linalg`. The kernels compute in double internally, so float32 results are the float64
 * results rounded once. Matrices are expected to be small (up to a few hundred rows): the loops are plain,
 * one matrix per thread.
 */
import { bindingFor, NativeTensor } from '../binding'
import { argumentError, InnflowError } from '../errors'
import { record, isGradEnabled } from '../autograd/tape'
import { checkTensor, fromHandle, recordUnary, Tensor } from '../tensor'

interface LinalgBinding {
  lu(A: NativeTensor): [NativeTensor, NativeTensor, NativeTensor]
  luBackward(gL: NativeTensor | null, gU: NativeTensor | null, P: NativeTensor, L: NativeTensor, U: NativeTensor): NativeTensor
  slogdet(A: NativeTensor): [NativeTensor, NativeTensor]
  slogdetBackward(g: NativeTensor, A: NativeTensor): NativeTensor
  inverse(A: NativeTensor): NativeTensor
  inverseBackward(g: NativeTensor, Ainv: NativeTensor): NativeTensor
  solveTriangular(A: NativeTensor, B: NativeTensor, upper: boolean, left: boolean, unitriangular: boolean): NativeTensor
  solveTriangularBackward(
    g: NativeTensor, A: NativeTensor, X: NativeTensor, upper: boolean, left: boolean, unitriangular: boolean, needA: boolean, needB: boolean,
  ): [NativeTensor | null, NativeTensor | null]
  qr(A: NativeTensor): [NativeTensor, NativeTensor]
  qrBackward(gQ: NativeTensor | null, gR: NativeTensor | null, Q: NativeTensor, R: NativeTensor): NativeTensor
}
const N = bindingFor<LinalgBinding>()

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`

function checkMatrix(fn: string, name: string, x: unknown): Tensor {
  const t = checkTensor(fn, name, x)
  void t.handle // throws ERR_DISPOSED before the shape of a disposed tensor is judged
  if (t.ndim < 2)
    throw new InnflowError('ERR_SHAPE', `${fn}: ${name} must be a matrix or a batch of matrices (..., m, n), got shape ${shapeText(t.shape)}`)
  return t
}

function checkSquare(fn: string, name: string, x: unknown): Tensor {
  const t = checkMatrix(fn, name, x)
  const [m, n] = t.shape.slice(-2)
  if (m !== n) throw new InnflowError('ERR_SHAPE', `${fn}: ${name} must be square (..., n, n), got shape ${shapeText(t.shape)}`)
  return t
}

const handleOrNull = (t: Tensor | null): NativeTensor | null => (t ? t.handle : null)

/** The factors of `lu(A)`: A = P·L·U. */
export interface LuResult {
  /** Permutation matrix (same dtype as A). */
  P: Tensor
  /** Unit lower triangular. */
  L: Tensor
  /** Upper triangular. */
  U: Tensor
}

/**
 * LU decomposition with partial pivoting of a square matrix (or batch): A = P·L·U, as `torch.linalg.lu`.
 * Singular matrices factor too (U then has a zero on its diagonal), but are not differentiable: backward
 * through L or U of a singular matrix throws ERR_ARGUMENT. P carries no gradient (it is piecewise constant).
 */
export function lu(A: Tensor): LuResult {
  checkSquare('lu', 'A', A)
  const [hp, hl, hu] = N.lu(A.handle)
  const P = fromHandle(hp)
  const L = fromHandle(hl)
  const U = fromHandle(hu)
  if (isGradEnabled())
    record('lu', [A], [P, L, U], (gs) => {
      const gL = gs[1]
      const gU = gs[2]
      if (!gL && !gU) return [null]
      return [fromHandle(N.luBackward(handleOrNull(gL), handleOrNull(gU), P.handle, L.handle, U.handle))]
    })
  return { P, L, U }
}

/** The result of `slogdet(A)`: det(A) = sign · exp(logabsdet). */
export interface SlogdetResult {
  /** −1, 0 or 1, shape A.shape[:-2] (no gradient). */
  sign: Tensor
  /** log|det A| (−Infinity for a singular matrix), shape A.shape[:-2]. */
  logabsdet: Tensor
}

/**
 * Sign and log of the absolute value of the determinant (through LU), as `torch.linalg.slogdet`. The gradient
 * of logabsdet is A⁻ᵀ; backward through a singular matrix throws ERR_ARGUMENT.
 */
export function slogdet(A: Tensor): SlogdetResult {
  checkSquare('slogdet', 'A', A)
  const [hs, hl] = N.slogdet(A.handle)
  const sign = fromHandle(hs)
  const logabsdet = fromHandle(hl)
  if (isGradEnabled())
    record('slogdet', [A], [sign, logabsdet], (gs) => {
      const g = gs[1]
      return [g ? fromHandle(N.slogdetBackward(g.handle, A.handle)) : null]
    })
  return { sign, logabsdet }
}

/** The determinant, sign · exp(logabsdet) (prefer {@link slogdet} where it may overflow). */
export function det(A: Tensor): Tensor {
  checkSquare('det', 'A', A)
  const { sign, logabsdet } = slogdet(A)
  return sign.mul(logabsdet.exp())
}

/** The inverse of a square matrix (or batch), through LU. A singular matrix throws ERR_ARGUMENT. */
export function inverse(A: Tensor): Tensor {
  checkSquare('inverse', 'A', A)
  const Y = fromHandle(N.inverse(A.handle))
  return recordUnary('inverse', [A], Y, (g) => [fromHandle(N.inverseBackward(g.handle, Y.handle))])
}

/** Options of {@link solveTriangular}. */
export interface SolveTriangularOptions {
  /** Whether A is upper (true) or lower (false) triangular; the other triangle is never read. Required. */
  upper: boolean
  /** Solve A·X = B (true, default) or X·A = B (false). */
  left?: boolean
  /** Take A's diagonal as ones without reading it (default false). */
  unitriangular?: boolean
}

/**
 * Solves the triangular system A·X = B (left, the default) or X·A = B (right), as
 * `torch.linalg.solve_triangular`. A is (..., n, n); B is (..., n, k) for left, (..., k, n) for right, with
 * the same batch dimensions. A zero on A's diagonal (unless unitriangular) throws ERR_ARGUMENT.
 * The gradient for A lives on the triangle that was read.
 */
export function solveTriangular(A: Tensor, B: Tensor, opts: SolveTriangularOptions): Tensor {
  const fn = 'solveTriangular'
  checkSquare(fn, 'A', A)
  checkMatrix(fn, 'B', B)
  if (opts === null || typeof opts !== 'object') throw argumentError(fn, 'opts', 'an options object { upper, left?, unitriangular? }', opts)
  const { upper, left = true, unitriangular = false } = opts
  if (typeof upper !== 'boolean') throw argumentError(fn, 'opts.upper', 'a boolean (it has no default, as in torch)', upper)
  if (typeof left !== 'boolean') throw argumentError(fn, 'opts.left', 'a boolean', left)
  if (typeof unitriangular !== 'boolean') throw argumentError(fn, 'opts.unitriangular', 'a boolean', unitriangular)
  if (A.dtype !== B.dtype) throw new InnflowError('ERR_DTYPE', `${fn}: A and B must have the same dtype, got ${A.dtype} and ${B.dtype}`)
  const n = A.shape[A.ndim - 1]
  const batch = A.shape.slice(0, -2)
  const bBatch = B.shape.slice(0, -2)
  const bn = left ? B.shape[B.ndim - 2] : B.shape[B.ndim - 1]
  if (bBatch.join() !== batch.join() || bBatch.length !== batch.length || bn !== n) {
    const want = `[${(left ? [...batch, n, 'k'] : [...batch, 'k', n]).join(', ')}]`
    throw new InnflowError('ERR_SHAPE', `${fn}: B must have shape ${want} for A of shape ${shapeText(A.shape)} (left = ${left}), got ${shapeText(B.shape)}`)
  }
  const X = fromHandle(N.solveTriangular(A.handle, B.handle, upper, left, unitriangular))
  if (isGradEnabled())
    record(fn, [A, B], [X], (gs) => {
      const g = gs[0] as Tensor
      const [gA, gB] = N.solveTriangularBackward(g.handle, A.handle, X.handle, upper, left, unitriangular, A.requiresGrad, B.requiresGrad)
      return [gA && fromHandle(gA), gB && fromHandle(gB)]
    })
  return X
}

/** The factors of `qr(A)`: A = Q·R. */
export interface QrResult {
  /** (..., m, n) with orthonormal columns. */
  Q: Tensor
  /** (..., n, n) upper triangular. */
  R: Tensor
}

/**
 * Reduced QR decomposition by Householder reflections of a matrix (or batch) with m ≥ n, as
 * `torch.linalg.qr(A, mode='reduced')`. Sign convention (LAPACK's, so torch's on the CPU): R[j][j] has the
 * sign opposite to the j-th pivot the reflector replaced, so the diagonal of R may be negative; for an
 * orthogonal initialisation multiply Q's columns by sign(diag(R)), as torch.nn.init.orthogonal_ does.
 * The backward needs A of full column rank (R without zeros on its diagonal), else it throws ERR_ARGUMENT.
 */
export function qr(A: Tensor): QrResult {
  checkMatrix('qr', 'A', A)
  const [m, n] = A.shape.slice(-2)
  if (m < n)
    throw new InnflowError('ERR_SHAPE', `qr: A must have at least as many rows as columns (..., m, n) with m >= n, got shape ${shapeText(A.shape)}`)
  const [hq, hr] = N.qr(A.handle)
  const Q = fromHandle(hq)
  const R = fromHandle(hr)
  if (isGradEnabled())
    record('qr', [A], [Q, R], (gs) => {
      const [gQ, gR] = gs
      if (!gQ && !gR) return [null]
      return [fromHandle(N.qrBackward(handleOrNull(gQ), handleOrNull(gR), Q.handle, R.handle))]
    })
  return { Q, R }
}
