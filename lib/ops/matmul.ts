/** PLACEHOLDER (owner: matmul family): matmul, linear, GEMM backend switch. */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'

export function matmul(a: Tensor, b: Tensor): Tensor {
  throw new InnflowError('ERR_NATIVE', 'matmul is not implemented yet')
}
