/** Adam (Kingma & Ba) with PyTorch's exact update, applied by one native multi-tensor call per step. */
import { argumentError } from '../errors'
import { Tensor } from '../tensor'
import { captureNative, onReplay } from '../capture'
import { checkNumber, matchDtype, N, Optimizer, readOptions, stateCopy, stateZeros } from './optimizer'

/** Options of {@link Adam} (torch.optim.Adam's, camelCase). */
export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr?: number
  /** Decay rates of the first and second moment estimates (default [0.9, 0.999]). */
  betas?: [number, number]
  /** Added to the denominator for stability (default 1e-8). */
  eps?: number
  /** L2 penalty added to the gradient, as torch.optim.Adam does (not AdamW's decoupled decay; default 0). */
  weightDecay?: number
}

interface AdamState {
  step: number
  expAvg: Tensor
  expAvgSq: Tensor
}

/**
 * Adam. For each parameter with a gradient g at step t (counted per parameter):
 * g ← g + weightDecay·p; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
 * p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + eps).
 * @example const opt = new optim.Adam(model.parameters(), { lr: 1e-3 })
 */
export class Adam extends Optimizer {
  private _lr: number
  readonly betas: readonly [number, number]
  readonly eps: number
  readonly weightDecay: number
  protected readonly stateNames = ['step', 'exp_avg', 'exp_avg_sq'] as const
  private state: (AdamState | undefined)[] = []

  constructor(params: Iterable<Tensor>, options?: AdamOptions) {
    super('Adam', params)
    const o = readOptions<AdamOptions>('Adam', options, ['lr', 'betas', 'eps', 'weightDecay'])
    this._lr = checkNumber('Adam', 'lr', o.lr ?? 1e-3, 0)
    const betas = o.betas ?? [0.9, 0.999]
    if (!Array.isArray(betas) || betas.length !== 2) throw argumentError('Adam', 'betas', 'a pair [beta1, beta2]', betas)
    checkNumber('Adam', 'betas[0]', betas[0], 0, 1, true)
    checkNumber('Adam', 'betas[1]', betas[1], 0, 1, true)
    this.betas = Object.freeze([betas[0], betas[1]] as [number, number])
    this.eps = checkNumber('Adam', 'eps', o.eps ?? 1e-8, 0)
    this.weightDecay = checkNumber('Adam', 'weightDecay', o.weightDecay ?? 0, 0)
  }

  /** The learning rate; may be changed between steps (a schedule). */
  get lr(): number {
    return this._lr
  }
  set lr(v: number) {
    this._lr = checkNumber('Adam', 'lr', v, 0)
  }

  step(): void {
    const idx: number[] = []
    this.params.forEach((p, i) => {
      if (p.grad) idx.push(i)
    })
    if (idx.length === 0) return
    const created: number[] = []
    const states = idx.map((i) => {
      const p = this.params[i]
      let s = this.state[i]
      if (!s) {
        s = this.state[i] = { step: 0, expAvg: stateZeros(p), expAvgSq: stateZeros(p) }
        created.push(i)
      }
      s.expAvg = matchDtype(s.expAvg, p)
      s.expAvgSq = matchDtype(s.expAvgSq, p)
      return s
    })
    let slot
    try {
      slot = N.adamStep(
        idx.map((i) => this.params[i].handle),
        idx.map((i) => (this.params[i].grad as Tensor).handle),
        states.map((s) => s.expAvg.handle),
        states.map((s) => s.expAvgSq.handle),
        states.map((s) => s.step + 1),
        this._lr, this.betas[0], this.betas[1], this.eps, this.weightDecay,
      )
    } catch (e) {
      // a refused step (a gradient of the wrong shape or dtype) leaves the state as it was
      for (const i of created) {
        this.state[i]?.expAvg.dispose()
        this.state[i]?.expAvgSq.dispose()
        this.state[i] = undefined
      }
      throw e
    }
    for (const s of states) s.step++
    // Inside a step being compiled: before each replay, count the step and hand the kernel this step's scalars
    // (the learning rate may have been changed by a schedule).
    if (slot) {
      const kept = slot
      onReplay(() => {
        for (const s of states) s.step++
        captureNative.setSlot(kept, [this._lr, this.betas[0], this.betas[1], this.eps, this.weightDecay, ...states.map((s) => s.step)])
      })
    }
  }

  /** The step count of parameter i (0 before its first update). */
  stepCount(i: number): number {
    return this.state[i]?.step ?? 0
  }

  protected stateOf(i: number): Record<string, Tensor | number> | null {
    const s = this.state[i]
    return s ? { step: s.step, exp_avg: s.expAvg, exp_avg_sq: s.expAvgSq } : null
  }
  protected setState(i: number, e: Map<string, Tensor>): void {
    const p = this.params[i]
    this.state[i] = {
      step: (e.get('step') as Tensor).item(),
      expAvg: stateCopy(e.get('exp_avg') as Tensor, p),
      expAvgSq: stateCopy(e.get('exp_avg_sq') as Tensor, p),
    }
  }
  protected clearState(): void {
    for (const s of this.state) {
      s?.expAvg.dispose()
      s?.expAvgSq.dispose()
    }
    this.state = []
  }
}
