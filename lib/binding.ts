/**
 * The only place that loads the native addon. Each op family declares the slice of the binding it uses
 * (`bindingFor<...>()`), so the typed surface lives next to the code that calls it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { InnflowError } from './errors'

/** An opaque handle to a tensor owned by the native layer. */
export interface NativeTensor {
  readonly __nativeTensor: never
  shape(): number[]
  dtype(): 'float32' | 'float64'
  device(): 'cpu' | 'cuda'
  /** [dtype, device, ...shape] in one call. */
  meta(): [string, string, ...number[]]
  readInto(out: Float32Array | Float64Array): void
  item(): number
  dispose(): void
  isDisposed(): boolean
  sharesStorage(other: NativeTensor): boolean
}

/** The functions every part of the library may use. */
export interface CoreBinding {
  setErrorClass(cls: typeof InnflowError): void
  setNumThreads(n: number): void
  getNumThreads(): number
  fromArray(values: number[] | Float32Array | Float64Array, shape: readonly number[], dtype: string, device?: string): NativeTensor
  full(shape: readonly number[], value: number, dtype: string, device?: string): NativeTensor
  toDevice(x: NativeTensor, device: string): NativeTensor
  cast(x: NativeTensor, dtype: string): NativeTensor
  copyInto(dst: NativeTensor, src: NativeTensor): void
  reshape(x: NativeTensor, shape: readonly number[]): NativeTensor
  memory(): { tensors: number; storages: number; bytes: number; peakBytes: number; cachedBytes: number; cudaStorages: number; cudaBytes: number }
  emptyCache(): void
  resetPeak(): void
  manualSeed(seed: number): void
  getRngState(): string
  setRngState(state: string): void
  rand(shape: readonly number[], dtype: string, device?: string): NativeTensor
  randn(shape: readonly number[], dtype: string, device?: string): NativeTensor
  randperm(n: number, dtype: string, device?: string): NativeTensor
}

function packageRoot(): string {
  let dir = __dirname
  for (;;) {
    const pkg = path.join(dir, 'package.json')
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'innflow') return dir
    const up = path.dirname(dir)
    if (up === dir) throw new Error('innflow: cannot find the package root above ' + __dirname)
    dir = up
  }
}

function load(): unknown {
  const root = packageRoot()
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    // INNFLOW_ADDON: the path of an innflow.node to load instead (testing: the CUDA emulator's build, tools/cuda-emu)
    const override = process.env.INNFLOW_ADDON
    if (override) return require(path.resolve(override)) as unknown
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
    return nodeGypBuild(root)
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    throw new InnflowError(
      'ERR_NATIVE',
      `innflow: the native addon could not be loaded (${reason}). Build it with \`npm run build:native\` ` +
        `in ${root} (needs cmake and a C++17 compiler), or install a release that ships prebuilt binaries.`,
    )
  }
}

const native = load() as CoreBinding
native.setErrorClass(InnflowError)

/** The binding, typed with the functions of one op family on top of the core ones. */
export function bindingFor<T>(): CoreBinding & T {
  return native as CoreBinding & T
}

export const core: CoreBinding = native
