/**
 * How test/capture checks that an op replays correctly inside a compiled step: the op runs once while a step is
 * captured, its inputs are then overwritten in place with new random values and the program is replayed; every
 * output (and every gradient) must then equal, bit for bit, what the same op computes eagerly on the new values.
 * The outputs must also have changed, so a kernel that was not kept (or that wrote a fresh tensor instead of its
 * captured output) fails. The capture's intermediate tensors are disposed and the memory plan shares their memory, so
 * a kernel the plan misreads (a lifetime too short) fails too.
 */
import { grad, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { captureNative } from '../../lib/capture'
import { randomValues } from '../helpers'

export interface ReplayInput {
  shape: number[]
  lo?: number
  hi?: number
  /** fixed values (integer indices, ...): the same at capture and replay */
  values?: number[]
  /** whether gradients with respect to this input are replayed too (default true) */
  grad?: boolean
}

let seed = 5000

function values(inp: ReplayInput): number[] {
  return inp.values ?? randomValues(inp.shape.reduce((a, b) => a * b, 1), seed++, inp.lo ?? -1, inp.hi ?? 1)
}

/** Runs fn (and Σ outᵢ·wᵢ's gradients unless backward is false) under capture, replays on new inputs, compares with eager. */
export function expectReplayMatches(
  inputs: ReplayInput[],
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  opts: { dtype?: 'float32' | 'float64'; backward?: boolean } = {},
): void {
  const dtype = opts.dtype ?? 'float64'
  const first = inputs.map(values)
  const second = inputs.map((inp) => (inp.values ? inp.values : values(inp)))
  const wantGrad = (inp: ReplayInput) => opts.backward !== false && inp.grad !== false
  const compute = (xs: Tensor[]): Tensor[] => {
    const out = fn(...xs)
    const outs = Array.isArray(out) ? out : [out]
    const leaves = xs.filter((_, i) => wantGrad(inputs[i]))
    if (leaves.length === 0 || !outs.some((o) => o.requiresGrad)) return outs
    let loss: Tensor | null = null
    outs.forEach((o, k) => {
      if (!o.requiresGrad) return
      const w = tensor(randomValues(o.size, 900 + k, -1, 1), [...o.shape], { dtype: o.dtype, device: o.device })
      const term = o.mul(w).sum()
      loss = loss ? loss.add(term) : term
    })
    const gs = grad(loss as unknown as Tensor, leaves)
    return [...outs, ...gs.filter((g): g is Tensor => g !== null)]
  }
  tidy(() => {
    const xs = inputs.map((inp, i) => tensor(first[i], inp.shape, { dtype, requiresGrad: wantGrad(inp) }))
    captureNative.captureBegin()
    let outs: Tensor[]
    try {
      // intermediates are disposed before captureEnd: the plan may then share their memory
      outs = tidy(() => compute(xs))
    } catch (e) {
      captureNative.captureAbort()
      throw e
    }
    const program = captureNative.captureEnd(false, true)
    expect(captureNative.programInfo(program).kernels).toBeGreaterThan(0)
    const atCapture = outs.map((o) => Array.from(o.toArray()))
    xs.forEach((x, i) => core.copyInto(x.handle, tensor(second[i], inputs[i].shape, { dtype }).handle))
    captureNative.runProgram(program)
    const replayed = outs.map((o) => Array.from(o.toArray()))
    const eager = compute(inputs.map((inp, i) => tensor(second[i], inp.shape, { dtype, requiresGrad: wantGrad(inp) }))).map((o) =>
      Array.from(o.toArray()),
    )
    expect(replayed.length).toBe(eager.length)
    replayed.forEach((r, k) => expect(r).toEqual(eager[k]))
    // the replay really recomputed: some output moved with the new inputs (unless every input is fixed)
    if (inputs.some((inp) => !inp.values)) expect(replayed.some((r, k) => r.some((v, j) => !Object.is(v, atCapture[k][j])))).toBe(true)
    captureNative.releaseProgram(program)
  })
}
