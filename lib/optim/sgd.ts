/** Stochastic gradient descent with momentum, dampening, L2 decay and Nesterov (torch.optim.SGD), natively. */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { captureNative, onReplay } from '../capture'
import { checkNumber, matchDtype, N, Optimizer, readOptions, stateCopy, stateZeros } from './optimizer'

/** Options of {@link SGD} (torch.optim.SGD's, camelCase). */
export interface SGDOptions {
  /** Learning rate (default 1e-3, as in PyTorch >= 2.2). */
  lr?: number
  /** Momentum factor (default 0). */
  momentum?: number
  /** Dampening of the momentum (default 0). */
  dampening?: number
  /** L2 penalty added to the gradient (default 0). */
  weightDecay?: number
  /** Nesterov momentum (needs momentum > 0 and dampening = 0; default false). */
  nesterov?: boolean
}

/**
 * SGD. For each parameter with a gradient: d ← g + weightDecay·p; with momentum, buf ← d on the first step,
 * else buf ← momentum·buf + (1 − dampening)·d, and d ← d + momentum·buf (Nesterov) or buf; p ← p − lr·d.
 */
export class SGD extends Optimizer {
  private _lr: number
  readonly momentum: number
  readonly dampening: number
  readonly weightDecay: number
  readonly nesterov: boolean
  protected readonly stateNames = ['momentum_buffer'] as const
  private buffers: (Tensor | undefined)[] = []

  constructor(params: Iterable<Tensor>, options?: SGDOptions) {
    super('SGD', params)
    const o = readOptions<SGDOptions>('SGD', options, ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov'])
    this._lr = checkNumber('SGD', 'lr', o.lr ?? 1e-3, 0)
    this.momentum = checkNumber('SGD', 'momentum', o.momentum ?? 0, 0)
    this.dampening = checkNumber('SGD', 'dampening', o.dampening ?? 0, -Infinity)
    this.weightDecay = checkNumber('SGD', 'weightDecay', o.weightDecay ?? 0, 0)
    const nesterov = o.nesterov ?? false
    if (typeof nesterov !== 'boolean') throw new InnflowError('ERR_ARGUMENT', `SGD: nesterov must be a boolean, got ${String(nesterov)}`)
    if (nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new InnflowError('ERR_ARGUMENT', `SGD: nesterov momentum requires momentum > 0 and dampening = 0 (got momentum ${this.momentum}, dampening ${this.dampening})`)
    this.nesterov = nesterov
  }

  /** The learning rate; may be changed between steps (a schedule). */
  get lr(): number {
    return this._lr
  }
  set lr(v: number) {
    this._lr = checkNumber('SGD', 'lr', v, 0)
  }

  step(): void {
    const idx: number[] = []
    this.params.forEach((p, i) => {
      if (p.grad) idx.push(i)
    })
    if (idx.length === 0) return
    const useMomentum = this.momentum !== 0
    const created: number[] = []
    const bufs: Tensor[] = []
    const fresh: number[] = []
    if (useMomentum)
      for (const i of idx) {
        const p = this.params[i]
        let b = this.buffers[i]
        if (!b) {
          // its values are overwritten by the first step (fresh = 1)
          b = this.buffers[i] = stateZeros(p)
          created.push(i)
        }
        b = this.buffers[i] = matchDtype(b, p)
        bufs.push(b)
        fresh.push(created.includes(i) ? 1 : 0)
      }
    let slot
    try {
      slot = N.sgdStep(
        idx.map((i) => this.params[i].handle),
        idx.map((i) => (this.params[i].grad as Tensor).handle),
        bufs.map((b) => b.handle),
        fresh,
        this._lr, this.momentum, this.dampening, this.weightDecay, this.nesterov,
      )
    } catch (e) {
      for (const i of created) {
        this.buffers[i]?.dispose()
        this.buffers[i] = undefined
      }
      throw e
    }
    // Inside a step being compiled: before each replay, hand the kernel the current lr; momentum buffers are no
    // longer fresh after the captured step.
    if (slot) {
      const kept = slot
      const count = fresh.length
      onReplay(() => captureNative.setSlot(kept, [this._lr, this.momentum, this.dampening, this.weightDecay, ...new Array<number>(count).fill(0)]))
    }
  }

  protected stateOf(i: number): Record<string, Tensor | number> | null {
    const b = this.buffers[i]
    return b ? { momentum_buffer: b } : null
  }
  protected setState(i: number, e: Map<string, Tensor>): void {
    this.buffers[i] = stateCopy(e.get('momentum_buffer') as Tensor, this.params[i])
  }
  protected clearState(): void {
    for (const b of this.buffers) b?.dispose()
    this.buffers = []
  }
}
