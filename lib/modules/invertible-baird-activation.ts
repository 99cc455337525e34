/**
 * InvertibleBairdActivation: the learned "Baird" activation (Baird et al. 2005), invertnn's
 * `InvertibleBairdActivation`, elementwise with a learned offset c per entry:
 *
 *   y = asinh(sinh(x) + c),   reverse x = asinh(sinh(y) − c)   (the same map with −c)
 *   dy/dx = cosh(x) / √(1 + (sinh(x) + c)²),   log|det J| = Σ ln(dy/dx)   (per sample; negated in reverse)
 *
 * c = 0 is the identity; the map is odd in (x, c): f(−x; −c) = −f(x; c). Parameter `c` of shape
 * (1, ...dims), initialised to 0 (as invertnn's `c` of shape (1, *layer_shape)); input shapes must equal
 * dims (invertnn asserts the same).
 *
 * Computed without overflow for any |x| (invertnn's piecewise exponential form gives NaN for x = 50 with
 * c < 0 in float32): with a = |x|, σ = sign(x), c' = σ·c and t = e^(−a) ∈ (0, 1],
 *   sinh(a) + c' = eᵃ·m,   m = (1 − t²)/2 + c'·t,   √(1 + (sinh a + c')²) = eᵃ·r,   r = √(m² + t²),
 * so that  y = σ·σₘ·(a + ln(σₘ·m + r))  with σₘ = sign(m) (asinh(s) = sign(s)·ln(|s| + √(s² + 1)), the
 * log argument never below r > 0), and  ln(dy/dx) = ln((1 + t²)/2) − ln r.  Every intermediate is bounded
 * by max(1, |c|); for a past the exponent range t = 0, m = ½ and y = x exactly. The signs σ, σₘ are constant
 * masks (σ = +1 at 0), so gradients flow through a = σ·x and σₘ·m as through |·| with the correct one-sided
 * derivative even at x = 0 or m = 0.
 *
 * Differences from invertnn (deliberate): invertnn's log-det is the inverse direction's term, detached
 * from the graph, so c cannot be trained by maximum likelihood through it; here it is the forward log-det
 * and differentiable in c.
 */
import { InnflowError } from '../errors'
import { where } from '../ops/elementwise'
import { Tensor, zeros } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { checkOptionKeys } from './irevnet-downsampling'
import { sampleAxes } from './invertible-tanh'

const LN2 = Math.log(2)

/** Options of {@link InvertibleBairdActivation}: none besides dimsC (accepted and ignored). */
export type InvertibleBairdActivationOptions = InvertibleModuleOptions

/** +1 where v ≥ 0, −1 elsewhere, as a constant mask (no gradient). */
const signMask = (v: Tensor): Tensor => where(v.ge(0), 1, -1)

/**
 * f(x; c) = asinh(sinh(x) + c) and ln f'(x; c), elementwise without overflow (see the file comment).
 * @internal
 */
export function bairdMap(x: Tensor, c: Tensor): { y: Tensor; logDiag: Tensor } {
  const s = signMask(x)
  const a = x.mul(s)
  const t = a.neg().exp()
  // (1 − t²)/2 = −expm1(−2a)/2 keeps its digits for small a
  const m = a.mul(-2).expm1().mul(-0.5).add(c.mul(s).mul(t))
  const r = m.square().add(t.square()).sqrt()
  const sm = signMask(m)
  const y = a.add(m.mul(sm).add(r).log()).mul(s.mul(sm))
  const logDiag = t.square().log1p().sub(LN2).sub(r.log())
  return { y, logDiag }
}

/**
 * The Baird activation y = asinh(sinh(x) + c) with a learned offset c per entry.
 * @example
 * inn.append(InvertibleBairdActivation)
 */
export class InvertibleBairdActivation extends InvertibleModule {
  /** The learned offset c, shape (1, ...dims). */
  readonly c: Tensor

  constructor(dimsIn: Dims[], opts: InvertibleBairdActivationOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    checkOptionKeys(name, opts, [])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: takes exactly one input, got ${this.dimsIn.length}`)
    this.c = this.registerParameter('c', zeros([1, ...this.dimsIn[0]]))
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const v = x[0]
    const { y, logDiag } = bairdMap(v, rev ? this.c.neg() : this.c)
    // in reverse, logDiag is ln dx/dy at y: already the negative of the forward log-det at the recovered x
    return [[y], logDiag.sum(sampleAxes(v))]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (!Array.isArray(inputDims) || inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: takes exactly one input`)
    return [[...inputDims[0]]]
  }

  override extraRepr(): string {
    return `layer_shape=${dimsString(this.dimsIn[0])}`
  }
}
