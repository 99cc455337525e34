/**
 * PermuteRandom (FrEIA's `PermuteRandom`): a fixed random permutation of the channels (axis 1), for inputs of
 * any rank. Forward out[:, i] = x[:, perm[i]]; reverse uses perm_inv (perm_inv[perm[i]] = i). log|det J| = 0.
 *
 * State-dict keys: `perm`, `perm_inv` (C,), buffers holding integer indices as floats of the default dtype
 * (innflow has no integer dtype; FrEIA stores int64 non-trainable parameters).
 *
 * The permutation: FrEIA draws it with NumPy (`np.random.permutation`, after `np.random.seed(seed)` when a seed
 * is given, which resets NumPy's global generator as a side effect). innflow cannot reproduce NumPy's stream;
 * it draws from its own generator (`randperm`) when no seed is given, and with a `seed` it computes the
 * permutation that `manualSeed(seed); randperm(C)` would give, on a private copy of the generator, so the
 * global generator (and with it every later initialisation) is left untouched. A FrEIA checkpoint loads its own
 * permutation through the state dict.
 */
import { argumentError, InnflowError } from '../errors'
import { getDefaultDtype } from '../dtype'
import { randperm, tensor, Tensor } from '../tensor'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

/** Options of {@link PermuteRandom}. */
export interface PermuteRandomOptions extends InvertibleModuleOptions {
  /**
   * Makes the permutation a function of the seed alone: the one `manualSeed(seed); randperm(C)` gives (without
   * touching the global generator). Without it the permutation comes from the global generator.
   */
  seed?: number
}

const OPTION_NAMES = ['dimsC', 'seed']

const MASK32 = 0xffffffffn
const MASK64 = (1n << 64n) - 1n

/** One Philox-4x32 round (the constants of native/cpu/random.cc). */
function philoxRound(ctr: number[], key: number[]): void {
  const p0 = 0xd2511f53n * BigInt(ctr[0])
  const p1 = 0xcd9e8d57n * BigInt(ctr[2])
  const hi0 = Number(p0 >> 32n)
  const lo0 = Number(p0 & MASK32)
  const hi1 = Number(p1 >> 32n)
  const lo1 = Number(p1 & MASK32)
  const c1 = ctr[1]
  const c3 = ctr[3]
  ctr[0] = (hi1 ^ c1 ^ key[0]) >>> 0
  ctr[1] = lo1
  ctr[2] = (hi0 ^ c3 ^ key[1]) >>> 0
  ctr[3] = lo0
}

/** Philox-4x32-10 of the counter (block, 0) under a 64-bit key: four 32-bit outputs. */
function philox(seed: bigint, block: number): number[] {
  const ctr = [block >>> 0, Math.floor(block / 2 ** 32) >>> 0, 0, 0]
  const key = [Number(seed & MASK32), Number(seed >> 32n)]
  for (let r = 0; r < 10; r++) {
    philoxRound(ctr, key)
    if (r < 9) {
      key[0] = (key[0] + 0x9e3779b9) >>> 0
      key[1] = (key[1] + 0xbb67ae85) >>> 0
    }
  }
  return ctr
}

/**
 * The permutation of 0..n−1 that `manualSeed(seed); randperm(n)` draws (Fisher–Yates on innflow's Philox
 * stream), computed without touching the global generator.
 */
export function seededPermutation(n: number, seed: number): number[] {
  const key = (BigInt(seed) * 0x9e3779b97f4a7c15n + 0x2545f4914f6cdd1dn) & MASK64
  const perm = Array.from({ length: n }, (_, i) => i)
  let cached = -1
  let r: number[] = []
  for (let i = n - 1; i > 0; i--) {
    const block = Math.floor(i / 4)
    if (block !== cached) {
      r = philox(key, block)
      cached = block
    }
    let j = Math.floor(((r[i % 4] + 0.5) / 4294967296) * (i + 1))
    if (j > i) j = i
    const tmp = perm[i]
    perm[i] = perm[j]
    perm[j] = tmp
  }
  return perm
}

/**
 * A fixed random permutation of the channels.
 * @example
 * inn.append(modules.PermuteRandom, { seed: k })
 */
export class PermuteRandom extends InvertibleModule {
  /** The permutation (C,): out[:, i] = x[:, perm[i]]. */
  readonly perm: Tensor
  /** Its inverse (C,). */
  readonly permInv: Tensor

  constructor(dimsIn: Dims[], opts: PermuteRandomOptions = {}) {
    super(dimsIn, opts)
    for (const key of Object.keys(opts))
      if (!OPTION_NAMES.includes(key)) throw new InnflowError('ERR_ARGUMENT', `PermuteRandom: unknown option '${key}' (options are ${OPTION_NAMES.join(', ')})`)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `PermuteRandom: expected exactly one input, got ${this.dimsIn.length}`)
    if (this.dimsC.length > 0) throw new InnflowError('ERR_ARGUMENT', 'PermuteRandom takes no conditions (dimsC must be empty)')
    const channels = this.dimsIn[0][0]
    const dtype = getDefaultDtype()
    let p: number[]
    if (opts.seed === undefined || opts.seed === null) p = Array.from(randperm(channels, { dtype: 'float64' }).toArray())
    else {
      if (typeof opts.seed !== 'number' || !Number.isSafeInteger(opts.seed) || opts.seed < 0)
        throw argumentError('PermuteRandom', 'seed', 'a non-negative integer', opts.seed)
      p = seededPermutation(channels, opts.seed)
    }
    const inv = new Array<number>(channels)
    p.forEach((v, i) => (inv[v] = i))
    this.perm = this.registerBuffer('perm', tensor(p, [channels], { dtype }))
    this.permInv = this.registerBuffer('perm_inv', tensor(inv, [channels], { dtype }))
  }

  /** Permutes the channels (forward) or undoes it (rev); log-det 0. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    if (c && c.length > 0) throw new InnflowError('ERR_ARGUMENT', 'PermuteRandom takes no conditions (got conditions)')
    this.checkInputs(x)
    return [[x[0].indexSelect(1, rev ? this.permInv : this.perm)], 0]
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }

  override extraRepr(): string {
    return `dims_in=[(${this.dimsIn[0].join(', ')})]`
  }
}
