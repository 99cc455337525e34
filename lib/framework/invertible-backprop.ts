/**
 * Invertible backpropagation (memory-saving training) for a chain of invertible modules, as used by
 * {@link SequenceINN} when `invertibleBackprop` is on, and for a graph of them ({@link GraphINN}; see
 * {@link invertibleGraphForward} below, which follows the same steps node by node).
 *
 * Forward: the blocks run under noGrad, one at a time, each block's intermediates freed as soon as its output
 * exists; only the chain's output z and the summed log-det are kept. ONE tape entry is recorded for the whole
 * chain, with the chain's input, the conditions and the parameters that require grad as its inputs.
 *
 * Backward (that entry's backward function), from the last block to the first:
 *   1. rebuild the block's input x_k from its output y_k with the block's inverse (noGrad, jac = false);
 *   2. run the block forward again on a detached copy of x_k (requiring grad), with recording on, so that
 *      only this block's local graph exists;
 *   3. backpropagate (∂L/∂y_k, ∂L/∂logDet) through that local graph, capturing the gradients of x_k, of the
 *      (detached) conditions and of the block's parameters;
 *   4. free the local graph; ∂L/∂x_k becomes ∂L/∂y_{k−1}.
 * The parameter and condition gradients are summed over the blocks and handed back to the tape as this entry's
 * input gradients, so `backward()` accumulates them into `.grad` exactly as in normal mode (and `grad()`
 * returns them without touching `.grad`). Peak memory is O(1) in the depth: one block's activations.
 *
 * Requirements on the blocks (not checkable in general): each must be exactly invertible up to rounding
 * (the inverse applied to the output gives back the input) and deterministic (the second forward computes
 * the same function as the first). Dropout in training mode is refused; other stochastic modules give wrong
 * gradients. Data-dependent initialisation (ActNorm) happens in the first (noGrad) forward, as in normal mode.
 */
import { enableGrad, noGrad, record, runBackward } from '../autograd/tape'
import { InnflowError } from '../errors'
import type { BackpropRebuild, InvertibleModule } from '../modules/base'
import { Dropout } from '../nn/activation'
import { tidy } from '../scope'
import { full, Tensor, zeros } from '../tensor'
import { addLogDet } from './common'

/** One step of the chain: a module and the condition tensors it receives. */
export interface ChainStep {
  module: InvertibleModule
  /** The conditions given to this module (already picked from the `c` list). */
  c: Tensor[]
  /** Used in error messages, e.g. "module 3 (AllInOneBlock)". */
  label: string
}

/** Throws ERR_ARGUMENT when a step holds a stochastic layer (Dropout in training mode with p > 0). */
export function checkDeterministic(fn: string, steps: readonly { module: InvertibleModule; label: string }[]): void {
  for (const step of steps)
    for (const m of step.module.modules())
      if (m instanceof Dropout && m.training && m.p > 0)
        throw new InnflowError(
          'ERR_ARGUMENT',
          `${fn}: invertible backprop recomputes each block during backward and needs deterministic blocks, but ${step.label} holds a Dropout (p = ${m.p}) in training mode; call eval() on it, set p = 0, or turn invertibleBackprop off`,
        )
}

/**
 * Runs `steps` in order (each with `rev`), recording one tape entry for the whole chain when recording is on
 * and anything requires grad. Returns [output, summed logDet (batch,)].
 */
export function invertibleChainForward(steps: readonly ChainStep[], x: Tensor, rev: boolean, jac: boolean): [Tensor, Tensor] {
  const batch = x.shape[0]
  const [z, logDet] = noGrad(() => {
    let h = x
    let ld = zeros([batch], { dtype: x.dtype, device: x.device })
    for (const step of steps) {
      const [next, nextLd] = tidy((): [Tensor, Tensor] => {
        const [out, j] = step.module.forward([h], step.c, rev, jac)
        return [out[0], addLogDet(ld, j, step.label)]
      })
      if (h !== x && h !== next) h.dispose()
      if (ld !== nextLd) ld.dispose()
      h = next
      ld = nextLd
    }
    // the recorded outputs must be tensors of their own (never the caller's input)
    return [h === x ? x.detach() : h, ld]
  })

  // The tape entry's inputs: everything upstream that wants a gradient.
  const stepParams = steps.map((step) => gradParams(step.module))
  const inputs = gradInputs([x, ...steps.flatMap((step) => step.c), ...stepParams.flat()])

  record('SequenceINN.invertibleBackprop', inputs, [z, logDet], (grads) => chainBackward(steps, stepParams, x, z, rev, jac, grads[0], grads[1], inputs))
  return [z, logDet]
}

/** A module's parameters that require grad (each once). */
function gradParams(module: InvertibleModule): Tensor[] {
  return [...new Set(module.parameters())].filter((p) => p.requiresGrad)
}

/** The tensors of `ts` that require grad, each once, in order: the inputs of the one tape entry. */
function gradInputs(ts: Tensor[]): Tensor[] {
  return [...new Set(ts)].filter((t) => t.requiresGrad)
}

/** Sums of gradients by key; each gradient handed to `add` is owned (and disposed) by the sums from then on. */
class GradSums<K> {
  readonly sums = new Map<K, Tensor>()
  add(key: K, g: Tensor | null): void {
    if (!g) return
    const prev = this.sums.get(key)
    if (prev) {
      this.sums.set(key, noGrad(() => prev.add(g)))
      prev.dispose()
      g.dispose()
    } else this.sums.set(key, g)
  }
  /** Removes and returns the sum for `key` (null when none). */
  take(key: K): Tensor | null {
    const g = this.sums.get(key) ?? null
    this.sums.delete(key)
    return g
  }
  disposeAll(): void {
    for (const g of this.sums.values()) g.dispose()
    this.sums.clear()
  }
}

/** Detached copies of the conditions, requiring grad where `needs` says so: the local graph's leaves. */
function detachedConds(conds: Tensor[], needs: boolean[]): Tensor[] {
  return conds.map((c, i) => {
    const d = c.detach()
    d.requiresGrad = needs[i]
    return d
  })
}

/**
 * Backpropagates (gys, gLogDet) from a module's recomputed outputs and log-det through its local graph; returns
 * the gradients of `capture` (null where none) and frees the graph.
 */
function localBackward(outs: Tensor[], j: Tensor | number | null, gys: (Tensor | null)[], gLogDet: Tensor | null, capture: Tensor[]): (Tensor | null)[] {
  const targets: Tensor[] = []
  const seeds: Tensor[] = []
  outs.forEach((out, i) => {
    const gy = gys[i]
    if (gy && out.requiresGrad && !targets.includes(out)) {
      targets.push(out)
      seeds.push(gy)
    }
  })
  if (gLogDet && j instanceof Tensor && j.requiresGrad) {
    targets.push(j)
    // addLogDet broadcasts a one-element log-det over the batch: its gradient is the sum
    seeds.push(noGrad(() => (j.size === 1 ? gLogDet.sum() : gLogDet).reshape(j.shape)))
  }
  if (targets.length === 0) return capture.map(() => null)
  // A join node makes all outputs one root for the engine; it hands each seed on as a new handle.
  const ref = targets[0]
  const root = zeros([], { dtype: ref.dtype, device: ref.device })
  record('SequenceINN.invertibleBackprop.seed', targets, [root], () => seeds.map((s) => s.reshape(s.shape)))
  const one = full([], 1, { dtype: ref.dtype, device: ref.device })
  return runBackward(root, one, capture)
}

type Rebuilding = InvertibleModule & { _rebuildForBackward(y: Tensor, c: Tensor[], needInput: boolean): BackpropRebuild | null }

function hasRebuild(m: InvertibleModule): m is Rebuilding {
  return typeof (m as { _rebuildForBackward?: unknown })._rebuildForBackward === 'function'
}

/** Steps 1–3 through the module's own rebuild (see BackpropRebuild), or null when it declines. */
function fusedStep(
  module: Rebuilding,
  y: Tensor,
  conds: Tensor[],
  condNeeds: boolean[],
  params: Tensor[],
  needInput: boolean,
  gy: Tensor | null,
  gLogDet: Tensor | null,
): { xk: Tensor; gx: Tensor | null; gc: (Tensor | null)[]; gp: (Tensor | null)[] } | null {
  return enableGrad(() => {
    const cIn = detachedConds(conds, condNeeds)
    const r = module._rebuildForBackward(y, cIn, needInput)
    if (!r) return null
    const n = r.leaves.length
    const g = localBackward([r.out], r.logDet, [gy], gLogDet, [...r.leaves, ...cIn, ...params])
    const gx = r.inputGrad(g.slice(0, n))
    g.slice(0, n).forEach((t) => t?.dispose())
    return { xk: r.x, gx, gc: g.slice(n, n + conds.length), gp: g.slice(n + conds.length) }
  })
}

function chainBackward(
  steps: readonly ChainStep[],
  stepParams: Tensor[][],
  x: Tensor,
  z: Tensor,
  rev: boolean,
  jac: boolean,
  gz: Tensor | null,
  gLogDet: Tensor | null,
  inputs: Tensor[],
): (Tensor | null)[] {
  const sums = new GradSums<Tensor>()
  const accumulate = (t: Tensor, g: Tensor | null): void => sums.add(t, g)
  const wantInputGrad = x.requiresGrad
  let y = z
  let gy: Tensor | null = gz ? gz.reshape(gz.shape) : null // a handle of our own; the tape disposes gz
  for (let k = steps.length - 1; k >= 0; k--) {
    const step = steps[k]
    const params = stepParams[k]
    const conds = step.c
    const needInput = k > 0 || wantInputGrad
    const needSomething = needInput || params.length > 0 || conds.some((c) => c.requiresGrad)
    if (!needSomething || (gy === null && gLogDet === null)) break
    const { xk, gx, gc, gp } = tidy(() => {
      // 1.–3. in one go, where the module offers it (a coupling block evaluates its subnet once)
      const condNeeds = conds.map((c) => c.requiresGrad)
      const fused = !rev && hasRebuild(step.module) ? fusedStep(step.module, y, conds, condNeeds, params, needInput, gy, gLogDet) : null
      if (fused) return fused
      // 1. the block's input, rebuilt from its output
      const rebuilt = noGrad(() =>
        tidy(() => {
          const r = step.module.forward([y], conds, !rev, false)[0][0]
          return r === y ? y.detach() : r // y is disposed below; the rebuilt input needs a handle of its own
        }),
      )
      // 2.–3. the block's local graph, and the gradients through it
      const local = enableGrad(() => {
        const xIn = rebuilt.detach()
        xIn.requiresGrad = needInput
        const cIn = detachedConds(conds, condNeeds)
        const [out, j] = step.module.forward([xIn], cIn, rev, jac)
        return localBackward([out[0]], j, [gy], gLogDet, [xIn, ...cIn, ...params])
      })
      return { xk: rebuilt, gx: local[0], gc: local.slice(1, 1 + conds.length), gp: local.slice(1 + conds.length) }
    })
    // 4. the local graph is gone (tidy); move on to the previous block
    if (y !== z) y.dispose()
    y = xk
    gy?.dispose()
    gy = gx
    conds.forEach((c, i) => (c.requiresGrad ? accumulate(c, gc[i]) : gc[i]?.dispose()))
    params.forEach((p, i) => accumulate(p, gp[i]))
  }
  if (y !== z) y.dispose()
  if (wantInputGrad) accumulate(x, gy)
  else gy?.dispose()
  return inputs.map((t) => sums.take(t))
}

/**
 * One node of a graph, in execution order: it reads the values `ins` and the conditions `conds` and writes the
 * values `outs` (value keys, in the direction of the run: with rev a node reads its outputs and writes its
 * inputs, in the order its module takes and returns them).
 */
export interface GraphStep {
  module: InvertibleModule
  ins: string[]
  outs: string[]
  conds: string[]
  /** Used in error messages, e.g. "Node 'coupling1'". */
  label: string
}

/**
 * Invertible backprop over a directed acyclic graph of invertible modules (GraphINN.invertibleBackprop).
 *
 * Forward: `steps` run in order (each with `rev`) under noGrad; a value is freed as soon as its last reader
 * ran, except the graph's outputs (`ends`) and values that some node reads as a condition (kept for the
 * backward pass, as a condition cannot be rebuilt by the node it conditions). ONE tape entry stands for the
 * whole graph: its inputs are the sources (graph inputs and conditions) and parameters that require grad,
 * its outputs the values at `ends` and the summed log-det.
 *
 * Backward, from the last step to the first: a step's output values are known (graph outputs, values kept
 * as conditions, or rebuilt by later steps); its input values are rebuilt with the module in the opposite
 * direction (noGrad, jac = false); the module runs again on detached copies of them (requiring grad where a
 * gradient is wanted) with recording on, the gradients of its outputs and of the log-det are backpropagated
 * through that local graph, which is then freed; the gradients of its inputs and conditions are summed per
 * value (for the steps that produced them) and its parameters' gradients per parameter.
 * Returns [values at ends, summed logDet (batch,)].
 */
export function invertibleGraphForward(
  name: string,
  steps: readonly GraphStep[],
  sources: ReadonlyMap<string, Tensor>,
  ends: readonly string[],
  rev: boolean,
  jac: boolean,
): [Tensor[], Tensor] {
  const first = sources.values().next().value as Tensor
  const batch = first.shape[0]
  const condKeys = new Set(steps.flatMap((step) => step.conds))
  // which values carry a gradient: sources that require grad, and whatever a step with such an input,
  // condition or parameter writes
  const stepParams = steps.map((step) => gradParams(step.module))
  const needs = new Set<string>()
  for (const [k, t] of sources) if (t.requiresGrad) needs.add(k)
  steps.forEach((step, k) => {
    if (stepParams[k].length > 0 || [...step.ins, ...step.conds].some((v) => needs.has(v))) step.outs.forEach((v) => needs.add(v))
  })

  const sourceTensors = new Set(sources.values())
  const kept = new Map<string, Tensor>() // intermediate values read as conditions, for the backward pass
  const [outs, logDet] = noGrad(() => {
    const values = new Map<string, Tensor>(sources)
    const readers = new Map<string, number>()
    for (const step of steps) for (const v of [...step.ins, ...step.conds]) readers.set(v, (readers.get(v) ?? 0) + 1)
    const endSet = new Set(ends)
    const held = (t: Tensor): boolean => sourceTensors.has(t) || [...values.values()].includes(t) || [...kept.values()].includes(t)
    const release = (v: string): void => {
      const t = values.get(v)
      values.delete(v)
      if (t && !held(t)) t.dispose()
    }
    let ld = zeros([batch], { dtype: first.dtype, device: first.device })
    for (const step of steps) {
      const ins = step.ins.map((v) => values.get(v) as Tensor)
      const cs = step.conds.map((v) => values.get(v) as Tensor)
      const [ys, nextLd] = tidy((): [Tensor[], Tensor] => {
        const [out, j] = runStep(step, ins, cs, rev, jac)
        // as GraphINN's normal forward: with jac false the log-det stays zeros, whatever the modules return
        return [out, jac ? addLogDet(ld, j, step.label) : ld]
      })
      if (ld !== nextLd) ld.dispose()
      ld = nextLd
      step.outs.forEach((v, i) => {
        values.set(v, ys[i])
        if (condKeys.has(v) && !sources.has(v)) kept.set(v, ys[i])
      })
      for (const v of [...step.ins, ...step.conds]) {
        const left = (readers.get(v) as number) - 1
        readers.set(v, left)
        if (left === 0 && !endSet.has(v)) release(v)
      }
    }
    // the recorded outputs must be tensors of their own (never a caller's tensor, nor one tensor twice)
    const result: Tensor[] = []
    for (const v of ends) {
      const t = values.get(v) as Tensor
      result.push(sourceTensors.has(t) || result.includes(t) || [...kept.values()].includes(t) ? t.detach() : t)
    }
    return [result, ld]
  })

  const inputs = gradInputs([...sources.values(), ...stepParams.flat()])
  record(name, inputs, [...outs, logDet], (grads) => {
    try {
      return graphBackward(steps, stepParams, sources, kept, needs, ends, outs, rev, jac, grads, inputs)
    } finally {
      for (const t of kept.values()) t.dispose()
      kept.clear()
    }
  })
  return [outs, logDet]
}

/** module.forward with the graph's checks: the step's label on errors, and the number of outputs. */
function runStep(step: GraphStep, ins: Tensor[], cs: Tensor[], rev: boolean, jac: boolean): [Tensor[], Tensor | number | null] {
  let result
  try {
    result = step.module.forward(ins, cs, rev, jac)
  } catch (e) {
    if (e instanceof InnflowError) throw new InnflowError(e.code, `${step.label}: ${e.message}`)
    throw e
  }
  const [outs, j] = result
  if (!Array.isArray(outs) || outs.length !== step.outs.length)
    throw new InnflowError('ERR_GRAPH', `${step.label}: the module returned ${Array.isArray(outs) ? outs.length : 'no list of'} output(s), expected ${step.outs.length}`)
  return [outs, j as Tensor | number | null]
}

function graphBackward(
  steps: readonly GraphStep[],
  stepParams: Tensor[][],
  sources: ReadonlyMap<string, Tensor>,
  kept: ReadonlyMap<string, Tensor>,
  needs: ReadonlySet<string>,
  ends: readonly string[],
  outs: Tensor[],
  rev: boolean,
  jac: boolean,
  grads: (Tensor | null)[],
  inputs: Tensor[],
): (Tensor | null)[] {
  const sums = new GradSums<Tensor>() // per tape input
  const valueGrads = new GradSums<string>() // per value (edge)
  const values = new Map<string, Tensor>() // values known so far (owned here unless they are outputs or kept)
  const owned = new Set<Tensor>()
  ends.forEach((v, i) => {
    values.set(v, outs[i])
    const g = grads[i]
    valueGrads.add(v, g ? g.reshape(g.shape) : null) // a handle of our own; the tape disposes grads
  })
  const gLogDet = jac ? grads[ends.length] : null
  const drop = (v: string): void => {
    const t = values.get(v)
    values.delete(v)
    if (t && owned.has(t) && ![...values.values()].includes(t)) {
      owned.delete(t)
      t.dispose()
    }
    valueGrads.take(v)?.dispose()
  }
  try {
    for (let k = steps.length - 1; k >= 0; k--) {
      const step = steps[k]
      const params = stepParams[k]
      const inNeeds = step.ins.map((v) => needs.has(v))
      const condNeeds = step.conds.map((v) => needs.has(v))
      if (!inNeeds.some(Boolean) && !condNeeds.some(Boolean) && params.length === 0) {
        step.outs.forEach(drop)
        continue
      }
      const ys = step.outs.map((v) => {
        const t = values.get(v)
        if (!t) throw new InnflowError('ERR_GRAPH', `${step.label}: invertible backprop found no value for one of its outputs (${v})`)
        return t
      })
      const gys = step.outs.map((v) => valueGrads.take(v))
      const conds = step.conds.map((v) => (sources.get(v) ?? kept.get(v) ?? values.get(v)) as Tensor)
      const anyGrad = gys.some((g) => g !== null) || gLogDet !== null
      const { xs, gx, gc, gp } = tidy(() => {
        // 1.–3. in one go, where the module offers it (single input and output, forward direction)
        if (anyGrad && !rev && step.ins.length === 1 && ys.length === 1 && hasRebuild(step.module)) {
          const fused = fusedStep(step.module, ys[0], conds, condNeeds, params, inNeeds[0], gys[0], gLogDet)
          if (fused) return { xs: [fused.xk], gx: [fused.gx], gc: fused.gc, gp: fused.gp }
        }
        // 1. the inputs, rebuilt from the outputs
        const rebuilt = noGrad(() =>
          tidy(() => {
            const [r] = runStep({ ...step, outs: step.ins }, ys, conds, !rev, false)
            // the rebuilt inputs need handles of their own (outputs are disposed below)
            return r.map((t, i) => (ys.includes(t) || conds.includes(t) || r.indexOf(t) !== i ? t.detach() : t))
          }),
        )
        if (!anyGrad) return { xs: rebuilt, gx: rebuilt.map(() => null), gc: conds.map(() => null), gp: params.map(() => null) }
        // 2.–3. the step's local graph, and the gradients through it
        const local = enableGrad(() => {
          const xIn = rebuilt.map((t, i) => {
            const d = t.detach()
            d.requiresGrad = inNeeds[i]
            return d
          })
          const cIn = detachedConds(conds, condNeeds)
          const [o, j] = runStep(step, xIn, cIn, rev, jac)
          return localBackward(o, j, gys, gLogDet, [...xIn, ...cIn, ...params])
        })
        const n = rebuilt.length
        return { xs: rebuilt, gx: local.slice(0, n), gc: local.slice(n, n + conds.length), gp: local.slice(n + conds.length) }
      })
      // 4. the local graph is gone (tidy); hand the gradients on
      gys.forEach((g) => g?.dispose())
      step.outs.forEach(drop)
      step.ins.forEach((v, i) => {
        values.set(v, xs[i])
        owned.add(xs[i])
        if (inNeeds[i]) valueGrads.add(v, gx[i])
        else gx[i]?.dispose()
      })
      step.conds.forEach((v, i) => (condNeeds[i] ? valueGrads.add(v, gc[i]) : gc[i]?.dispose()))
      params.forEach((p, i) => sums.add(p, gp[i]))
    }
    for (const [v, t] of sources) if (t.requiresGrad) sums.add(t, valueGrads.take(v))
    return inputs.map((t) => sums.take(t))
  } finally {
    valueGrads.disposeAll()
    sums.disposeAll()
    for (const t of owned) t.dispose()
  }
}
