import { ops, tensor, Tensor, tidy } from '../../lib'
import { bindingFor, NativeTensor } from '../../lib/binding'
import { expectClose, expectCode, gradCheck, input, numel, randomValues, relErr } from '../helpers'

interface ConvNative {
  conv2d(x: NativeTensor, w: NativeTensor, b: NativeTensor | null, sh: number, sw: number, ph: number, pw: number): NativeTensor
  conv2dBackward(g: NativeTensor, x: NativeTensor, w: NativeTensor, sh: number, sw: number, ph: number, pw: number, nx: boolean, nw: boolean, nb: boolean): unknown
}
const native = bindingFor<ConvNative>()

const f64 = { dtype: 'float64' as const }
const f32 = { dtype: 'float32' as const }

interface Geometry {
  xs: number[] // N, C, H, W
  ws: number[] // O, C, KH, KW
  stride: [number, number]
  padding: [number, number]
}

function outSize({ xs, ws, stride, padding }: Geometry): number[] {
  return [xs[0], ws[0], Math.floor((xs[2] + 2 * padding[0] - ws[2]) / stride[0]) + 1, Math.floor((xs[3] + 2 * padding[1] - ws[3]) / stride[1]) + 1]
}

/** The definition, with zero padding by bounds checks: y[n,o,i,j] = b[o] + Σ x[n,c,i·s−p+u, j·s−p+v]·w[o,c,u,v]. */
function convRef(x: number[], w: number[], b: number[] | null, geo: Geometry): number[] {
  const [N, C, H, W] = geo.xs
  const [O, , KH, KW] = geo.ws
  const [, , HO, WO] = outSize(geo)
  const y: number[] = []
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let i = 0; i < HO; i++)
        for (let j = 0; j < WO; j++) {
          let s = b ? b[o] : 0
          for (let c = 0; c < C; c++)
            for (let u = 0; u < KH; u++)
              for (let v = 0; v < KW; v++) {
                const h = i * geo.stride[0] - geo.padding[0] + u
                const ww = j * geo.stride[1] - geo.padding[1] + v
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue
                s += x[((n * C + c) * H + h) * W + ww] * w[((o * C + c) * KH + u) * KW + v]
              }
          y.push(s)
        }
  return y
}

/** Gradients of Σ y·g by the same loops, accumulated term by term. */
function convGradRef(x: number[], w: number[], g: number[], geo: Geometry): { gx: number[]; gw: number[]; gb: number[] } {
  const [N, C, H, W] = geo.xs
  const [O, , KH, KW] = geo.ws
  const [, , HO, WO] = outSize(geo)
  const gx = new Array<number>(x.length).fill(0)
  const gw = new Array<number>(w.length).fill(0)
  const gb = new Array<number>(O).fill(0)
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let i = 0; i < HO; i++)
        for (let j = 0; j < WO; j++) {
          const gv = g[((n * O + o) * HO + i) * WO + j]
          gb[o] += gv
          for (let c = 0; c < C; c++)
            for (let u = 0; u < KH; u++)
              for (let v = 0; v < KW; v++) {
                const h = i * geo.stride[0] - geo.padding[0] + u
                const ww = j * geo.stride[1] - geo.padding[1] + v
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue
                const xi = ((n * C + c) * H + h) * W + ww
                const wi = ((o * C + c) * KH + u) * KW + v
                gx[xi] += gv * w[wi]
                gw[wi] += gv * x[xi]
              }
        }
  return { gx, gw, gb }
}

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

const g = (xs: number[], ws: number[], stride: [number, number], padding: [number, number]): Geometry => ({ xs, ws, stride, padding })
const cases: [string, Geometry, boolean][] = [
  ['3x3, padding 1, bias', g([2, 3, 5, 6], [4, 3, 3, 3], [1, 1], [1, 1]), true],
  ['1x1 (no im2col)', g([2, 3, 4, 5], [5, 3, 1, 1], [1, 1], [0, 0]), false],
  ['1x1 with bias', g([3, 2, 3, 3], [4, 2, 1, 1], [1, 1], [0, 0]), true],
  ['1x1, stride 2', g([2, 3, 5, 5], [4, 3, 1, 1], [2, 2], [0, 0]), true],
  ['stride 2, padding 1', g([2, 2, 7, 7], [3, 2, 3, 3], [2, 2], [1, 1]), true],
  ['non-square kernel, stride [1, 2], padding [1, 0]', g([1, 2, 5, 7], [3, 2, 2, 3], [1, 2], [1, 0]), false],
  ['odd sizes, stride [2, 3], padding [2, 1]', g([3, 3, 9, 7], [2, 3, 3, 5], [2, 3], [2, 1]), true],
  ['one sample, 3x3 valid', g([1, 4, 6, 5], [2, 4, 3, 3], [1, 1], [0, 0]), true],
  ['kernel as large as the padded input', g([2, 1, 3, 2], [2, 1, 5, 4], [1, 1], [1, 1]), true],
]

describe.each(backends)('conv2d with the %s GEMM', (backend) => {
  beforeAll(() => ops.setGemmBackend(backend))

  test.each(cases)('%s: reference, float32, gradients', (_name, geo, withBias) => {
    tidy(() => {
      const x = randomValues(numel(geo.xs), 1)
      const w = randomValues(numel(geo.ws), 2)
      const b = withBias ? randomValues(geo.ws[0], 3) : null
      const opts = { stride: geo.stride, padding: geo.padding }
      const ref = convRef(x, w, b, geo)
      const y = ops.conv2d(tensor(x, geo.xs, f64), tensor(w, geo.ws, f64), b ? tensor(b, [geo.ws[0]], f64) : null, opts)
      expect(y.shape).toEqual(outSize(geo))
      expectClose(y, ref, 1e-13)
      const y32 = ops.conv2d(tensor(x, geo.xs, f32), tensor(w, geo.ws, f32), b ? tensor(b, [geo.ws[0]], f32) : undefined, opts)
      expect(y32.dtype).toBe('float32')
      expectClose(y32, ref, 1e-5)
      const inputs = [input(geo.xs, 4), input(geo.ws, 5), ...(withBias ? [input([geo.ws[0]], 6)] : [])]
      gradCheck((...t) => ops.conv2d(t[0], t[1], t[2], opts), inputs)
    })
  })

  test('numbers as stride and padding mean both dimensions; defaults are stride 1, no padding', () => {
    tidy(() => {
      const geo = g([2, 2, 6, 6], [3, 2, 3, 3], [2, 2], [1, 1])
      const x = randomValues(numel(geo.xs), 7)
      const w = randomValues(numel(geo.ws), 8)
      expectClose(ops.conv2d(tensor(x, geo.xs, f64), tensor(w, geo.ws, f64), null, { stride: 2, padding: 1 }), convRef(x, w, null, geo), 1e-13)
      const plain = g([2, 2, 6, 6], [3, 2, 3, 3], [1, 1], [0, 0])
      expectClose(ops.conv2d(tensor(x, geo.xs, f64), tensor(w, geo.ws, f64)), convRef(x, w, null, plain), 1e-13)
    })
  })

  test('larger layer (N 5, 8→16 channels, 17x19, 3x3, padding 1): forward and backward against references', () => {
    tidy(() => {
      const geo = g([5, 8, 17, 19], [16, 8, 3, 3], [1, 1], [1, 1])
      const x = randomValues(numel(geo.xs), 11)
      const w = randomValues(numel(geo.ws), 12)
      const b = randomValues(16, 13)
      const gy = randomValues(numel(outSize(geo)), 14)
      const ref = convRef(x, w, b, geo)
      const grads = convGradRef(x, w, gy, geo)
      for (const [opts, tol] of [[f64, 1e-13], [f32, 1e-5]] as const) {
        const tx = tensor(x, geo.xs, { ...opts, requiresGrad: true })
        const tw = tensor(w, geo.ws, { ...opts, requiresGrad: true })
        const tb = tensor(b, [16], { ...opts, requiresGrad: true })
        const y = ops.conv2d(tx, tw, tb, { padding: 1 })
        expectClose(y, ref, tol)
        y.backward(tensor(gy, outSize(geo), opts))
        expectClose(tx.grad as Tensor, grads.gx, tol)
        expectClose(tw.grad as Tensor, grads.gw, tol)
        expectClose(tb.grad as Tensor, grads.gb, tol)
      }
    })
  })

  test('only the inputs that require grad receive one', () => {
    tidy(() => {
      const geo = g([2, 2, 4, 4], [3, 2, 3, 3], [1, 1], [1, 1])
      const x = tensor(randomValues(numel(geo.xs), 15), geo.xs, f64)
      const w = tensor(randomValues(numel(geo.ws), 16), geo.ws, { dtype: 'float64', requiresGrad: true })
      const b = tensor(randomValues(3, 17), [3], f64)
      ops.conv2d(x, w, b, { padding: 1 }).sum().backward()
      expect(x.grad).toBeNull()
      expect(b.grad).toBeNull()
      expect((w.grad as Tensor).shape).toEqual(geo.ws)
    })
  })
})

describe('conv2d across backends', () => {
  // 4 samples take the per-sample path (one sample per thread) wherever there are at most 4 threads, 1 sample
  // the sequential path with threaded im2col and GEMMs
  test.each([4, 1])('builtin and OpenBLAS agree with the references and each other (batch of %i)', (batch) => {
    try {
      tidy(() => {
        const geo = g([batch, 6, 11, 13], [10, 6, 3, 3], [2, 1], [1, 2])
        const x = randomValues(numel(geo.xs), 21)
        const w = randomValues(numel(geo.ws), 22)
        const b = randomValues(10, 23)
        const gy = randomValues(numel(outSize(geo)), 24)
        const ref = convRef(x, w, b, geo)
        const grads = convGradRef(x, w, gy, geo)
        const flat = [...ref, ...grads.gx, ...grads.gw, ...grads.gb]
        const runs: Float32Array[] = []
        for (const backend of backends) {
          ops.setGemmBackend(backend)
          for (const opts of [f64, f32]) {
            const tx = tensor(x, geo.xs, { ...opts, requiresGrad: true })
            const tw = tensor(w, geo.ws, { ...opts, requiresGrad: true })
            const tb = tensor(b, [10], { ...opts, requiresGrad: true })
            const y = ops.conv2d(tx, tw, tb, { stride: [2, 1], padding: [1, 2] })
            y.backward(tensor(gy, y.shape as number[], opts))
            const got = [y, tx.grad, tw.grad, tb.grad].flatMap((t) => Array.from((t as Tensor).toArray()))
            expectClose(got, flat, opts === f64 ? 1e-13 : 1e-5)
            if (opts === f32) runs.push(Float32Array.from(got))
          }
        }
        for (const r of runs) expect(relErr(r, runs[0])).toBeLessThanOrEqual(1e-5)
      })
    } finally {
      ops.setGemmBackend(initialBackend)
    }
  })
})

describe('conv2d: bad input', () => {
  test('errors carry codes and name the shapes', () => {
    tidy(() => {
      const x = tensor(randomValues(2 * 3 * 5 * 5, 1), [2, 3, 5, 5], f64)
      const w = tensor(randomValues(4 * 3 * 3 * 3, 2), [4, 3, 3, 3], f64)
      expectCode(() => ops.conv2d(tensor(randomValues(75, 1), [3, 5, 5], f64), w), 'ERR_SHAPE')
      expectCode(() => ops.conv2d(x, tensor(randomValues(36, 2), [4, 3, 3], f64)), 'ERR_SHAPE')
      const w2 = tensor(randomValues(4 * 2 * 9, 2), [4, 2, 3, 3], f64)
      expectCode(() => ops.conv2d(x, w2), 'ERR_SHAPE')
      expect(() => ops.conv2d(x, w2)).toThrow('conv2d: x [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2')
      expectCode(() => ops.conv2d(x, w, tensor([1, 2, 3], [3], f64)), 'ERR_SHAPE')
      expectCode(() => ops.conv2d(x, tensor(randomValues(4 * 3 * 36, 2), [4, 3, 6, 6], f64)), 'ERR_SHAPE')
      expectCode(() => ops.conv2d(x, w, null, { stride: 0 }), 'ERR_ARGUMENT')
      expectCode(() => ops.conv2d(x, w, null, { stride: 1.5 }), 'ERR_ARGUMENT')
      expectCode(() => ops.conv2d(x, w, null, { padding: -1 }), 'ERR_ARGUMENT')
      expectCode(() => ops.conv2d(x, w, null, { stride: [1] as unknown as [number, number] }), 'ERR_ARGUMENT')
      expectCode(() => ops.conv2d(x, w, null, 'same' as unknown as ops.Conv2dOptions), 'ERR_ARGUMENT')
      expectCode(() => ops.conv2d(x, tensor(randomValues(108, 2), [4, 3, 3, 3], f32)), 'ERR_DTYPE')
      expectCode(() => ops.conv2d(x, w, tensor([1, 2, 3, 4], [4], f32)), 'ERR_DTYPE')
      expectCode(() => ops.conv2d(x, 'w' as unknown as Tensor), 'ERR_ARGUMENT')
      const gone = tensor(randomValues(108, 2), [4, 3, 3, 3], f64)
      gone.dispose()
      expectCode(() => ops.conv2d(x, gone), 'ERR_DISPOSED')
    })
  })

  test('the native layer re-checks its arguments and throws instead of reading out of bounds', () => {
    tidy(() => {
      const x = tensor(randomValues(2 * 3 * 5 * 5, 1), [2, 3, 5, 5], f64)
      const w = tensor(randomValues(4 * 3 * 3 * 3, 2), [4, 3, 3, 3], f64)
      expectCode(() => native.conv2d(x.handle, w.handle, null, 0, 1, 0, 0), 'ERR_ARGUMENT')
      expectCode(() => native.conv2d(x.handle, w.handle, null, 1, 1, -1, 0), 'ERR_ARGUMENT')
      expectCode(() => native.conv2d(x.handle, tensor(randomValues(16, 1), [1, 1, 4, 4], f64).handle, null, 1, 1, 0, 0), 'ERR_SHAPE')
      expectCode(() => native.conv2d(x.handle, w.handle, tensor([1], [1], f64).handle, 1, 1, 0, 0), 'ERR_SHAPE')
      expectCode(() => native.conv2d(x.handle, tensor(randomValues(4 * 3 * 64, 1), [4, 3, 8, 8], f64).handle, null, 1, 1, 0, 0), 'ERR_SHAPE')
      // a gradient of the wrong shape
      expectCode(() => native.conv2dBackward(x.handle, x.handle, w.handle, 1, 1, 0, 0, true, true, true), 'ERR_SHAPE')
    })
  })
})
