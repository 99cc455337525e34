/**
 * Devices. The CUDA backend is a separate library (libinnflow_cuda.so) that the addon opens at run time;
 * `cuda.isAvailable()` says whether it loaded and found a usable driver, device and cuBLAS, and
 * `cuda.unavailableReason()` says why not. Every request for 'cuda' that cannot be served fails with
 * ERR_CUDA_UNAVAILABLE and that reason — never a silent fallback to the CPU.
 */
import { bindingFor } from './binding'
import { Device } from './dtype'
import { argumentError, InnflowError } from './errors'

interface CudaBinding {
  cudaStatus(): { available: boolean; reason: string | null; deviceName: string | null }
  cudaMemInfo(): { freeBytes: number; totalBytes: number; usedBytes: number; reservedBytes: number }
  cudaSynchronize(): void
}
const N = bindingFor<CudaBinding>()

let status: ReturnType<CudaBinding['cudaStatus']> | null = null
const cudaStatus = () => (status ??= N.cudaStatus())

/** The CUDA backend: availability, the reason when it is missing, the device. */
export const cuda = {
  /** True when CUDA tensors can be created (a driver, a device and cuBLAS were found). */
  isAvailable(): boolean {
    return cudaStatus().available
  },
  /** Why CUDA is unavailable, or null when it is available. */
  unavailableReason(): string | null {
    return cudaStatus().reason
  },
  /** The name of the CUDA device (ERR_CUDA_UNAVAILABLE without one). */
  deviceName(): string {
    const s = cudaStatus()
    if (!s.available) throw new InnflowError('ERR_CUDA_UNAVAILABLE', `cuda.deviceName: CUDA is unavailable: ${s.reason}`)
    return s.deviceName as string
  },
  /**
   * Device memory in bytes (ERR_CUDA_UNAVAILABLE without a device): free and total as the driver reports them,
   * `usedBytes` held by live tensors, `reservedBytes` held by innflow's caching pool (released by `emptyCache()`).
   */
  memory(): { freeBytes: number; totalBytes: number; usedBytes: number; reservedBytes: number } {
    return N.cudaMemInfo()
  },
  /** Waits until every queued GPU operation has finished (for timing; reading a value waits by itself). */
  synchronize(): void {
    N.cudaSynchronize()
  },
}

export function defaultDevice(): Device {
  const env = process.env.INNFLOW_DEVICE
  if (env === undefined || env === '' || env === 'cpu') return 'cpu'
  if (env === 'cuda') return 'cuda'
  throw new InnflowError('ERR_DEVICE', `INNFLOW_DEVICE must be 'cpu' or 'cuda', got '${env}'`)
}

/** Validates a device request; throws ERR_CUDA_UNAVAILABLE (with the reason) when CUDA cannot be used. */
export function resolveDevice(fn: string, device: unknown): Device {
  const d = device === undefined ? defaultDevice() : device
  if (d === 'cpu') return 'cpu'
  if (d === 'cuda') {
    if (!cuda.isAvailable()) throw new InnflowError('ERR_CUDA_UNAVAILABLE', `${fn}: CUDA was requested but is unavailable: ${cuda.unavailableReason()}`)
    return 'cuda'
  }
  throw argumentError(fn, 'device', "'cpu' or 'cuda'", device)
}
