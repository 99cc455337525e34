/**
 * ConditionalAffineTransform (FrEIA's): an elementwise affine map of the whole input whose scale and shift
 * are functions of the conditions only.
 *
 *   a = subnet(c1 ⊕ c2 ⊕ …), s = clamp·f(a[:, :C]), t = a[:, C:]
 *   forward  y = e^{s}·x + t,     log|det J| = Σ s over every non-batch axis
 *   reverse  x = (y − t)·e^{−s},  log-det −Σ s
 *
 * At least one condition is required; conditions must have the input's non-channel shape. subnet:
 * (condition channels) → 2C, layout [s | t]. `splitLen` is accepted and validated, as FrEIA does, but unused.
 * State-dict keys: `subnet.*`.
 */
import { InnflowError } from '../errors'
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { Dims, ModuleOutput } from './base'
import { CouplingBaseOptions, CouplingBlockBase, SubnetConstructor } from './coupling-base'

/** Options of {@link ConditionalAffineTransform} (FrEIA's `subnet_constructor`, `clamp`, `clamp_activation`, `split_len`). */
export interface ConditionalAffineTransformOptions extends CouplingBaseOptions {
  /** Builds the subnet: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * y = e^{s(c)}·x + t(c): a conditional elementwise affine transform.
 * @example new modules.ConditionalAffineTransform([[6]], { dimsC: [[3]], subnetConstructor: subnet })
 */
export class ConditionalAffineTransform extends CouplingBlockBase {
  readonly subnet: Module

  constructor(dimsIn: Dims[], opts: ConditionalAffineTransformOptions = {}) {
    super(dimsIn, opts, ['clamp', 'clampActivation', 'splitLen', 'subnetConstructor'])
    if (!this.conditional)
      throw new InnflowError('ERR_ARGUMENT', 'ConditionalAffineTransform must have a condition (give dimsC, or cond and condShape in SequenceINN.append)')
    this.subnet = this.makeSubnet('subnet', opts.subnetConstructor, this.conditionLength, 2 * this.channels)
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    const cs = this.checkCall(x, c)
    const cond = cs.length === 1 ? cs[0] : this.withConditions(cs[0], cs.slice(1))
    const a = this.runSubnet(this.subnet, cond, 2 * this.channels, 'subnet')
    const [y, j] = this.affineFromSubnet(x[0], a, this.channels, rev)
    return [[y], j]
  }
}
