/** PLACEHOLDER (owner: shape family): permute, transpose, narrow, cat, split, indexSelect, gather. */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'

const todo = (fn: string): never => {
  throw new InnflowError('ERR_NATIVE', `${fn} is not implemented yet`)
}
export function permute(x: Tensor, dims: number[]): Tensor { return todo('permute') }
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor { return todo('transpose') }
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor { return todo('narrow') }
export function cat(tensors: Tensor[], dim = 0): Tensor { return todo('cat') }
export function split(x: Tensor, sizes: number | number[], dim = 0): Tensor[] { return todo('split') }
export function indexSelect(x: Tensor, dim: number, index: Tensor | number[]): Tensor { return todo('indexSelect') }
export function gather(x: Tensor, dim: number, index: Tensor): Tensor { return todo('gather') }
