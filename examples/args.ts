/** Command-line flags of the examples: `--name value`, and the folder the PNGs go to. */
import * as path from 'node:path'

/** The number after `--name`, or `fallback`. */
export function numberArg(name: string, fallback: number, argv: readonly string[] = process.argv): number {
  const i = argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const v = Number(argv[i + 1])
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number, got ${argv[i + 1]}`)
  return v
}

/** The string after `--name`, or `fallback`. */
export function stringArg(name: string, fallback: string | undefined, argv: readonly string[] = process.argv): string | undefined {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback
}

/** examples/out under the current folder (the repository root when run through npm). */
export const defaultOutDir = (): string => path.join(process.cwd(), 'examples', 'out')
