/** PLACEHOLDER (owner: conv family): conv2d. */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'

export interface Conv2dOptions {
  stride?: number | [number, number]
  padding?: number | [number, number]
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts?: Conv2dOptions): Tensor {
  throw new InnflowError('ERR_NATIVE', 'conv2d is not implemented yet')
}
