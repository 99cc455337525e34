import { getMatmulPrecision, ops, setMatmulPrecision, tensor, Tensor, tidy } from '../../lib'
import { bindingFor, NativeTensor } from '../../lib/binding'
import { expectClose, expectCode, gradCheck, input, numel, randomValues, relErr } from '../helpers'

interface KernelBinding {
  setGemmKernel(name: string): void
  getGemmKernel(): string
  matmul(a: NativeTensor, b: NativeTensor): NativeTensor
  linear(x: NativeTensor, w: NativeTensor, bias: NativeTensor | null): NativeTensor
  linearBackward(g: NativeTensor, x: NativeTensor, w: NativeTensor, nx: boolean, nw: boolean, nb: boolean): unknown
  matmulBackward(g: NativeTensor, a: NativeTensor, b: NativeTensor, na: boolean, nb: boolean): unknown
}
const native = bindingFor<KernelBinding>()

// ---- plain-loop float64 references, independent of the kernels

/** torch.matmul on flat row-major arrays: 1-D promotion, broadcast batch dimensions. */
function matmulRef(a: number[], as: number[], b: number[], bs: number[]): { out: number[]; shape: number[] } {
  const aVec = as.length === 1
  const bVec = bs.length === 1
  const pa = aVec ? [1, as[0]] : as
  const pb = bVec ? [bs[0], 1] : bs
  const [M, K] = pa.slice(-2)
  const N = pb[pb.length - 1]
  const ab = pa.slice(0, -2)
  const bb = pb.slice(0, -2)
  const nd = Math.max(ab.length, bb.length)
  const fa = [...Array(nd - ab.length).fill(1), ...ab]
  const fb = [...Array(nd - bb.length).fill(1), ...bb]
  const batch = fa.map((d, i) => Math.max(d, fb[i]))
  const out: number[] = []
  for (let i = 0; i < numel(batch); i++) {
    // the matrix of a and of b that batch index i reads
    let rem = i
    let ia = 0
    let ib = 0
    let sa = 1
    let sb = 1
    for (let d = nd - 1; d >= 0; d--) {
      const idx = rem % batch[d]
      rem = Math.floor(rem / batch[d])
      ia += (fa[d] === 1 ? 0 : idx) * sa
      ib += (fb[d] === 1 ? 0 : idx) * sb
      sa *= fa[d]
      sb *= fb[d]
    }
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0
        for (let k = 0; k < K; k++) s += a[ia * M * K + m * K + k] * b[ib * K * N + k * N + n]
        out.push(s)
      }
  }
  const shape = [...batch, ...(aVec ? [] : [M]), ...(bVec ? [] : [N])]
  return { out, shape }
}

/** x (R, I) · w (O, I)ᵀ + bias. */
function linearRef(x: number[], rows: number, inF: number, w: number[], outF: number, bias: number[] | null): number[] {
  const y: number[] = []
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i]
      y.push(s)
    }
  return y
}

/** aᵀ·b for a (R, P) and b (R, Q) → (P, Q), and a·b for a (R, P), b (P, Q). */
function atb(a: number[], b: number[], R: number, P: number, Q: number): number[] {
  const out = new Array<number>(P * Q).fill(0)
  for (let r = 0; r < R; r++) for (let p = 0; p < P; p++) for (let q = 0; q < Q; q++) out[p * Q + q] += a[r * P + p] * b[r * Q + q]
  return out
}
function ab(a: number[], b: number[], R: number, P: number, Q: number): number[] {
  return matmulRef(a, [R, P], b, [P, Q]).out
}

const f64 = { dtype: 'float64' as const }
const f32 = { dtype: 'float32' as const }

function availableBackends(): ops.GemmBackend[] {
  const before = ops.getGemmBackend()
  try {
    ops.setGemmBackend('openblas')
    return ['openblas', 'builtin']
  } catch {
    return ['builtin']
  } finally {
    ops.setGemmBackend(before)
  }
}
const backends = availableBackends()
const initialBackend = ops.getGemmBackend()
afterAll(() => ops.setGemmBackend(initialBackend))

// [shape of a, shape of b]: matrices, vectors, batches with one or both sides broadcast
const matmulCases: [string, number[], number[]][] = [
  ['2-D non-square', [3, 5], [5, 4]],
  ['1-D · 1-D (dot)', [5], [5]],
  ['1-D · 2-D', [5], [5, 3]],
  ['2-D · 1-D', [4, 5], [5]],
  ['batched · 2-D', [2, 3, 4, 5], [5, 3]],
  ['2-D · batched', [3, 4], [2, 4, 5]],
  ['batched · 1-D', [2, 3, 4], [4]],
  ['1-D · batched', [4], [2, 4, 3]],
  ['batch dims broadcast on both sides', [2, 1, 3, 4], [3, 4, 2]],
  ['batch dims broadcast, middle stretched', [1, 3, 2, 4], [2, 1, 4, 3]],
]

describe.each(backends)('matmul with the %s GEMM', (backend) => {
  beforeAll(() => ops.setGemmBackend(backend))

  test.each(matmulCases)('%s %j · %j: reference, float32, gradients', (_name, as, bs) => {
    tidy(() => {
      const a = randomValues(numel(as), 1)
      const b = randomValues(numel(bs), 2)
      const ref = matmulRef(a, as, b, bs)
      const y = ops.matmul(tensor(a, as, f64), tensor(b, bs, f64))
      expect(y.shape).toEqual(ref.shape)
      expectClose(y, ref.out, 1e-13)
      const y32 = tensor(a, as, f32).matmul(tensor(b, bs, f32))
      expect(y32.dtype).toBe('float32')
      expectClose(y32, ref.out, 1e-5)
      gradCheck((p, q) => ops.matmul(p, q), [input(as, 3), input(bs, 4)])
    })
  })

  test('only the operands that require grad receive one', () => {
    tidy(() => {
      const a = tensor(randomValues(6, 5), [2, 3], { dtype: 'float64', requiresGrad: true })
      const b = tensor(randomValues(12, 6), [3, 4], f64)
      ops.matmul(a, b).sum().backward()
      expect(a.grad).not.toBeNull()
      expect(b.grad).toBeNull()
      // d/da Σ(a·b) = 1·bᵀ: every row of a's gradient holds the row sums of b
      const bv = randomValues(12, 6)
      const rowSums = [0, 1, 2].map((k) => bv[4 * k] + bv[4 * k + 1] + bv[4 * k + 2] + bv[4 * k + 3])
      expectClose(a.grad as Tensor, [...rowSums, ...rowSums], 1e-14)
    })
  })

  test('larger odd sizes: 130x70 · 70x90 and batched, float32 within 1e-5, float64 exact to rounding', () => {
    tidy(() => {
      for (const [as, bs] of [
        [[130, 70], [70, 90]],
        [[3, 33, 47], [3, 47, 29]],
        [[5, 31, 19], [19, 41]],
        [[2, 1, 17, 23], [1, 3, 23, 13]],
      ]) {
        const a = randomValues(numel(as), 7)
        const b = randomValues(numel(bs), 8)
        const ref = matmulRef(a, as, b, bs)
        expectClose(ops.matmul(tensor(a, as, f64), tensor(b, bs, f64)), ref.out, 1e-13)
        expectClose(ops.matmul(tensor(a, as, f32), tensor(b, bs, f32)), ref.out, 1e-5)
      }
    })
  })

  test('blocks beyond one cache block: long K, many rows, more than 4096 columns', () => {
    tidy(() => {
      for (const [as, bs] of [
        [[33, 777], [777, 41]],
        [[401, 150], [150, 37]],
        [[3, 5], [5, 4200]],
      ]) {
        const a = randomValues(numel(as), 9)
        const b = randomValues(numel(bs), 10)
        const ref = matmulRef(a, as, b, bs)
        expectClose(ops.matmul(tensor(a, as, f64), tensor(b, bs, f64)), ref.out, 1e-13)
        expectClose(ops.matmul(tensor(a, as, f32), tensor(b, bs, f32)), ref.out, 1e-5)
      }
    })
  })

  test('many small batched products (one per thread) and batch gradients summed over broadcast dims', () => {
    tidy(() => {
      const as = [16, 9, 7]
      const bs = [7, 11]
      const a = randomValues(numel(as), 11)
      const b = randomValues(numel(bs), 12)
      const ta = tensor(a, as, { dtype: 'float64', requiresGrad: true })
      const tb = tensor(b, [1, ...bs], { dtype: 'float64', requiresGrad: true })
      const y = ops.matmul(ta, tb)
      expectClose(y, matmulRef(a, as, b, bs).out, 1e-13)
      y.sum().backward()
      // d/db Σ(a·b) = aᵀ·1 summed over the batch: gb[k][n] = Σ_{batch, m} a[.., m, k]
      const colSums = new Array<number>(7).fill(0)
      for (let i = 0; i < 16 * 9; i++) for (let k = 0; k < 7; k++) colSums[k] += a[i * 7 + k]
      const expected = colSums.flatMap((s) => new Array<number>(11).fill(s))
      expect((tb.grad as Tensor).shape).toEqual([1, 7, 11])
      expectClose(tb.grad as Tensor, expected, 1e-13)
    })
  })
})

describe.each(backends)('linear with the %s GEMM', (backend) => {
  beforeAll(() => ops.setGemmBackend(backend))

  const cases: [string, number[], number, boolean][] = [
    ['2-D x with bias', [6, 4], 3, true],
    ['2-D x without bias', [5, 4], 7, false],
    ['3-D x with bias', [2, 3, 5], 4, true],
    ['3-D x without bias', [2, 3, 5], 2, false],
    ['1-D x', [5], 3, true],
  ]
  test.each(cases)('%s: reference, float32, gradients', (_name, xs, outF, withBias) => {
    tidy(() => {
      const inF = xs[xs.length - 1]
      const rows = numel(xs) / inF
      const x = randomValues(numel(xs), 21)
      const w = randomValues(outF * inF, 22)
      const bias = withBias ? randomValues(outF, 23) : null
      const ref = linearRef(x, rows, inF, w, outF, bias)
      const y = ops.linear(tensor(x, xs, f64), tensor(w, [outF, inF], f64), bias ? tensor(bias, [outF], f64) : undefined)
      expect(y.shape).toEqual([...xs.slice(0, -1), outF])
      expectClose(y, ref, 1e-13)
      const y32 = ops.linear(tensor(x, xs, f32), tensor(w, [outF, inF], f32), bias ? tensor(bias, [outF], f32) : null)
      expectClose(y32, ref, 1e-5)
      const inputs = [input(xs, 24), input([outF, inF], 25), ...(withBias ? [input([outF], 26)] : [])]
      gradCheck((...t) => ops.linear(t[0], t[1], t[2]), inputs)
    })
  })

  test('larger odd sizes (130x70 · (90x70)ᵀ + b): forward and every gradient against references', () => {
    tidy(() => {
      const [R, I, O] = [130, 70, 90]
      const x = randomValues(R * I, 31)
      const w = randomValues(O * I, 32)
      const b = randomValues(O, 33)
      const g = randomValues(R * O, 34)
      const ref = linearRef(x, R, I, w, O, b)
      const gxRef = ab(g, w, R, O, I)
      const gwRef = atb(g, x, R, O, I)
      const gbRef = Array.from({ length: O }, (_, o) => g.reduce((s, v, i) => (i % O === o ? s + v : s), 0))
      for (const [opts, tol] of [[f64, 1e-13], [f32, 1e-5]] as const) {
        const tx = tensor(x, [R, I], { ...opts, requiresGrad: true })
        const tw = tensor(w, [O, I], { ...opts, requiresGrad: true })
        const tb = tensor(b, [O], { ...opts, requiresGrad: true })
        const y = ops.linear(tx, tw, tb)
        expectClose(y, ref, tol)
        y.backward(tensor(g, [R, O], opts))
        expectClose(tx.grad as Tensor, gxRef, tol)
        expectClose(tw.grad as Tensor, gwRef, tol)
        expectClose(tb.grad as Tensor, gbRef, tol)
      }
    })
  })
})

describe('the two GEMM backends agree', () => {
  afterAll(() => ops.setGemmBackend(initialBackend))

  test('builtin and OpenBLAS on larger random products (float32 within 1e-5 of each other and of float64)', () => {
    if (backends.length < 2) return // this build has no OpenBLAS: nothing to compare
    tidy(() => {
      const results: Record<string, Float32Array | Float64Array>[] = []
      const a = randomValues(130 * 70, 41)
      const b = randomValues(70 * 90, 42)
      const w = randomValues(90 * 70, 43)
      const ref = matmulRef(a, [130, 70], b, [70, 90]).out
      for (const backend of backends) {
        ops.setGemmBackend(backend)
        const r: Record<string, Float32Array | Float64Array> = {}
        for (const [name, opts] of [['f32', f32], ['f64', f64]] as const) {
          r[`mm${name}`] = ops.matmul(tensor(a, [130, 70], opts), tensor(b, [70, 90], opts)).toArray()
          r[`lin${name}`] = ops.linear(tensor(a, [130, 70], opts), tensor(w, [90, 70], opts)).toArray()
        }
        results.push(r)
      }
      const [ob, bi] = results
      expect(relErr(ob.mmf32, bi.mmf32)).toBeLessThanOrEqual(1e-5)
      expect(relErr(ob.linf32, bi.linf32)).toBeLessThanOrEqual(1e-5)
      expect(relErr(ob.mmf64, bi.mmf64)).toBeLessThanOrEqual(1e-13)
      expect(relErr(ob.linf64, bi.linf64)).toBeLessThanOrEqual(1e-13)
      expectClose(bi.mmf32, ref, 1e-5)
      expectClose(ob.mmf32, ref, 1e-5)
    })
  })

  // [rows, in, out]: square-ish; few outputs (dot-product kernel; few-row micro-kernel for the weight gradient);
  // few inputs (transposed tiles for the weight gradient); few rows; long k
  const linearShapes: [number, number, number][] = [
    [67, 45, 53],
    [130, 70, 3],
    [130, 3, 90],
    [3, 50, 70],
    [9, 700, 11],
  ]
  test('every built-in micro-kernel this CPU runs gives the reference for all transposes and narrow shapes', () => {
    const initialKernel = native.getGemmKernel()
    ops.setGemmBackend('builtin')
    try {
      tidy(() => {
        for (const [R, I, O] of linearShapes) {
          const x = randomValues(R * I, 51)
          const w = randomValues(O * I, 52)
          const b = randomValues(O, 53)
          const g = randomValues(R * O, 54)
          const yRef = linearRef(x, R, I, w, O, b) // x·wᵀ (B transposed)
          const gxRef = ab(g, w, R, O, I) // g·w (no transposes)
          const gwRef = atb(g, x, R, O, I) // gᵀ·x (A transposed)
          for (const kernel of ['generic', 'avx2', 'avx512']) {
            try {
              native.setGemmKernel(kernel)
            } catch {
              continue // not supported by this CPU
            }
            for (const [opts, tol] of [[f64, 1e-13], [f32, 1e-5]] as const) {
              const tx = tensor(x, [R, I], { ...opts, requiresGrad: true })
              const tw = tensor(w, [O, I], { ...opts, requiresGrad: true })
              const y = ops.linear(tx, tw, tensor(b, [O], opts))
              expectClose(y, yRef, tol)
              y.backward(tensor(g, [R, O], opts))
              expectClose(tx.grad as Tensor, gxRef, tol)
              expectClose(tw.grad as Tensor, gwRef, tol)
              // vector operands: a product with one column, and one with one row
              expectClose(ops.matmul(tensor(x, [R, I], opts), tensor(w.slice(0, I), [I], opts)), matmulRef(x, [R, I], w, [I]).out, tol)
              expectClose(ops.matmul(tensor(x.slice(0, I), [I], opts), tensor(w, [I, O], opts)), matmulRef(x, [I], w, [I, O]).out, tol)
            }
          }
        }
      })
    } finally {
      native.setGemmKernel(initialKernel)
      ops.setGemmBackend(initialBackend)
    }
  })
})

describe('matmul and linear: bad input', () => {
  test('errors carry codes and name both shapes', () => {
    tidy(() => {
      const a = tensor(randomValues(6, 1), [2, 3], f64)
      const b = tensor(randomValues(8, 2), [4, 2], f64)
      expectCode(() => ops.matmul(a, b), 'ERR_SHAPE')
      expect(() => ops.matmul(a, b)).toThrow('matmul: a [2, 3] has 3 columns but b [4, 2] has 4 rows')
      expectCode(() => ops.matmul(tensor([1], [], f64), a), 'ERR_SHAPE')
      expectCode(() => ops.matmul(tensor(randomValues(24, 3), [2, 3, 4], f64), tensor(randomValues(36, 4), [3, 4, 3], f64)), 'ERR_SHAPE')
      expectCode(() => ops.matmul(a, tensor(randomValues(6, 2), [3, 2], f32)), 'ERR_DTYPE')
      expectCode(() => ops.matmul(a, [1, 2] as unknown as Tensor), 'ERR_ARGUMENT')
      const gone = tensor(randomValues(6, 2), [3, 2], f64)
      gone.dispose()
      expectCode(() => ops.matmul(a, gone), 'ERR_DISPOSED')

      const x = tensor(randomValues(10, 5), [2, 5], f64)
      const w = tensor(randomValues(12, 6), [3, 4], f64)
      expectCode(() => ops.linear(x, w), 'ERR_SHAPE')
      expect(() => ops.linear(x, w)).toThrow('linear: x [2, 5] has 5 features but weight [3, 4] expects 4')
      const x4 = tensor(randomValues(8, 5), [2, 4], f64)
      expectCode(() => ops.linear(x4, w, tensor([1, 2], [2], f64)), 'ERR_SHAPE')
      expectCode(() => ops.linear(x4, tensor([1, 2, 3, 4], [4], f64)), 'ERR_SHAPE')
      expectCode(() => ops.linear(x4, w, tensor([1, 2, 3], [3], f32)), 'ERR_DTYPE')
      expectCode(() => ops.linear(x4, w, 3 as unknown as Tensor), 'ERR_ARGUMENT')
      expectCode(() => ops.setGemmBackend('mkl' as ops.GemmBackend), 'ERR_ARGUMENT')
      expectCode(() => native.setGemmKernel('sse9'), 'ERR_ARGUMENT')
    })
  })

  test('the native layer re-checks shapes itself and throws instead of reading out of bounds', () => {
    tidy(() => {
      const a = tensor(randomValues(6, 1), [2, 3], f64)
      const b = tensor(randomValues(8, 2), [4, 2], f64)
      const c = tensor(randomValues(6, 2), [3, 2], f64)
      expectCode(() => native.matmul(a.handle, b.handle), 'ERR_SHAPE')
      expectCode(() => native.matmul(a.handle, tensor([1, 2], [2], f32).handle), 'ERR_DTYPE')
      expectCode(() => native.matmulBackward(a.handle, a.handle, c.handle, true, true), 'ERR_SHAPE')
      expectCode(() => native.linear(a.handle, b.handle, null), 'ERR_SHAPE')
      expectCode(() => native.linear(a.handle, tensor(randomValues(12, 3), [4, 3], f64).handle, a.handle), 'ERR_SHAPE')
      expectCode(() => native.linearBackward(a.handle, a.handle, tensor(randomValues(12, 3), [4, 3], f64).handle, true, true, true), 'ERR_SHAPE')
      expectCode(() => native.matmul(a.handle, 5 as unknown as NativeTensor), 'ERR_ARGUMENT')
    })
  })

  test('empty dimensions give empty or zero results', () => {
    tidy(() => {
      const y = ops.matmul(tensor([], [3, 0], f64), tensor([], [0, 4], f64))
      expect(y.shape).toEqual([3, 4])
      expectClose(y, new Array<number>(12).fill(0), 0)
      expect(ops.matmul(tensor([], [0, 2], f64), tensor([1, 2, 3, 4], [2, 2], f64)).shape).toEqual([0, 2])
      const z = ops.linear(tensor([], [2, 0], f64), tensor([], [3, 0], f64), tensor([1, 2, 3], [3], f64))
      expectClose(z, [1, 2, 3, 1, 2, 3], 0)
    })
  })
})

describe('setMatmulPrecision', () => {
  afterEach(() => setMatmulPrecision('highest'))
  test("'highest' by default; set/get round-trip; anything else is ERR_ARGUMENT and changes nothing", () => {
    expect(getMatmulPrecision()).toBe('highest')
    setMatmulPrecision('high')
    expect(getMatmulPrecision()).toBe('high')
    expectCode(() => setMatmulPrecision('low' as never), 'ERR_ARGUMENT')
    expect(getMatmulPrecision()).toBe('high')
    setMatmulPrecision('medium')
    expect(getMatmulPrecision()).toBe('medium')
  })
  test('the CPU computes float32 products in float32 whatever the precision', () => {
    tidy(() => {
      const a = tensor(randomValues(64 * 48, 3), [64, 48])
      const b = tensor(randomValues(48 * 32, 4), [48, 32])
      const want = ops.matmul(a, b).toArray()
      for (const p of ['high', 'medium'] as const) {
        setMatmulPrecision(p)
        expect(Array.from(ops.matmul(a, b).toArray())).toEqual(Array.from(want))
      }
    })
  })
})
