import { SequenceINN, tensor, Tensor, tidy } from '../../lib'
import { InvertiblePixelShuffle } from '../../lib/modules/invertible-pixel-shuffle'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

/** torch's pixel_shuffle by loops: out[b, c, r·h + i, r·w + j] = in[b, c·r² + r·i + j, h, w]. */
function pixelShuffleRef(x: number[], [B, Cr2, H, W]: number[], r: number): number[] {
  const C = Cr2 / (r * r)
  const out = new Array<number>(x.length)
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++)
          for (let i = 0; i < r; i++)
            for (let j = 0; j < r; j++) {
              const src = ((b * Cr2 + c * r * r + r * i + j) * H + h) * W + w
              const dst = ((b * C + c) * (H * r) + (r * h + i)) * (W * r) + (r * w + j)
              out[dst] = x[src]
            }
  return out
}

describe('InvertiblePixelShuffle', () => {
  test.each([
    [[2, 12, 2, 3], 2],
    [[1, 9, 1, 2], 3],
    [[2, 8, 3, 1], 2],
    [[2, 3, 2, 4], 1],
  ])('shape %j, r = %p: torch pixel_shuffle against loops; reverse is its exact inverse for non-square images', (shape, r) => {
    tidy(() => {
      const m = new InvertiblePixelShuffle([shape.slice(1)], { upscaleFactor: r })
      const [, c, h, w] = shape
      const out = [c / (r * r), h * r, w * r]
      expect(m.outputDims([shape.slice(1)])).toEqual([out])
      const xv = randomValues(numel(shape), 12)
      const [[y], j] = m.forward([tensor(xv, shape, { dtype: 'float64' })])
      expect(j).toBe(0)
      expect(y.shape).toEqual([shape[0], ...out])
      expectClose(y, pixelShuffleRef(xv, shape, r), 0)
      const [[x], jr] = m.forward([y], [], true)
      expect(jr).toBe(0)
      expect(x.shape).toEqual(shape)
      expectClose(x, xv, 0)
      const [[y32]] = m.forward([tensor(xv, shape, { dtype: 'float32' })])
      expectClose(y32, y.toArray(), 1e-7)
    })
  })

  test('checkInvertibleModule on non-square images; in a SequenceINN', () => {
    checkInvertibleModule(() => new InvertiblePixelShuffle([[8, 1, 3]], { upscaleFactor: 2 }), { inputs: [[2, 8, 1, 3]] })
    tidy(() => {
      const inn = new SequenceINN(4, 1, 2)
      inn.append(InvertiblePixelShuffle, { upscaleFactor: 2 })
      const xv = randomValues(16, 3)
      const [z] = inn.forward(tensor(xv, [2, 4, 1, 2]))
      expect(z.shape).toEqual([2, 1, 2, 4])
      const [x] = inn.forward(z, { rev: true })
      expectClose(x as Tensor, xv, 1e-7)
    })
  })

  test('no state; bad options, dims and inputs', () => {
    const m = new InvertiblePixelShuffle([[4, 2, 3]], { upscaleFactor: 2 })
    expect(m.stateDict()).toEqual({})
    expect(m.upscaleFactor).toBe(2)
    expectCode(() => new InvertiblePixelShuffle([[4, 2, 3]]), 'ERR_ARGUMENT')
    for (const bad of [0, -2, 1.5, '2']) expectCode(() => new InvertiblePixelShuffle([[4, 2, 3]], { upscaleFactor: bad as never }), 'ERR_ARGUMENT')
    expectCode(() => new InvertiblePixelShuffle([[6, 2, 3]], { upscaleFactor: 2 }), 'ERR_SHAPE')
    expectCode(() => new InvertiblePixelShuffle([[8]], { upscaleFactor: 2 }), 'ERR_SHAPE')
    expectCode(() => new InvertiblePixelShuffle([[4, 2, 3], [4, 2, 3]], { upscaleFactor: 2 }), 'ERR_SHAPE')
    expectCode(() => new InvertiblePixelShuffle([[4, 2, 3]], { upscaleFactor: 2, scale: 2 } as never), 'ERR_ARGUMENT')
    tidy(() => {
      expectCode(() => m.forward([tensor(randomValues(24, 1), [1, 4, 3, 2])]), 'ERR_SHAPE')
      // reverse expects the output shape (1, 4, 6)
      expectCode(() => m.forward([tensor(randomValues(24, 1), [1, 4, 2, 3])], [], true), 'ERR_SHAPE')
    })
  })
})
