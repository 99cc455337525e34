/**
 * PermuteRandom: module checks, the permutation against a plain-loop reference, the seed option (the permutation
 * of `manualSeed(seed); randperm(C)`, without touching the global generator), state dict, errors.
 */
import { manualSeed, modules, randn, randperm, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { seededPermutation } from '../../lib/modules/permute-random'
import { expectClose, expectCode, numel, randomValues } from '../helpers'
import { checkInvertibleModule } from './module-check'

const { PermuteRandom } = modules

describe('PermuteRandom: module checks', () => {
  test('1-D (7)', () => {
    checkInvertibleModule(() => new PermuteRandom([[7]], { seed: 1 }), { inputs: [[3, 7]] })
  })
  test('images (3, 2, 2)', () => {
    checkInvertibleModule(() => new PermuteRandom([[3, 2, 2]]), { inputs: [[2, 3, 2, 2]] })
  })
})

describe('PermuteRandom: behaviour', () => {
  test.each([[[6]], [[4, 3, 2]], [[5, 3]]])('shape %j: out[:, i] = x[:, perm[i]], reverse undoes it, log-det 0', (dims) => {
    setDefaultDtype('float64')
    try {
      tidy(() => {
        const m = new PermuteRandom([dims], { seed: 7 })
        const perm = Array.from(m.perm.toArray())
        const inv = Array.from(m.permInv.toArray())
        expect([...perm].sort((a, b) => a - b)).toEqual(Array.from({ length: dims[0] }, (_, i) => i))
        perm.forEach((p, i) => expect(inv[p]).toBe(i))
        const B = 2
        const C = dims[0]
        const nPix = numel(dims.slice(1))
        const xv = randomValues(B * numel(dims), 3)
        const [[z], ld] = m.forward([tensor(xv, [B, ...dims])])
        const ref: number[] = []
        for (let b = 0; b < B; b++) for (let i = 0; i < C; i++) for (let q = 0; q < nPix; q++) ref.push(xv[(b * C + perm[i]) * nPix + q])
        expectClose(z, ref, 0)
        expect(ld).toBe(0)
        const [[x], ldr] = m.forward([z], [], true)
        expectClose(x, xv, 0)
        expect(ldr).toBe(0)
      })
    } finally {
      setDefaultDtype('float32')
    }
  })

  test('seed: the permutation of manualSeed(seed); randperm(C), and the global generator is untouched', () => {
    tidy(() => {
      for (const [seed, n] of [[0, 1], [0, 2], [3, 8], [4, 4], [12345, 33], [2 ** 40 + 7, 100]]) {
        manualSeed(seed)
        const expected = Array.from(randperm(n).toArray())
        expect(seededPermutation(n, seed)).toEqual(expected)
        expect(Array.from(new PermuteRandom([[n]], { seed }).perm.toArray())).toEqual(expected)
      }
      manualSeed(99)
      const before = Array.from(randn([5]).toArray())
      manualSeed(99)
      new PermuteRandom([[16]], { seed: 1 })
      expect(Array.from(randn([5]).toArray())).toEqual(before)
    })
  })

  test('without a seed the permutation comes from the global generator', () => {
    tidy(() => {
      manualSeed(5)
      const expected = Array.from(randperm(9, { dtype: 'float64' }).toArray())
      manualSeed(5)
      expect(Array.from(new PermuteRandom([[9]]).perm.toArray())).toEqual(expected)
      const a = Array.from(new PermuteRandom([[30]]).perm.toArray())
      const b = Array.from(new PermuteRandom([[30]]).perm.toArray())
      expect(a).not.toEqual(b)
    })
  })

  test('state dict: perm and perm_inv buffers (C,) in the default dtype, no parameters', () => {
    tidy(() => {
      const m = new PermuteRandom([[4, 2, 2]], { seed: 4 })
      const sd = m.stateDict()
      expect(Object.keys(sd)).toEqual(['perm', 'perm_inv'])
      expect(sd.perm.shape).toEqual([4])
      expect(sd.perm.dtype).toBe('float32')
      expect(m.parameters()).toEqual([])
      expect(m.outputDims([[4, 2, 2]])).toEqual([[4, 2, 2]])
      // a FrEIA permutation loads through the state dict
      m.loadStateDict({ perm: tensor([3, 0, 2, 1], [4]), perm_inv: tensor([1, 3, 2, 0], [4]) })
      const [[z]] = m.forward([tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], [1, 4, 2, 2])])
      expect(Array.from(z.toArray()).filter((_, i) => i % 4 === 0)).toEqual([3, 0, 2, 1])
    })
  })
})

describe('PermuteRandom: errors', () => {
  test('bad options, conditions and shapes', () => {
    expectCode(() => new PermuteRandom([[4]], { seed: -1 }), 'ERR_ARGUMENT')
    expectCode(() => new PermuteRandom([[4]], { seed: 1.5 }), 'ERR_ARGUMENT')
    expectCode(() => new PermuteRandom([[4]], { seed: '1' as never }), 'ERR_ARGUMENT')
    expectCode(() => new PermuteRandom([[4]], { seeds: 1 } as never), 'ERR_ARGUMENT')
    expectCode(() => new PermuteRandom([[4]], { dimsC: [[2]] }), 'ERR_ARGUMENT')
    expectCode(() => new PermuteRandom([[4], [4]]), 'ERR_ARGUMENT')
    tidy(() => {
      const m = new PermuteRandom([[4]])
      expectCode(() => m.forward([tensor(randomValues(6, 1), [2, 3])]), 'ERR_SHAPE')
      expectCode(() => m.forward([tensor(randomValues(8, 1), [2, 4])], [tensor([1, 2], [2, 1])]), 'ERR_ARGUMENT')
      expect(m.forward([tensor(randomValues(8, 1), [2, 4])])[0][0] instanceof Tensor).toBe(true)
    })
  })
})
