/**
 * AllInOneBlock (FrEIA's `AllInOneBlock`): an affine coupling with a soft clamp, a learned global per-channel
 * affine map ("ActNorm-like") and a fixed permutation, optionally GIN (volume-preserving coupling), with
 * learned Householder reflections on top of the permutation and an inverse pre-permutation.
 *
 * Forward, for an input x of shape (B, C, ...) (the channel axis is axis 1):
 *   x ← P⁻¹·x                                      only with `reversePermutation`
 *   x1, x2 = x[:, :C₁], x[:, C₁:]                    C₁ = C − ⌊C/2⌋ (the larger half is passive), C₂ = ⌊C/2⌋
 *   a = 0.1 · subnet(cat(x1, c₁, c₂, ...))           2·C₂ channels: a = [a_s | a_t]
 *   s = α · tanh(a_s / α)                            α = affineClamping; GIN: s ← s − mean(s) over all non-batch axes
 *   u = cat(x1, x2 · exp(s) + a_t)
 *   v = u · Ψ(g) + b                                 g = global_scale, b = global_offset, per channel (GIN: Ψ ≡ 1)
 *   z = P · v                                        per pixel: a hard permutation z_i = v_{p[i]}, or a rotation
 *   log|det J| = Σ s + n_pix · Σ_c log Ψ(g_c)        (B,); the reverse pass returns its negative
 * with Ψ(g) = 0.1·softplus_{β=0.5}(g) ('SOFTPLUS'), 10·σ(g − 2) ('SIGMOID') or exp(g) ('EXP'), and the raw g
 * initialised so that Ψ(g) = globalAffineInit.
 *
 * State-dict keys are FrEIA's: `global_scale`, `global_offset` (1, C, 1, ...), `w_perm`, `w_perm_inv` (hard:
 * the index vectors p and p⁻¹ of shape (C,); soft: the rotation W and Wᵀ of shape (C, C, 1, ...)), or
 * `vk_householder` (K, C) and `w_0` (C, C) with learned Householder reflections, and `subnet.*`.
 *
 * Random draws: FrEIA takes the soft rotation from scipy's `special_ortho_group` (NumPy's global RNG) and the
 * hard permutation from torch's/NumPy's RNG. innflow cannot reproduce those streams, so it draws from its own
 * generator: the rotation is Haar-distributed on SO(C) (QR of a standard normal matrix, the columns of Q
 * multiplied by the signs of R's diagonal, one column negated when det Q = −1), the permutation is `randperm`.
 * A FrEIA checkpoint loads its own matrices and permutations through the state dict, so parity does not
 * depend on the draw.
 */
import { isGradEnabled, noGrad } from '../autograd/tape'
import { argumentError, InnflowError } from '../errors'
import type { Module } from '../nn/module'
import * as ops from '../ops'
import { recordCatLinear } from '../ops/matmul'
import { getDefaultDtype } from '../dtype'
import { eye, full, randn, randperm, tensor, Tensor, zeros } from '../tensor'
import { tidy } from '../scope'
import { BackpropRebuild, checkOptionKeys, SubnetConstructor, Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput, sameDims } from './base'


/** The activation Ψ of the global affine scale. */
export type GlobalAffineType = 'SOFTPLUS' | 'SIGMOID' | 'EXP'

/** Options of {@link AllInOneBlock} (FrEIA's keyword arguments in camelCase). */
export interface AllInOneBlockOptions extends InvertibleModuleOptions {
  /**
   * Required. Builds the coupling network, called once as `subnetConstructor(C₁ + condition channels, 2·C₂)`;
   * the network maps (B, C₁ + Σ cond channels, ...) to (B, 2·C₂, ...) with the same spatial shape.
   */
  subnetConstructor?: SubnetConstructor
  /** α of the soft clamp s = α·tanh(a_s/α): the log-scale of the coupling stays within ±α (default 2). */
  affineClamping?: number
  /** GIN block (Sorrenson et al. 2019): the coupling's log-scales are centred, so it preserves volume (default false). */
  ginBlock?: boolean
  /** Initial value of the global scale Ψ(g) (default 1; in (0, 10) for 'SIGMOID'). */
  globalAffineInit?: number
  /** The activation Ψ of the global scale: 'SOFTPLUS' (default), 'SIGMOID' or 'EXP'. */
  globalAffineType?: GlobalAffineType
  /** Use a random rotation from SO(C) instead of a hard permutation of the channels (default false). */
  permuteSoft?: boolean
  /** Number K of learned Householder reflections applied after the fixed permutation/rotation (default 0 = none). */
  learnedHouseholderPermutation?: number
  /** Apply the inverse permutation before the coupling (Putzky et al. 2019) (default false). FrEIA: `reverse_permutation`. */
  reversePermutation?: boolean
}

const OPTION_NAMES = [
  'dimsC', 'subnetConstructor', 'affineClamping', 'ginBlock', 'globalAffineInit', 'globalAffineType', 'permuteSoft',
  'learnedHouseholderPermutation', 'reversePermutation',
]

const isTensor = (v: unknown): v is Tensor => v !== null && typeof v === 'object' && (v as { __isInnflowTensor?: boolean }).__isInnflowTensor === true

function checkBoolean(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw argumentError('AllInOneBlock', name, 'a boolean', v)
  return v
}

/** The raw global_scale g with Ψ(g) = init, for each activation (FrEIA's formulas). */
function rawGlobalScale(type: GlobalAffineType, init: number): number {
  if (type === 'SIGMOID') return 2 - Math.log(10 / init - 1)
  // 2·ln(e^{5·init} − 1), written so that it neither overflows for large init nor loses digits for small
  if (type === 'SOFTPLUS') return 2 * (5 * init + Math.log(-Math.expm1(-5 * init)))
  return Math.log(init)
}

/**
 * A Haar-random rotation (uniform on SO(n)), computed in float64: Q of the QR decomposition of a standard normal
 * matrix, with the columns multiplied by the signs of R's diagonal (which makes Q Haar-distributed on O(n)),
 * and the first column negated when det Q = −1.
 */
export function randomRotation(n: number): Tensor {
  return tidy(() =>
    noGrad(() => {
      const { Q, R } = ops.linalg.qr(randn([n, n], { dtype: 'float64' }))
      const diagR = R.mul(eye(n, { dtype: 'float64' })).sum(0, true) // (1, n)
      let q = Q.mul(diagR.sign())
      if (ops.linalg.det(q).item() < 0) {
        const flip = new Array<number>(n).fill(1)
        flip[0] = -1
        q = q.mul(tensor(flip, [1, n], { dtype: 'float64' }))
      }
      return q
    }),
  )
}

/**
 * The all-in-one flow block (see the file comment for the math).
 * @example
 * const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 64), new nn.ReLU(), new nn.Linear(64, cOut))
 * const inn = new SequenceINN(2)
 * for (let k = 0; k < 8; k++) inn.append(modules.AllInOneBlock, { subnetConstructor: subnet, permuteSoft: true })
 */
export class AllInOneBlock extends InvertibleModule {
  /** The coupling network. */
  readonly subnet: Module
  /** The raw global scale g (1, C, 1, ...); a buffer in GIN mode, where it is unused. */
  readonly globalScale: Tensor
  /** The global offset b (1, C, 1, ...). */
  readonly globalOffset: Tensor
  /** Hard: the permutation p (C,) as float indices; soft: the rotation W (C, C, 1, ...); null with Householder reflections. */
  readonly wPerm: Tensor | null
  /** Hard: p⁻¹ (C,); soft: Wᵀ (C, C, 1, ...); null with Householder reflections. */
  readonly wPermInv: Tensor | null
  /** The K reflection vectors (K, C) (learned Householder permutation only). */
  readonly vkHouseholder: Tensor | null
  /** The fixed matrix the reflections multiply (C, C) (learned Householder permutation only). */
  readonly w0: Tensor | null

  private readonly channels: number
  private readonly splits: [number, number]
  private readonly nPix: number
  private readonly clamp: number
  private readonly gin: boolean
  private readonly affineType: GlobalAffineType
  /** 'hard': index permutation; 'soft': a rotation matrix (stored, or built from Householder reflections). */
  private readonly permKind: 'hard' | 'soft'
  private readonly householder: number
  private readonly reversePre: boolean

  constructor(dimsIn: Dims[], opts: AllInOneBlockOptions = {}) {
    super(dimsIn, opts)
    checkOptionKeys('AllInOneBlock', opts, OPTION_NAMES)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `AllInOneBlock: expected exactly one input, got ${this.dimsIn.length}`)
    const dims = this.dimsIn[0]
    const channels = dims[0]
    if (channels < 2) throw new InnflowError('ERR_SHAPE', `AllInOneBlock: needs at least 2 channels to couple, got input shape (${dims.join(', ')})`)
    this.dimsC.forEach((dc, i) => {
      if (!sameDims(dc.slice(1), dims.slice(1)))
        throw new InnflowError('ERR_SHAPE', `AllInOneBlock: dimensions of input and condition ${i} don't agree: (${dc.join(', ')}) vs (${dims.join(', ')}); a condition must have the input's spatial shape`)
    })
    const condChannels = this.dimsC.reduce((acc, dc) => acc + dc[0], 0)

    const clamp = opts.affineClamping ?? 2
    if (typeof clamp !== 'number' || !Number.isFinite(clamp) || !(clamp > 0)) throw argumentError('AllInOneBlock', 'affineClamping', 'a positive number', clamp)
    const gin = checkBoolean('ginBlock', opts.ginBlock, false)
    const affineType = opts.globalAffineType ?? 'SOFTPLUS'
    if (affineType !== 'SOFTPLUS' && affineType !== 'SIGMOID' && affineType !== 'EXP')
      throw new InnflowError('ERR_ARGUMENT', `AllInOneBlock: globalAffineType must be "SIGMOID", "SOFTPLUS" or "EXP", got ${JSON.stringify(affineType)}`)
    const init = opts.globalAffineInit ?? 1
    if (typeof init !== 'number' || !Number.isFinite(init) || !(init > 0) || (affineType === 'SIGMOID' && !(init < 10)))
      throw argumentError('AllInOneBlock', 'globalAffineInit', affineType === 'SIGMOID' ? 'a number in (0, 10) (the range of 10·sigmoid)' : 'a positive number', init)
    const permuteSoft = checkBoolean('permuteSoft', opts.permuteSoft, false)
    const householder = opts.learnedHouseholderPermutation ?? 0
    if (typeof householder !== 'number' || !Number.isInteger(householder) || householder < 0)
      throw argumentError('AllInOneBlock', 'learnedHouseholderPermutation', 'a non-negative integer (the number of reflections; 0 = none)', householder)
    const reversePre = checkBoolean('reversePermutation', opts.reversePermutation, false)
    const make = opts.subnetConstructor
    if (typeof make !== 'function')
      throw argumentError('AllInOneBlock', 'subnetConstructor', 'a function (channelsIn, channelsOut) => Module (FrEIA: "Please supply a callable subnet_constructor")', make)

    this.channels = channels
    this.splits = [channels - Math.floor(channels / 2), Math.floor(channels / 2)]
    this.nPix = dims.slice(1).reduce((a, b) => a * b, 1)
    this.clamp = clamp
    this.gin = gin
    this.affineType = affineType
    this.householder = householder
    this.reversePre = reversePre
    // Householder reflections multiply a matrix, so a hard permutation becomes its 0/1 matrix there (FrEIA
    // crashes on learned_householder_permutation without permute_soft; this is the evident intent).
    this.permKind = permuteSoft || householder > 0 ? 'soft' : 'hard'

    const dtype = getDefaultDtype()
    const paramShape = [1, channels, ...dims.slice(1).map(() => 1)]
    const g = full(paramShape, rawGlobalScale(affineType, init), { dtype })
    // In GIN mode the scale is never used (Ψ ≡ 1), so it is not trained: a buffer under FrEIA's key (FrEIA keeps
    // an nn.Parameter that never receives a gradient; the parity fixtures list no gradient for it).
    this.globalScale = gin ? this.registerBuffer('global_scale', g) : this.registerParameter('global_scale', g)
    this.globalOffset = this.registerParameter('global_offset', zeros(paramShape, { dtype }))

    const matShape = [channels, channels, ...dims.slice(1).map(() => 1)]
    if (householder > 0) {
      this.vkHouseholder = this.registerParameter('vk_householder', randn([householder, channels], { dtype }).mul(0.2).detach())
      const w0 = permuteSoft
        ? randomRotation(channels).to({ dtype })
        : tidy(() => eye(channels, { dtype }).indexSelect(0, randperm(channels, { dtype })))
      this.w0 = this.registerBuffer('w_0', w0)
      this.wPerm = null
      this.wPermInv = null
    } else if (permuteSoft) {
      const [w, wInv] = tidy(() => {
        const r = randomRotation(channels)
        return [r.to({ dtype }).reshape(matShape), r.t().to({ dtype }).reshape(matShape)]
      })
      this.wPerm = this.registerBuffer('w_perm', w)
      this.wPermInv = this.registerBuffer('w_perm_inv', wInv)
      this.vkHouseholder = null
      this.w0 = null
    } else {
      const p = randperm(channels, { dtype })
      const inv = new Array<number>(channels)
      Array.from(p.toArray()).forEach((v, i) => (inv[v] = i))
      this.wPerm = this.registerBuffer('w_perm', p)
      this.wPermInv = this.registerBuffer('w_perm_inv', tensor(inv, [channels], { dtype }))
      this.vkHouseholder = null
      this.w0 = null
    }

    this.subnet = this.registerModule('subnet', make(this.splits[0] + condChannels, 2 * this.splits[1]))
  }

  /** Ψ(g): the global scale per channel, shape (1, C, 1, ...). */
  private globalScaleActivation(): Tensor {
    const g = this.globalScale
    if (this.affineType === 'SOFTPLUS') return g.softplus(0.5, 20).mul(0.1)
    if (this.affineType === 'SIGMOID') return g.sub(2).sigmoid().mul(10)
    return g.exp()
  }

  /** The rotation W (C, C): the stored one, or w_0·H(v₁)···H(v_K) with H(v) = I − 2vvᵀ/‖v‖². */
  private rotation(): Tensor {
    if (this.w0 === null) return (this.wPerm as Tensor).reshape([this.channels, this.channels])
    const vs = this.vkHouseholder as Tensor
    let w = this.w0
    for (let k = 0; k < this.householder; k++) {
      const v = vs.narrow(0, k, 1) // (1, C)
      // W·H(v) = W − (W v)(2 vᵀ/‖v‖²): a rank-one update instead of a C×C product
      w = w.sub(ops.matmul(w, v.t()).mul(v.mul(2).div(v.square().sum())))
    }
    return w
  }

  /** The inverse rotation (C, C): the stored Wᵀ, or the transpose of the Householder product. */
  private rotationInverse(w: Tensor | null): Tensor {
    if (this.w0 === null) return (this.wPermInv as Tensor).reshape([this.channels, this.channels])
    return (w as Tensor).t()
  }

  /** y_i = Σ_j M_ij x_j + bias_i per pixel: one linear (1-D data) or one 1×1 convolution (any spatial rank). */
  private mix(x: Tensor, m: Tensor, bias: Tensor | null): Tensor {
    const c = this.channels
    if (x.ndim === 2) return ops.linear(x, m, bias)
    const m4 = m.reshape([c, c, 1, 1])
    if (x.ndim === 4) return ops.conv2d(x, m4, bias)
    const b = x.shape[0]
    return ops.conv2d(x.reshape([b, c, this.nPix, 1]), m4, bias).reshape(x.shape as number[])
  }

  /** P·x (forward) or P⁻¹·x, without the global affine (the pre-permutation of `reversePermutation`). */
  private permuteOnly(x: Tensor, inverse: boolean, w: Tensor | null): Tensor {
    if (this.permKind === 'hard') return x.indexSelect(1, (inverse ? this.wPermInv : this.wPerm) as Tensor)
    return this.mix(x, inverse ? this.rotationInverse(w) : (w as Tensor), null)
  }

  /** The forward global affine and rotation folded into a matrix and a bias: W·(Ψ ⊙ u + b) = (W·diag Ψ)·u + W·b. */
  private foldForward(psi: Tensor | null, w: Tensor): [Tensor, Tensor] {
    const c = this.channels
    const m = psi ? w.mul(psi.reshape([1, c])) : w
    return [m, ops.linear(this.globalOffset.reshape([1, c]), w).reshape([c])]
  }

  /**
   * The global affine and the rotation: z = W·(u·Ψ + b), or its inverse u = (Wᵀ·z − b)/Ψ. The per-channel scale
   * and offset are folded into the C×C matrix and a bias, so the data pass once through one linear/1×1
   * convolution. (A hard permutation takes the fused ops of {@link catAffineAndPermute} and
   * {@link unpermuteAffineSplit} instead.)
   */
  private affineAndPermute(x: Tensor, psi: Tensor | null, rev: boolean, w: Tensor | null): Tensor {
    const b = this.globalOffset
    const c = this.channels
    const bRow = b.reshape([1, c])
    if (!rev) {
      const [m, bias] = this.foldForward(psi, w as Tensor)
      return this.mix(x, m, bias)
    }
    // (Wᵀ z − b)/Ψ = (diag(1/Ψ)·Wᵀ)·z − b/Ψ
    const wInv = this.rotationInverse(w)
    if (!psi) return this.mix(x, wInv, bRow.neg().reshape([c]))
    const psiCol = psi.reshape([c, 1])
    return this.mix(x, wInv.div(psiCol), bRow.div(psi.reshape([1, c])).neg().reshape([c]))
  }

  /**
   * z = P·(cat(x1, y2)·Ψ + b): for a hard permutation one fused op (the same roundings as cat, mul, add,
   * indexSelect, in one pass and one tape entry); for a rotation of 2-D data one catLinear with the folded matrix
   * and bias (no concatenation is made); else the concatenation and {@link affineAndPermute}.
   */
  private catAffineAndPermute(x1: Tensor, y2: Tensor, psi: Tensor | null, w: Tensor | null): Tensor {
    if (this.permKind === 'hard') return ops.catAffinePermute(x1, y2, psi, this.globalOffset, this.wPerm as Tensor)
    if (x1.ndim === 2) {
      const [m, bias] = this.foldForward(psi, w as Tensor)
      return ops.catLinear([x1, y2], m, bias)
    }
    return this.affineAndPermute(ops.cat([x1, y2], 1), psi, false, w)
  }

  /**
   * The inverse: [x1, x2] = split((P⁻¹·z − b)/Ψ): for a hard permutation one fused op (the roundings of
   * indexSelect, sub, div, split), else {@link affineAndPermute} and split.
   */
  private unpermuteAffineSplit(z: Tensor, psi: Tensor | null, w: Tensor | null): [Tensor, Tensor] {
    if (this.permKind === 'hard') return ops.permuteAffineSplit(z, psi, this.globalOffset, this.wPermInv as Tensor, this.splits[0])
    const [x1, x2] = this.affineAndPermute(z, psi, true, w).split(this.splits, 1)
    return [x1, x2]
  }

  /**
   * Forward (x → z) or, with rev, reverse (z → x). Returns `[[out], logJacDet]`, logJacDet of shape (batch,),
   * computed whatever `jac` says (as FrEIA; PushForward densities rely on it).
   */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const cs = this.checkConditions(c, x[0].shape[0])
    const psi = this.gin ? null : this.globalScaleActivation()
    const w = this.permKind === 'soft' ? this.rotation() : null
    let h = x[0]
    let x1: Tensor, x2: Tensor
    if (rev) [x1, x2] = this.unpermuteAffineSplit(h, psi, w)
    else {
      if (this.reversePre) h = this.permuteOnly(h, true, w)
      ;[x1, x2] = h.split(this.splits, 1)
    }
    const out = this.subnetOutput(x1, cs)
    // a = 0.1·out = [a_s | t], s = α·tanh(a_s/α) (GIN: centred), y2 = x2·e^s + t or (x2 − t)·e^{−s}, ±Σ s: one
    // fused op (the same operations as the op chain out.mul(0.1), split, div, tanh, mul, mean, sub, exp, ...)
    const [y2, coupledLogDet] = this.couple(out, x2, rev)
    let logDet = rev ? coupledLogDet.neg() : coupledLogDet
    let z: Tensor
    if (!rev) z = this.catAffineAndPermute(x1, y2, psi, w)
    else {
      z = ops.cat([x1, y2], 1)
      if (this.reversePre) z = this.permuteOnly(z, false, w)
    }
    if (psi) logDet = logDet.add(psi.log().sum().mul(this.nPix))
    return [[z], rev ? logDet.neg() : logDet]
  }

  /** The subnet's output for the passive half x1 (and the conditions), checked: (B, 2·C2, ...). */
  private subnetOutput(x1: Tensor, cs: Tensor[]): Tensor {
    const out = this.subnet.forward(cs.length > 0 ? ops.cat([x1, ...cs], 1) : x1)
    const expected = [x1.shape[0], 2 * this.splits[1], ...x1.shape.slice(2)]
    if (!isTensor(out) || !sameDims(out.shape, expected))
      throw new InnflowError('ERR_SHAPE', `AllInOneBlock: the subnet must return a tensor of shape (${expected.join(', ')}), got ${isTensor(out) ? `(${out.shape.join(', ')})` : typeof out}`)
    return out
  }

  /** The affine coupling of the active half x2 by the subnet output: [y2, Σ s] (rev: [x2, −Σ s]). */
  private couple(out: Tensor, x2: Tensor, rev: boolean): [Tensor, Tensor] {
    return ops.affineCoupling(out, x2, { preScale: 0.1, clampKind: 'TANH_DIV', clamp: this.clamp, gin: this.gin, rev })
  }

  /**
   * @internal Invertible backprop's fast path (forward direction): undoes the global affine and permutation of
   * the output y, runs the subnet once on the passive half (recording), inverts the active half from that
   * subnet output, and rebuilds the forward graph from the two halves as leaves. Same ops as forward, so the
   * gradients are normal mode's up to the rounding of the rebuilt input.
   */
  _rebuildForBackward(y: Tensor, c: Tensor[], needInput: boolean): BackpropRebuild | null {
    if (this.reversePre || !isGradEnabled()) return null
    const cs = this.checkConditions(c, y.shape[0])
    const psi = this.gin ? null : this.globalScaleActivation()
    const w = this.permKind === 'soft' ? this.rotation() : null
    const [x1Value, y2Value] = noGrad(() => this.unpermuteAffineSplit(y, psi, w))
    const x1 = x1Value.detach()
    x1.requiresGrad = needInput
    const a = this.subnetOutput(x1, cs)
    const x2Value = noGrad(() => this.couple(a, y2Value, true)[0])
    const x2 = x2Value.detach()
    x2.requiresGrad = needInput
    const [y2, coupledLogDet] = this.couple(a, x2, false)
    let logDet = coupledLogDet
    let out: Tensor
    if (this.permKind === 'soft' && x1.ndim === 2) {
      // catLinear's gradients do not depend on its output: record them against (a handle of) y, which the rebuilt
      // halves would give back up to rounding, instead of computing the product again
      const [m, bias] = this.foldForward(psi, w as Tensor)
      out = noGrad(() => y.reshape([...y.shape]))
      recordCatLinear([x1, y2], m, bias, out)
    } else out = this.catAffineAndPermute(x1, y2, psi, w)
    if (psi) logDet = logDet.add(psi.log().sum().mul(this.nPix))
    return {
      x: noGrad(() => ops.cat([x1Value, x2Value], 1)),
      leaves: [x1, x2],
      out,
      logDet,
      inputGrad: ([g1, g2]) => {
        if (!g1 && !g2) return null
        return noGrad(() => ops.cat([g1 ?? zeros([...x1.shape], { dtype: x1.dtype, device: x1.device }), g2 ?? zeros([...x2.shape], { dtype: x2.dtype, device: x2.device })], 1))
      },
    }
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }

  override extraRepr(): string {
    return `dims_in=[(${this.dimsIn[0].join(', ')})], clamp=${this.clamp}, gin=${this.gin}, global_affine_type=${this.affineType}, permutation=${this.householder > 0 ? `householder(${this.householder})` : this.permKind}`
  }
}
