/**
 * rand / randn / randperm on the GPU draw the CPU's numbers: the generator is counter-based (Philox-4x32-10),
 * its state (seed, offset) lives on the host and every draw reserves the same blocks on either device.
 * rand is bit-identical; randn goes through the device's double log/sin/cos, which may differ from the host
 * libm's in the last bits of a double, so float64 is compared to 1e-12 and float32 to 1e-6 (relative).
 */
import { manualSeed, rand, randn, randperm, Tensor, tidy } from '../../lib'
import { bindingFor } from '../../lib/binding'
import { expectCode } from '../helpers'
import { describeCuda, expectRel, values } from './compare'

type DT = 'float32' | 'float64'
const dtypes: DT[] = ['float32', 'float64']
const sizes = [1, 7, 257, 1000, 70001]

const draw = (f: () => Tensor): number[] => tidy(() => values(f()))

describe('random: the device argument', () => {
  const core = bindingFor<Record<string, never>>()
  test('an unknown device is ERR_ARGUMENT for rand, randn and randperm', () => {
    expectCode(() => core.rand([2], 'float32', 'tpu'), 'ERR_ARGUMENT')
    expectCode(() => core.randn([2], 'float32', 'tpu'), 'ERR_ARGUMENT')
    expectCode(() => core.randperm(2, 'float32', 'tpu'), 'ERR_ARGUMENT')
  })
  test("'cpu' and an absent device give the same CPU draws", () => {
    manualSeed(3)
    const a = core.rand([5], 'float64', 'cpu')
    manualSeed(3)
    const b = core.rand([5], 'float64')
    const av = new Float64Array(5)
    const bv = new Float64Array(5)
    a.readInto(av)
    b.readInto(bv)
    expect(Array.from(av)).toEqual(Array.from(bv))
    expect(a.device()).toBe('cpu')
    a.dispose()
    b.dispose()
  })
})

for (const dtype of dtypes) {
  describeCuda(`random on CUDA (${dtype})`, () => {
    test('rand: the same numbers as the CPU, bit for bit', () => {
      for (const n of sizes) {
        manualSeed(11)
        const cpu = draw(() => rand([n], { dtype }))
        manualSeed(11)
        const gpu = draw(() => {
          const t = rand([n], { dtype, device: 'cuda' })
          expect(t.device).toBe('cuda')
          return t
        })
        expect(gpu).toEqual(cpu)
        expect(gpu.every((v) => v > 0 && v < 1)).toBe(true)
      }
    })

    test('randn: the same numbers as the CPU', () => {
      for (const n of sizes) {
        manualSeed(12)
        const cpu = draw(() => randn([n], { dtype }))
        manualSeed(12)
        const gpu = draw(() => randn([n], { dtype, device: 'cuda' }))
        expectRel(gpu, cpu, dtype === 'float32' ? 1e-6 : 1e-12, `randn([${n}])`)
      }
    })

    test('multi-dimensional shapes and empty tensors', () => {
      manualSeed(13)
      const cpu = draw(() => rand([3, 5, 7], { dtype }))
      manualSeed(13)
      const gpu = draw(() => rand([3, 5, 7], { dtype, device: 'cuda' }))
      expect(gpu).toEqual(cpu)
      expect(draw(() => rand([0, 4], { dtype, device: 'cuda' }))).toEqual([])
      expect(draw(() => randn([0], { dtype, device: 'cuda' }))).toEqual([])
    })

    test('the stream offset advances identically on both devices (interleaved draws)', () => {
      manualSeed(14)
      const c1 = draw(() => rand([7], { dtype }))
      const c2 = draw(() => randn([10], { dtype }))
      const c3 = draw(() => rand([257], { dtype }))
      manualSeed(14)
      const g1 = draw(() => rand([7], { dtype, device: 'cuda' }))
      const g2 = draw(() => randn([10], { dtype }))
      const g3 = draw(() => rand([257], { dtype, device: 'cuda' }))
      expect(g1).toEqual(c1)
      expect(g2).toEqual(c2) // a CPU draw after a CUDA draw: the offset moved by the same amount
      expect(g3).toEqual(c3)
    })

    test('randperm: made on the host and copied, equal to the CPU permutation', () => {
      for (const n of [0, 1, 7, 257, 1000]) {
        manualSeed(15)
        const cpu = draw(() => randperm(n, { dtype }))
        manualSeed(15)
        const gpu = draw(() => {
          const t = randperm(n, { dtype, device: 'cuda' })
          expect(t.device).toBe('cuda')
          return t
        })
        expect(gpu).toEqual(cpu)
        expect([...gpu].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i))
      }
    })
  })
}
