/**
 * What the invertible-backprop tests (SequenceINN and GraphINN) share: subnets, identical builds of a network,
 * gradient lists compared with normal mode, and freeing a network.
 */
import { manualSeed, nn, setDefaultDtype, Tensor } from '../../lib'
import type { DType } from '../../lib'
import { relErr } from '../helpers'

export const fc = (width: number) => (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, width), new nn.ReLU(), new nn.Linear(width, cOut))

/** Builds a network in the given dtype (parameters drawn from seed 7, so two builds are identical). */
export function build<T>(dtype: DType, make: () => T): T {
  setDefaultDtype(dtype)
  try {
    manualSeed(7)
    return make()
  } finally {
    setDefaultDtype('float32')
  }
}

export const asF64 = (t: Tensor | null): Float64Array => Float64Array.from(t ? t.toArray() : [])

/** Each gradient of `a` is non-empty (or, with sameLength, as long as b's) and within tol of b's. */
export function expectGradsClose(a: Float64Array[], b: Float64Array[], tol: number, sameLength = false): void {
  expect(a.length).toBe(b.length)
  a.forEach((g, i) => {
    if (sameLength) expect(g.length).toBe(b[i].length)
    else expect(g.length).toBeGreaterThan(0)
    expect(relErr(g, b[i])).toBeLessThanOrEqual(tol)
  })
}

/** Frees a network's parameters, their gradients and its buffers. */
export function disposeNet(inn: { parameters(): Tensor[]; buffers(): Tensor[] }): void {
  for (const p of inn.parameters()) {
    p.grad?.dispose()
    p.dispose()
  }
  for (const b of inn.buffers()) b.dispose()
}
