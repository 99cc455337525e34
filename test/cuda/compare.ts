/**
 * How test/cuda compares the GPU with the CPU: the same op runs on both devices on fresh random inputs
 * (never zeros), forward and backward, and the results must agree to float32 rounding. Without a usable GPU
 * every suite declared with `describeCuda` is skipped, and the reason is printed once.
 */
import { cuda, noGrad, tensor, Tensor, tidy } from '../../lib'
import { randomValues, relErr } from '../helpers'

export const cudaAvailable = cuda.isAvailable()
let reported = false

/** describe() when a GPU is usable, otherwise describe.skip with the reason printed once. */
export function describeCuda(name: string, fn: () => void): void {
  if (!cudaAvailable && !reported) {
    reported = true
    // eslint-disable-next-line no-console
    console.log(`test/cuda: skipped — CUDA is unavailable here: ${cuda.unavailableReason()}`)
  }
  ;(cudaAvailable ? describe : describe.skip)(name, fn)
}

export interface Input {
  shape: number[]
  /** value range (default [-1, 1)) */
  lo?: number
  hi?: number
  /** values to use instead of random ones (e.g. integer indices) */
  values?: number[]
  /** whether a gradient is compared (default true) */
  grad?: boolean
}

let seed = 1000

/**
 * Runs fn on CPU tensors and on CUDA tensors made from the same random values; compares every output and,
 * for inputs with grad !== false, the gradients of Σ outputᵢ · wᵢ (fixed random w). Relative error ≤ tol
 * (float32 by default: 1e-5).
 */
export function compareWithCpu(
  inputs: Input[],
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  opts: { tol?: number; gradTol?: number; dtype?: 'float32' | 'float64'; backward?: boolean } = {},
): void {
  const tol = opts.tol ?? 1e-5
  const gradTol = opts.gradTol ?? tol
  const dtype = opts.dtype ?? 'float32'
  const values = inputs.map((inp) => inp.values ?? randomValues(inp.shape.reduce((a, b) => a * b, 1), seed++, inp.lo ?? -1, inp.hi ?? 1))
  const run = (device: 'cpu' | 'cuda') =>
    tidy(() => {
      const xs = inputs.map((inp, i) => tensor(values[i], inp.shape, { dtype, device, requiresGrad: opts.backward !== false && inp.grad !== false }))
      const out = fn(...xs)
      const outs = Array.isArray(out) ? out : [out]
      for (const o of outs) expect(o.device).toBe(device)
      const outValues = outs.map((o) => Array.from(o.toArray()))
      let grads: (number[] | null)[] = []
      if (opts.backward !== false && outs.some((o) => o.requiresGrad)) {
        let loss: Tensor | null = null
        outs.forEach((o, k) => {
          if (!o.requiresGrad) return
          const w = tensor(randomValues(o.size, 7 + k), o.shape as number[], { dtype, device })
          const term = o.mul(w).sum()
          loss = loss === null ? term : loss.add(term)
        })
        ;(loss as unknown as Tensor).backward()
        grads = xs.map((x) => (x.grad ? Array.from(x.grad.toArray()) : null))
      }
      return { outValues, grads }
    })
  const cpu = run('cpu')
  const gpu = run('cuda')
  expect(gpu.outValues.length).toBe(cpu.outValues.length)
  cpu.outValues.forEach((c, k) => expectRel(gpu.outValues[k], c, tol, `output ${k}`))
  cpu.grads.forEach((c, k) => {
    if (c === null) {
      expect(gpu.grads[k]).toBeNull()
      return
    }
    expectRel(gpu.grads[k] as number[], c, gradTol, `gradient of input ${k}`)
  })
}

export function expectRel(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < actual.length; i++)
    if (Number.isNaN(actual[i]) !== Number.isNaN(expected[i])) throw new Error(`${what}: NaN mismatch at ${i}: ${actual[i]} vs ${expected[i]}`)
  const err = relErr(actual, expected)
  if (!(err <= tol)) throw new Error(`${what}: CUDA vs CPU relative error ${err.toExponential(3)} exceeds ${tol}`)
}

/** A CUDA tensor's values without keeping it (for checks outside compareWithCpu). */
export function values(t: Tensor): number[] {
  return noGrad(() => Array.from(t.toArray()))
}
