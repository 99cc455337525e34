/**
 * A one-line progress bar for long training jobs, redrawn in place with '\r' on a terminal:
 *   step  1200/5000 [=========>                   ]  24% | loss 2.4311 | 18.2k samples/s | ETA 3:41
 * It writes nothing when the stream is not a TTY (logs, CI, pipes) unless forced, and redraws at most
 * every `intervalMs` milliseconds so that fast steps do not spend their time on the terminal.
 */

/** Where the bar is written: process.stderr, or anything with write() (and isTTY / columns). */
export interface ProgressStream {
  write(s: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface ProgressBarOptions {
  /** The stream (default process.stderr). */
  stream?: ProgressStream
  /** Draw even when the stream is not a TTY (tests); default: only on a TTY. */
  force?: boolean
  /** The smallest time between two redraws in milliseconds (default 100; the last step is always drawn). */
  intervalMs?: number
  /** Clock in milliseconds (default performance.now; tests pass their own). */
  now?: () => number
}

/** m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** 950, 12.3k, 4.56M. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '?'
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`
  if (perSecond >= 1e4) return `${(perSecond / 1e3).toFixed(1)}k`
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1)
}

/** A progress bar from step `first` to step `total`. */
export class ProgressBar {
  readonly enabled: boolean
  private readonly stream: ProgressStream
  private readonly intervalMs: number
  private readonly now: () => number
  private readonly started: number
  private lastDraw = -Infinity
  private lastLength = 0
  private drawn = false

  /**
   * @param first the step the run starts after (0, or the step of the checkpoint it resumes)
   * @param total the last step
   */
  constructor(private readonly first: number, private readonly total: number, opts: ProgressBarOptions = {}) {
    this.stream = opts.stream ?? process.stderr
    this.enabled = opts.force === true || this.stream.isTTY === true
    this.intervalMs = opts.intervalMs ?? 100
    this.now = opts.now ?? (() => performance.now())
    this.started = this.now()
  }

  /** The line shown after `step` with its loss and throughput (exposed for tests). */
  line(step: number, loss: number, samplesPerSecond: number): string {
    const done = this.total > 0 ? step / this.total : 1
    const elapsed = (this.now() - this.started) / 1000
    const stepsDone = step - this.first
    const eta = stepsDone > 0 ? (elapsed / stepsDone) * (this.total - step) : NaN
    const width = String(this.total).length
    const head = `step ${String(step).padStart(width)}/${this.total}`
    const tail =
      ` ${String(Math.floor(done * 100)).padStart(3)}% | loss ${Number.isFinite(loss) ? loss.toFixed(4) : String(loss)}` +
      ` | ${formatRate(samplesPerSecond)} samples/s | ${step >= this.total ? `${formatDuration(elapsed)} elapsed` : `ETA ${formatDuration(eta)}`}`
    const columns = this.stream.columns && this.stream.columns > 0 ? this.stream.columns : 100
    const barWidth = Math.min(30, columns - 1 - head.length - tail.length - 3)
    if (barWidth < 5) return (head + tail).slice(0, columns - 1)
    const filled = Math.min(barWidth, Math.floor(done * barWidth))
    const bar = '='.repeat(filled) + (filled < barWidth ? '>' + ' '.repeat(barWidth - filled - 1) : '')
    return `${head} [${bar}]${tail}`
  }

  /** Redraws the bar after `step` (rate-limited; always on the last step). */
  update(step: number, loss: number, samplesPerSecond: number): void {
    if (!this.enabled) return
    const t = this.now()
    if (step < this.total && t - this.lastDraw < this.intervalMs) return
    this.lastDraw = t
    const text = this.line(step, loss, samplesPerSecond)
    // pad with spaces to erase the rest of a longer previous line
    this.stream.write('\r' + text + ' '.repeat(Math.max(0, this.lastLength - text.length)))
    this.lastLength = text.length
    this.drawn = true
  }

  /** Ends the line (so that later output starts on a fresh one). */
  finish(): void {
    if (this.enabled && this.drawn) this.stream.write('\n')
    this.drawn = false
  }
}
