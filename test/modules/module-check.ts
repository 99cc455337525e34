/**
 * The checks every invertible module must pass (float64):
 * - round trip x → z → x (rel. error <= 1e-10) and log-det(rev) = −log-det(fwd),
 * - log-det equal to log|det J| of a central-difference Jacobian, per sample,
 * - gradients of a fixed random scalar of (z, log-det) with respect to inputs, conditions and every
 *   parameter equal to finite differences,
 * - `jac: false` returns the same outputs.
 */
import { getDefaultDtype, InvertibleModule, noGrad, ops, setDefaultDtype, tensor, Tensor, tidy } from '../../lib'
import { core } from '../../lib/binding'
import { numel, randomValues, relErr } from '../helpers'

export interface ModuleCheckOptions {
  /** Input shapes including the batch dimension. */
  inputs: number[][]
  /** Condition shapes including the batch dimension. */
  conditions?: number[][]
  /** Input value range (default [-1, 1]). */
  range?: [number, number]
  seed?: number
  /** Skip the log-det check (modules whose log-det is an estimate or deliberately not the true one). */
  skipLogDet?: boolean
  /** Modules whose forward is only approximately invertible. */
  roundTripTol?: number
  logDetTol?: number
  gradTol?: number
  /** Finite-difference step. */
  h?: number
}

type Run = (xs: Tensor[], cs: Tensor[], rev: boolean, jac?: boolean) => { z: Tensor[]; logDet: Tensor }

function runner(m: InvertibleModule): Run {
  return (xs, cs, rev, jac = true) => {
    const [z, j] = m.forward(xs, cs, rev, jac)
    const batch = xs[0].shape[0]
    const logDet = j === null ? tensor(new Array(batch).fill(NaN), [batch], { dtype: 'float64' }) : typeof j === 'number' ? tensor(new Array(batch).fill(j), [batch], { dtype: 'float64' }) : j.size === 1 ? j.reshape([1]).expand([batch]) : j
    return { z, logDet }
  }
}

const flatRow = (ts: Tensor[], b: number): number[] =>
  ts.flatMap((t) => {
    const per = t.size / t.shape[0]
    return Array.from(t.toArray().subarray(b * per, (b + 1) * per))
  })

/** Per-sample log|det| of the numerical Jacobian of all outputs with respect to all inputs. */
export function numericalLogDets(run: Run, xs: Tensor[], cs: Tensor[], rev: boolean, h = 1e-6): number[] {
  const batch = xs[0].shape[0]
  const sizes = xs.map((x) => x.size / batch)
  const total = sizes.reduce((a, b) => a + b, 0)
  const base = xs.map((x) => Array.from(x.toArray()))
  const jac: number[][] = Array.from({ length: batch }, () => new Array(total * total).fill(0))
  let col = 0
  xs.forEach((x, k) => {
    for (let i = 0; i < sizes[k]; i++, col++) {
      const eval_ = (delta: number) =>
        tidy(() =>
          noGrad(() => {
            const moved = xs.map((t, j) => {
              if (j !== k) return tensor(base[j], [...t.shape], { dtype: 'float64' })
              const v = base[j].slice()
              for (let b = 0; b < batch; b++) v[b * sizes[k] + i] += delta
              return tensor(v, [...t.shape], { dtype: 'float64' })
            })
            const { z } = run(moved, cs, rev, false)
            return Array.from({ length: batch }, (_, b) => flatRow(z, b))
          }),
        )
      const plus = eval_(h)
      const minus = eval_(-h)
      for (let b = 0; b < batch; b++) for (let r = 0; r < total; r++) jac[b][r * total + col] = (plus[b][r] - minus[b][r]) / (2 * h)
    }
  })
  return jac.map((j) => tidy(() => ops.linalg.slogdet(tensor(j, [total, total], { dtype: 'float64' })).logabsdet.item()))
}

/** Runs every check on a module built by `make` (called once, with float64 as the default dtype). */
export function checkInvertibleModule(make: () => InvertibleModule, o: ModuleCheckOptions): void {
  const previous = getDefaultDtype()
  setDefaultDtype('float64')
  try {
    checkModule(make, o)
  } finally {
    setDefaultDtype(previous)
  }
}

function checkModule(make: () => InvertibleModule, o: ModuleCheckOptions): void {
  const [lo, hi] = o.range ?? [-1, 1]
  const seed = o.seed ?? 1
  tidy(() => {
    const m = make()
    const run = runner(m)
    const xs = o.inputs.map((s, i) => tensor(randomValues(numel(s), seed + i, lo, hi), s, { dtype: 'float64' }))
    const cs = (o.conditions ?? []).map((s, i) => tensor(randomValues(numel(s), seed + 100 + i), s, { dtype: 'float64' }))
    // a first call (data-dependent initialisation such as ActNorm's happens here)
    noGrad(() => run(xs, cs, false))

    // round trip
    const fwd = noGrad(() => run(xs, cs, false))
    const back = noGrad(() => run(fwd.z, cs, true))
    xs.forEach((x, i) => {
      const err = relErr(back.z[i].toArray(), x.toArray())
      if (!(err <= (o.roundTripTol ?? 1e-10))) throw new Error(`round trip: input ${i} comes back with relative error ${err.toExponential(3)}`)
    })
    if (!o.skipLogDet) {
      const err = relErr(back.logDet.toArray(), fwd.logDet.neg().toArray())
      if (!(err <= 1e-10 || Math.max(...Array.from(fwd.logDet.toArray()).map(Math.abs)) < 1e-12)) throw new Error(`reverse log-det is not the negative of the forward one (${err})`)
    }

    // jac: false gives the same outputs
    const noJac = noGrad(() => run(xs, cs, false, false))
    noJac.z.forEach((z, i) => {
      if (relErr(z.toArray(), fwd.z[i].toArray()) > 1e-14) throw new Error('jac: false changes the outputs')
    })

    // log-det against the numerical Jacobian, both directions
    if (!o.skipLogDet) {
      for (const rev of [false, true]) {
        const at = rev ? fwd.z : xs
        const numeric = numericalLogDets(run, at, cs, rev, o.h)
        const analytic = Array.from((rev ? back : fwd).logDet.toArray())
        const diff = Math.max(...numeric.map((v, i) => Math.abs(v - analytic[i])))
        if (!(diff <= (o.logDetTol ?? 1e-6))) throw new Error(`${rev ? 'reverse' : 'forward'} log-det differs from the numerical Jacobian by ${diff.toExponential(3)}: ${analytic} vs ${numeric}`)
      }
    }

    // gradients of L = Σ z·r + Σ logDet·q w.r.t. inputs, conditions and parameters, by finite differences
    const rs = fwd.z.map((z, i) => tensor(randomValues(z.size, 500 + i), [...z.shape], { dtype: 'float64' }))
    const q = tensor(randomValues(xs[0].shape[0], 600), [xs[0].shape[0]], { dtype: 'float64' })
    const lossOf = (r: ReturnType<Run>): Tensor => {
      let l = o.skipLogDet ? r.z[0].mul(0).sum() : r.logDet.mul(q).sum()
      r.z.forEach((z, i) => (l = l.add(z.mul(rs[i]).sum())))
      return l
    }
    const leaves = [...xs, ...cs].map((t) => tensor(t.toArray(), [...t.shape], { dtype: 'float64', requiresGrad: true }))
    const params = m.parameters()
    params.forEach((p) => (p.grad = null))
    lossOf(run(leaves.slice(0, xs.length), leaves.slice(xs.length), false)).backward()
    const lossAt = (): number => tidy(() => noGrad(() => lossOf(run(xs, cs, false)).item()))
    const h = o.h ?? 1e-6
    const checkFd = (label: string, target: Tensor, analytic: Tensor | null) => {
      const base = Array.from(target.toArray())
      const numeric = base.map((v, i) => {
        const set = (val: number) => noGrad(() => tidy(() => {
          const c = base.slice()
          c[i] = val
          core.copyInto(target.handle, tensor(c, [...target.shape], { dtype: 'float64' }).handle)
        }))
        set(v + h)
        const lp = lossAt()
        set(v - h)
        const lm = lossAt()
        set(v)
        return (lp - lm) / (2 * h)
      })
      const a = analytic ? Array.from(analytic.toArray()) : numeric.map(() => 0)
      const err = relErr(a, numeric)
      const scale = Math.max(...numeric.map(Math.abs))
      if (!(err <= (o.gradTol ?? 1e-6) || scale < 1e-10)) throw new Error(`gradient of ${label}: relative error ${err.toExponential(3)}\n analytic ${a.slice(0, 6)}\n numeric  ${numeric.slice(0, 6)}`)
    }
    leaves.forEach((leaf, i) => checkFd(i < xs.length ? `input ${i}` : `condition ${i - xs.length}`, i < xs.length ? xs[i] : cs[i - xs.length], leaf.grad))
    for (const [name, p] of m.namedParameters()) if (p.requiresGrad) checkFd(`parameter ${name}`, p, p.grad)
  })
}
