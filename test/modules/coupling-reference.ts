/**
 * Shared pieces of the coupling-block tests: small subnets, and the plain-loop float64 references (Linear
 * subnets, the soft clamps) the tests compare the blocks against.
 */
import { nn } from '../../lib'

export const linearNet = (cIn: number, cOut: number) => new nn.Linear(cIn, cOut)

export const mlp = (width: number) => (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, width), new nn.Tanh(), new nn.Linear(width, cOut))

export const convNet = (width: number) => (cIn: number, cOut: number) =>
  new nn.Sequential(new nn.Conv2d(cIn, width, 3, { padding: 1 }), new nn.Tanh(), new nn.Conv2d(width, cOut, 3, { padding: 1 }))

export type Rows = number[][]

export const toRows = (v: ArrayLike<number>, b: number): Rows => Array.from({ length: b }, (_, i) => Array.from(v).slice((i * v.length) / b, ((i + 1) * v.length) / b))

export function linearRef(lin: nn.Module, x: Rows): Rows {
  const l = lin as nn.Linear
  const w = l.weight.toArray()
  const bias = l.bias!.toArray()
  const [o, k] = l.weight.shape
  return x.map((row) => Array.from({ length: o }, (_, r) => bias[r] + row.reduce((a, v, j) => a + w[r * k + j] * v, 0)))
}

export const clampRef: Record<string, (u: number) => number> = {
  ATAN: (u) => 0.636 * Math.atan(u),
  TANH: Math.tanh,
  SIGMOID: (u) => 2 * (1 / (1 + Math.exp(-u)) - 0.5),
}
