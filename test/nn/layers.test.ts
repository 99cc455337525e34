import { manualSeed, nn, tensor, Tensor, tidy } from '../../lib'
import { expectClose, expectCode, gradCheck, input, numel, randomValues } from '../helpers'

// Plain-loop float64 references, written independently of the kernels.

/** y[n, o] = Σ_i x[n, i] W[o, i] + b[o] over the flattened leading dimensions. */
function linearRef(x: number[], rows: number, w: number[], b: number[] | null, inF: number, outF: number): number[] {
  const y: number[] = []
  for (let n = 0; n < rows; n++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0
      for (let i = 0; i < inF; i++) s += x[n * inF + i] * w[o * inF + i]
      y.push(s)
    }
  return y
}

interface ConvGeom { N: number; C: number; H: number; W: number; O: number; kh: number; kw: number; sh: number; sw: number; ph: number; pw: number }
const outSize = (g: ConvGeom): [number, number] => [Math.floor((g.H + 2 * g.ph - g.kh) / g.sh) + 1, Math.floor((g.W + 2 * g.pw - g.kw) / g.sw) + 1]

/** Cross-correlation with zero padding, as torch.nn.Conv2d. */
function conv2dRef(x: number[], w: number[], b: number[] | null, g: ConvGeom): number[] {
  const [OH, OW] = outSize(g)
  const y: number[] = []
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = b ? b[o] : 0
          for (let c = 0; c < g.C; c++)
            for (let i = 0; i < g.kh; i++)
              for (let j = 0; j < g.kw; j++) {
                const h = oh * g.sh - g.ph + i
                const ww = ow * g.sw - g.pw + j
                if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) continue
                s += x[((n * g.C + c) * g.H + h) * g.W + ww] * w[((o * g.C + c) * g.kh + i) * g.kw + j]
              }
          y.push(s)
        }
  return y
}

/** dL/dW and dL/db of conv2d for L = Σ y·r. */
function conv2dParamGradRef(x: number[], r: number[], g: ConvGeom): [number[], number[]] {
  const [OH, OW] = outSize(g)
  const gw = new Array(g.O * g.C * g.kh * g.kw).fill(0)
  const gb = new Array(g.O).fill(0)
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const rv = r[((n * g.O + o) * OH + oh) * OW + ow]
          gb[o] += rv
          for (let c = 0; c < g.C; c++)
            for (let i = 0; i < g.kh; i++)
              for (let j = 0; j < g.kw; j++) {
                const h = oh * g.sh - g.ph + i
                const ww = ow * g.sw - g.pw + j
                if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) continue
                gw[((o * g.C + c) * g.kh + i) * g.kw + j] += rv * x[((n * g.C + c) * g.H + h) * g.W + ww]
              }
        }
  return [gw, gb]
}

describe('Linear', () => {
  test.each([
    [[4, 3], 5, true],
    [[2, 5, 3], 2, true],
    [[7, 3], 1, false],
    [[3], 4, true],
  ] as [number[], number, boolean][])('x %j -> %i features (bias %s): float64 matches loops, float32 agrees, parameter gradients', (shape, outF, bias) => {
    tidy(() => {
      manualSeed(7)
      const inF = shape[shape.length - 1]
      const rows = numel(shape) / inF
      const lin = new nn.Linear(inF, outF, { bias, dtype: 'float64' })
      const xv = randomValues(numel(shape), 3)
      const x = tensor(xv, shape, { dtype: 'float64', requiresGrad: true })
      const y = lin.forward(x)
      expect(y.shape).toEqual([...shape.slice(0, -1), outF])
      const w = Array.from(lin.weight.toArray())
      const b = lin.bias ? Array.from(lin.bias.toArray()) : null
      expectClose(y, linearRef(xv, rows, w, b, inF, outF), 1e-14)
      // float32 copy of the same layer
      const lin32 = new nn.Linear(inF, outF, { bias, dtype: 'float32' })
      lin32.loadStateDict(lin.stateDict())
      expectClose(lin32.forward(tensor(xv, shape, { dtype: 'float32' })), y.toArray(), 1e-5)
      // parameter gradients of L = Σ y·r: dW = rᵀx, db = Σ r
      const r = randomValues(y.size, 5)
      y.mul(tensor(r, [...y.shape], { dtype: 'float64' })).sum().backward()
      const gw = new Array(outF * inF).fill(0)
      const gb = new Array(outF).fill(0)
      for (let n = 0; n < rows; n++)
        for (let o = 0; o < outF; o++) {
          gb[o] += r[n * outF + o]
          for (let i = 0; i < inF; i++) gw[o * inF + i] += r[n * outF + o] * xv[n * inF + i]
        }
      expectClose(lin.weight.grad as Tensor, gw, 1e-14)
      if (lin.bias) expectClose(lin.bias.grad as Tensor, gb, 1e-14)
      // input gradient against finite differences
      gradCheck((xx) => lin.forward(xx), [input(shape, 9)])
    })
  })

  test('shape and dtype mismatches are refused', () => {
    tidy(() => {
      const lin = new nn.Linear(3, 2)
      expectCode(() => lin.forward(tensor(randomValues(8, 1), [2, 4])), 'ERR_SHAPE')
      expectCode(() => lin.forward(tensor(randomValues(6, 1), [2, 3], { dtype: 'float64' })), 'ERR_DTYPE')
    })
  })
})

describe('Conv2d', () => {
  const geoms: [string, ConvGeom, boolean][] = [
    ['3x3, padding 1', { N: 2, C: 3, H: 6, W: 5, O: 4, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 }, true],
    ['2x3 kernel, stride (2, 1), padding (1, 2)', { N: 2, C: 2, H: 7, W: 5, O: 3, kh: 2, kw: 3, sh: 2, sw: 1, ph: 1, pw: 2 }, true],
    ['1x1, no bias', { N: 1, C: 4, H: 3, W: 4, O: 2, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0 }, false],
    ['stride 2, no padding', { N: 3, C: 1, H: 6, W: 6, O: 2, kh: 3, kw: 3, sh: 2, sw: 2, ph: 0, pw: 0 }, true],
  ]
  test.each(geoms)('%s: float64 matches loops, float32 agrees, parameter gradients', (_n, g, bias) => {
    tidy(() => {
      manualSeed(8)
      const conv = new nn.Conv2d(g.C, g.O, [g.kh, g.kw], { stride: [g.sh, g.sw], padding: [g.ph, g.pw], bias, dtype: 'float64' })
      const xShape = [g.N, g.C, g.H, g.W]
      const xv = randomValues(numel(xShape), 4)
      const x = tensor(xv, xShape, { dtype: 'float64', requiresGrad: true })
      const y = conv.forward(x)
      expect(y.shape).toEqual([g.N, g.O, ...outSize(g)])
      const w = Array.from(conv.weight.toArray())
      const b = conv.bias ? Array.from(conv.bias.toArray()) : null
      expectClose(y, conv2dRef(xv, w, b, g), 1e-14)
      const conv32 = new nn.Conv2d(g.C, g.O, [g.kh, g.kw], { stride: [g.sh, g.sw], padding: [g.ph, g.pw], bias, dtype: 'float32' })
      conv32.loadStateDict(conv.stateDict())
      expectClose(conv32.forward(tensor(xv, xShape, { dtype: 'float32' })), y.toArray(), 1e-5)
      const r = randomValues(y.size, 6)
      y.mul(tensor(r, [...y.shape], { dtype: 'float64' })).sum().backward()
      const [gw, gb] = conv2dParamGradRef(xv, r, g)
      expectClose(conv.weight.grad as Tensor, gw, 1e-13)
      if (conv.bias) expectClose(conv.bias.grad as Tensor, gb, 1e-13)
      gradCheck((xx) => conv.forward(xx), [input([1, g.C, g.H, g.W], 10)])
    })
  })

  test('a wrong number of input channels is refused', () => {
    tidy(() => {
      const conv = new nn.Conv2d(3, 2, 3)
      expectCode(() => conv.forward(tensor(randomValues(2 * 4 * 5 * 5, 1), [2, 4, 5, 5])), 'ERR_SHAPE')
    })
  })
})
