/**
 * Devices. The CUDA backend is a separate library loaded at run time; until it is present every request for
 * 'cuda' fails with ERR_CUDA_UNAVAILABLE and the reason (never a silent fallback to the CPU).
 */
import { Device } from './dtype'
import { argumentError, InnflowError } from './errors'

const reason = 'innflow was built without the CUDA backend (no cuda/*.cu kernels in this build)'

/** The CUDA backend: availability and the reason when it is missing. */
export const cuda = {
  /** True when CUDA tensors can be created. */
  isAvailable(): boolean {
    return false
  },
  /** Why CUDA is unavailable, or null when it is available. */
  unavailableReason(): string | null {
    return reason
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
    if (!cuda.isAvailable()) throw new InnflowError('ERR_CUDA_UNAVAILABLE', `${fn}: CUDA was requested but is unavailable: ${reason}`)
    return 'cuda'
  }
  throw argumentError(fn, 'device', "'cpu' or 'cuda'", device)
}
