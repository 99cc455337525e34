/**
 * Invertible backpropagation (memory-saving training) for a chain of invertible modules, as used by
 * {@link SequenceINN} when `invertibleBackprop` is on.
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
export function checkDeterministic(fn: string, steps: readonly ChainStep[]): void {
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
  const inputs: Tensor[] = []
  const seen = new Set<Tensor>()
  const add = (t: Tensor): void => {
    if (t.requiresGrad && !seen.has(t)) {
      seen.add(t)
      inputs.push(t)
    }
  }
  add(x)
  for (const step of steps) step.c.forEach(add)
  const stepParams = steps.map((step) => [...new Set(step.module.parameters())].filter((p) => p.requiresGrad))
  stepParams.forEach((ps) => ps.forEach(add))

  record('SequenceINN.invertibleBackprop', inputs, [z, logDet], (grads) => chainBackward(steps, stepParams, x, z, rev, jac, grads[0], grads[1], inputs))
  return [z, logDet]
}

/**
 * Backpropagates (gy, gLogDet) from a module's recomputed output and log-det through its local graph; returns
 * the gradients of `capture` (null where none) and frees the graph.
 */
function localBackward(out: Tensor, j: Tensor | number | null, gy: Tensor | null, gLogDet: Tensor | null, capture: Tensor[]): (Tensor | null)[] {
  const targets: Tensor[] = []
  const seeds: Tensor[] = []
  if (gy && out.requiresGrad) {
    targets.push(out)
    seeds.push(gy)
  }
  if (gLogDet && j instanceof Tensor && j.requiresGrad) {
    targets.push(j)
    // addLogDet broadcasts a one-element log-det over the batch: its gradient is the sum
    seeds.push(noGrad(() => (j.size === 1 ? gLogDet.sum() : gLogDet).reshape(j.shape)))
  }
  if (targets.length === 0) return capture.map(() => null)
  // A join node makes both outputs one root for the engine; it hands each seed on as a new handle.
  const root = zeros([], { dtype: out.dtype, device: out.device })
  record('SequenceINN.invertibleBackprop.seed', targets, [root], () => seeds.map((s) => s.reshape(s.shape)))
  const one = full([], 1, { dtype: out.dtype, device: out.device })
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
  params: Tensor[],
  needInput: boolean,
  gy: Tensor | null,
  gLogDet: Tensor | null,
): { xk: Tensor; gx: Tensor | null; gc: (Tensor | null)[]; gp: (Tensor | null)[] } | null {
  return enableGrad(() => {
    const cIn = conds.map((c) => {
      const d = c.detach()
      d.requiresGrad = c.requiresGrad
      return d
    })
    const r = module._rebuildForBackward(y, cIn, needInput)
    if (!r) return null
    const n = r.leaves.length
    const g = localBackward(r.out, r.logDet, gy, gLogDet, [...r.leaves, ...cIn, ...params])
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
  const sums = new Map<Tensor, Tensor>()
  const accumulate = (t: Tensor, g: Tensor | null): void => {
    if (!g) return
    const prev = sums.get(t)
    if (prev) {
      sums.set(t, noGrad(() => prev.add(g)))
      prev.dispose()
      g.dispose()
    } else sums.set(t, g)
  }
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
      const fused = !rev && hasRebuild(step.module) ? fusedStep(step.module, y, conds, params, needInput, gy, gLogDet) : null
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
        const cIn = conds.map((c) => {
          const d = c.detach()
          d.requiresGrad = c.requiresGrad
          return d
        })
        const [out, j] = step.module.forward([xIn], cIn, rev, jac)
        return localBackward(out[0], j, gy, gLogDet, [xIn, ...cIn, ...params])
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
  return inputs.map((t) => sums.get(t) ?? null)
}
