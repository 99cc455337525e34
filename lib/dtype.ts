import { argumentError, InnflowError } from './errors'

/** Element types of tensors. */
export type DType = 'float32' | 'float64'
/** Where a tensor lives. */
export type Device = 'cpu' | 'cuda'

let defaultDtype: DType = 'float32'

/** Makes every new tensor and parameter created without an explicit dtype use `dtype` (as in PyTorch). */
export function setDefaultDtype(dtype: DType): void {
  if (dtype !== 'float32' && dtype !== 'float64') throw new InnflowError('ERR_DTYPE', `setDefaultDtype: dtype must be 'float32' or 'float64', got ${String(dtype)}`)
  defaultDtype = dtype
}

/** The dtype of new tensors when none is given ('float32' unless changed). */
export function getDefaultDtype(): DType {
  return defaultDtype
}

export function resolveDtype(fn: string, dtype: unknown): DType {
  if (dtype === undefined) return defaultDtype
  if (dtype !== 'float32' && dtype !== 'float64') throw new InnflowError('ERR_DTYPE', `${fn}: dtype must be 'float32' or 'float64', got ${String(dtype)}`)
  return dtype
}

export function checkShape(fn: string, shape: unknown, name = 'shape'): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw argumentError(fn, name, 'an array of non-negative integers', shape)
  return shape as number[]
}
