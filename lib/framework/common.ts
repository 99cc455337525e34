/** Pieces SequenceINN and GraphINN share: argument parsing for forward and log-det accumulation. */
import { argumentError, InnflowError } from '../errors'
import { InvertibleModule } from '../modules/base'
import { checkTensor, Tensor } from '../tensor'

/** Options of `inn.forward(x, opts)`. */
export interface ForwardOptions {
  /** Condition tensors (SequenceINN: indexed by each module's `cond`; GraphINN: in ConditionNode order). */
  c?: Tensor[]
  /** Run the inverse (z → x). */
  rev?: boolean
  /** Compute log-Jacobian-determinants (default true). */
  jac?: boolean
}

export interface ParsedForward {
  x: Tensor[]
  c: Tensor[]
  rev: boolean
  jac: boolean
  /** True for the InvertibleModule calling form forward(x[], c[], rev, jac). */
  moduleForm: boolean
}

export function isInvertibleModule(v: unknown): v is InvertibleModule {
  return v instanceof InvertibleModule || (v !== null && typeof v === 'object' && 'dimsIn' in v && 'outputDims' in v && (v as { __isInnflowModule?: boolean }).__isInnflowModule === true)
}

/** Accepts both `forward(x, { c, rev, jac })` and the module form `forward([x...], c, rev, jac)`. */
export function parseForwardArgs(fn: string, x: unknown, cOrOpts: unknown, rev: unknown, jac: unknown): ParsedForward {
  const moduleForm = Array.isArray(x)
  const xs = (moduleForm ? (x as unknown[]) : [x]).map((t, i) => checkTensor(fn, `x[${i}]`, t))
  let c: unknown = []
  let r: unknown = false
  let j: unknown = true
  if (Array.isArray(cOrOpts) || cOrOpts === undefined || cOrOpts === null) {
    c = cOrOpts ?? []
    r = rev ?? false
    j = jac ?? true
  } else if (typeof cOrOpts === 'object') {
    const o = cOrOpts as ForwardOptions
    for (const k of Object.keys(o)) if (!['c', 'rev', 'jac'].includes(k)) throw argumentError(fn, `options.${k}`, 'one of c, rev, jac', k)
    c = o.c ?? []
    r = o.rev ?? false
    j = o.jac ?? true
  } else {
    throw argumentError(fn, 'options', '{ c?, rev?, jac? }', cOrOpts)
  }
  if (!Array.isArray(c)) throw argumentError(fn, 'c', 'an array of condition tensors', c)
  if (typeof r !== 'boolean') throw argumentError(fn, 'rev', 'a boolean', r)
  if (typeof j !== 'boolean') throw argumentError(fn, 'jac', 'a boolean', j)
  const cs = (c as unknown[]).map((t, i) => checkTensor(fn, `c[${i}]`, t))
  if (xs.length === 0) throw new InnflowError('ERR_ARGUMENT', `${fn}: no input tensor given`)
  return { x: xs, c: cs, rev: r, jac: j, moduleForm }
}

/** logDet + j, where j is a (batch,) tensor, a number, or null (no contribution). */
export function addLogDet(logDet: Tensor, j: Tensor | number | null | undefined, who: string): Tensor {
  if (j === null || j === undefined) return logDet
  if (typeof j === 'number') return j === 0 ? logDet : logDet.add(j)
  const t = checkTensor(who, 'logJacDet', j)
  if (t.size === 1) return logDet.add(t.reshape([]))
  if (t.ndim !== 1 || t.shape[0] !== logDet.shape[0])
    throw new InnflowError('ERR_SHAPE', `${who} returned a log-Jacobian-determinant of shape (${t.shape.join(', ')}); expected (${logDet.shape[0]},) or a number`)
  return logDet.add(t)
}
