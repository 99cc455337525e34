/** The codes an {@link InnflowError} carries; `code` is what to branch on (not the message). */
export type ErrorCode =
  | 'ERR_ARGUMENT'
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_DISPOSED'
  | 'ERR_GRAPH'
  | 'ERR_CHECKPOINT'
  | 'ERR_CUDA_UNAVAILABLE'
  | 'ERR_OOM'
  | 'ERR_CAPTURE'
  | 'ERR_NATIVE'

/**
 * Every error innflow throws on purpose, from TypeScript or from the native layer. The message names the
 * argument, what was expected and what was received.
 */
export class InnflowError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'InnflowError'
    this.code = code
  }
}

/** Describes a received value for error messages: `-1 (number)`, `[2, 3] (array)`, `null`. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return `[${value.map((v) => (typeof v === 'number' ? String(v) : typeof v)).join(', ')}] (array)`
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object'
  if (typeof value === 'string') return `'${value}' (string)`
  return `${String(value)} (${typeof value})`
}

/** Throws ERR_ARGUMENT: "<fn>: <name> must be <expected>, got <actual>". */
export function argumentError(fn: string, name: string, expected: string, actual: unknown): InnflowError {
  return new InnflowError('ERR_ARGUMENT', `${fn}: ${name} must be ${expected}, got ${describe(actual)}`)
}
