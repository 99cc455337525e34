/**
 * The autograd tape. Every differentiable op records a {@link GradNode}: the tensors it read and a function
 * that maps the gradients of its outputs to the gradients of its inputs by calling the op's native backward
 * kernel. `backward()` walks the recorded graph once in reverse topological order, accumulates gradients
 * into the `.grad` of leaf tensors (as PyTorch does, summing over calls), and frees the graph.
 */
import { InnflowError } from '../errors'
import { untrack } from '../scope'
import type { Tensor } from '../tensor'
import * as tensorModule from '../tensor'

/** One recorded op: its inputs, how many outputs it made, and its backward function. */
export interface GradNode {
  readonly name: string
  inputs: Tensor[]
  readonly nOutputs: number
  /** Maps output gradients (null where an output received none) to input gradients; null once freed. */
  backward: ((grads: (Tensor | null)[]) => (Tensor | null)[]) | null
}

/** Which output of which node produced a tensor. */
export interface GradEdge {
  node: GradNode
  index: number
}

let gradDisabled = 0

/** True unless inside {@link noGrad}. */
export function isGradEnabled(): boolean {
  return gradDisabled === 0
}

/** Runs fn without recording any op on the tape (for evaluation, or updates made by hand). */
export function noGrad<T>(fn: () => T): T {
  gradDisabled++
  try {
    return fn()
  } finally {
    gradDisabled--
  }
}

/** Runs fn with recording on, even inside {@link noGrad} (torch.enable_grad), e.g. to take a vector–Jacobian product. */
export function enableGrad<T>(fn: () => T): T {
  const saved = gradDisabled
  gradDisabled = 0
  try {
    return fn()
  } finally {
    gradDisabled = saved
  }
}

/**
 * Records an op that read `inputs` and produced `outputs`, if any input requires grad and recording is on.
 * `backward` receives one gradient per output (null for outputs that got none) and returns one per input
 * (null where an input needs none; it may skip inputs whose `requiresGrad` is false).
 */
export function record(
  name: string,
  inputs: Tensor[],
  outputs: Tensor[],
  backward: (grads: (Tensor | null)[]) => (Tensor | null)[],
): void {
  if (gradDisabled > 0 || !inputs.some((t) => t.requiresGrad)) return
  const node: GradNode = { name, inputs, nOutputs: outputs.length, backward }
  outputs.forEach((out, index) => out._setGradFn({ node, index }))
}

function topologicalOrder(root: GradNode): GradNode[] {
  const order: GradNode[] = []
  const visited = new Set<GradNode>()
  const stack: [GradNode, number][] = [[root, 0]]
  visited.add(root)
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    const [node, i] = top
    if (i < node.inputs.length) {
      top[1]++
      const edge = node.inputs[i]._gradFn
      if (edge && !visited.has(edge.node)) {
        visited.add(edge.node)
        stack.push([edge.node, 0])
      }
    } else {
      stack.pop()
      order.push(node)
    }
  }
  return order.reverse() // root first
}

/**
 * The engine behind `tensor.backward(grad)` and {@link grad}. Without `capture` it accumulates into the
 * `.grad` of leaves; with it, it returns the gradients of the captured tensors and leaves `.grad` alone.
 */
export function runBackward(root: Tensor, grad: Tensor, capture?: Tensor[]): (Tensor | null)[] {
  const captured = new Map<Tensor, Tensor>()
  const take = (t: Tensor, g: Tensor): void => {
    const prev = captured.get(t)
    if (prev) {
      captured.set(t, prev.add(g))
      prev.dispose()
      g.dispose()
    } else captured.set(t, g)
  }
  const capturing = capture !== undefined
  const wanted = new Set(capture ?? [])
  noGrad(() => {
    const edge = root._gradFn
    if (!edge || wanted.has(root)) {
      if (capturing) {
        if (wanted.has(root)) take(root, grad.reshape(root.shape))
      } else accumulateLeaf(root, grad.reshape(root.shape))
      return
    }
    const buffers = new Map<GradNode, (Tensor | null)[]>()
    const seed: (Tensor | null)[] = new Array(edge.node.nOutputs).fill(null)
    seed[edge.index] = grad.reshape(root.shape) // a new handle: the caller's tensor is never disposed here
    buffers.set(edge.node, seed)
    for (const node of topologicalOrder(edge.node)) {
      const grads = buffers.get(node)
      if (!grads) continue
      buffers.delete(node)
      // a captured non-leaf tensor has its full gradient once its producer is reached
      if (capturing)
        for (const t of wanted)
          if (t._gradFn?.node === node && grads[t._gradFn.index]) take(t, (grads[t._gradFn.index] as Tensor).reshape(t.shape))
      if (!node.backward)
        throw new InnflowError(
          'ERR_GRAPH',
          `backward: the graph through '${node.name}' was already used by an earlier backward() and freed; ` +
            'run the forward pass again',
        )
      const inputGrads = node.backward(grads)
      node.inputs.forEach((input, i) => {
        let g = inputGrads[i]
        if (!g) return
        if (!input.requiresGrad) {
          g.dispose()
          return
        }
        // A backward function may hand back one of its incoming gradients; give it its own handle.
        if (grads.includes(g)) g = g.reshape(g.shape)
        const e = input._gradFn
        if (e) {
          let buf = buffers.get(e.node)
          if (!buf) {
            buf = new Array(e.node.nOutputs).fill(null)
            buffers.set(e.node, buf)
          }
          const prev = buf[e.index]
          if (prev) {
            buf[e.index] = prev.add(g)
            prev.dispose()
            g.dispose()
          } else {
            buf[e.index] = g
          }
        } else if (capturing) {
          if (wanted.has(input)) take(input, g)
          else g.dispose()
        } else {
          accumulateLeaf(input, g)
        }
      })
      for (const g of grads) g?.dispose()
      node.backward = null
      node.inputs = []
    }
  })
  return (capture ?? []).map((t) => captured.get(t) ?? null)
}

/**
 * The gradients of `output` with respect to `inputs` (torch.autograd.grad): `gradOutput` defaults to 1 for
 * a one-element output. Leaves' `.grad` are not touched; an input the output does not depend on gets null.
 * The graph is freed, as by backward().
 */
export function grad(output: Tensor, inputs: Tensor[], gradOutput?: Tensor): (Tensor | null)[] {
  if (!output.requiresGrad) throw new InnflowError('ERR_ARGUMENT', 'grad: the output does not require grad')
  if (!Array.isArray(inputs)) throw new InnflowError('ERR_ARGUMENT', 'grad: inputs must be an array of tensors')
  if (gradOutput === undefined) {
    if (output.size !== 1) throw new InnflowError('ERR_SHAPE', `grad: gradOutput is required for an output of shape [${output.shape}]`)
    const one = tensorModule.full(output.shape as number[], 1, { dtype: output.dtype, device: output.device })
    try {
      return runBackward(output, one, inputs)
    } finally {
      one.dispose()
    }
  }
  if (gradOutput.shape.join() !== output.shape.join()) throw new InnflowError('ERR_SHAPE', `grad: gradOutput shape [${gradOutput.shape}] does not match [${output.shape}]`)
  return runBackward(output, gradOutput, inputs)
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (!leaf.requiresGrad) {
    g.dispose()
    return
  }
  const prev = leaf.grad
  if (prev && !prev.isDisposed) {
    const sum = prev.add(g)
    g.dispose()
    prev.dispose()
    leaf._setGrad(sum)
  } else {
    leaf._setGrad(g)
  }
}

/** @internal Gradients belong to their leaf, not to the tidy scope that made them. */
export function adoptGrad(g: Tensor): void {
  g._kept = true
  untrack(g)
}
