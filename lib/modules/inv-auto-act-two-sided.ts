/** PLACEHOLDER: InvAutoActTwoSided is written by its owner. */
import { InnflowError } from '../errors'
import { Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'

export class InvAutoActTwoSided extends InvertibleModule {
  constructor(dimsIn: Dims[], opts: InvertibleModuleOptions & Record<string, unknown> = {}) {
    super(dimsIn, opts)
    throw new InnflowError('ERR_ARGUMENT', 'InvAutoActTwoSided is not implemented yet')
  }
  forward(): ModuleOutput {
    throw new InnflowError('ERR_ARGUMENT', 'InvAutoActTwoSided is not implemented yet')
  }
  outputDims(): number[][] {
    throw new InnflowError('ERR_ARGUMENT', 'InvAutoActTwoSided is not implemented yet')
  }
}
