/**
 * AffineCouplingOneSided (FrEIA's): half of an affine coupling; x1 passes unchanged and conditions x2.
 *
 *   a = subnet(x1 ⊕ c), s = clamp·f(a[:, :splitLen2]), t = a[:, splitLen2:]
 *   forward  y = x1 ⊕ (e^{s}·x2 + t),   log|det J| = Σ s over every non-batch axis
 *   reverse  x = y1 ⊕ ((y2 − t)·e^{−s}), log-det −Σ s
 *
 * subnet: (splitLen1 + condition channels) → 2·splitLen2, output layout [s | t]. State-dict keys: `subnet.*`.
 */
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { cat } from '../ops/shape'
import { Dims, ModuleOutput } from './base'
import { CouplingBaseOptions, CouplingBlockBase, SubnetConstructor } from './coupling-base'

/** Options of {@link AffineCouplingOneSided} (FrEIA's `subnet_constructor`, `clamp`, `clamp_activation`, `split_len`). */
export interface AffineCouplingOneSidedOptions extends CouplingBaseOptions {
  /** Builds the subnet: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * One-sided affine coupling: x2 is scaled and shifted by functions of x1 (and the conditions).
 * @example new modules.AffineCouplingOneSided([[6]], { subnetConstructor: subnet, dimsC: [[3]] })
 */
export class AffineCouplingOneSided extends CouplingBlockBase {
  readonly subnet: Module

  constructor(dimsIn: Dims[], opts: AffineCouplingOneSidedOptions = {}) {
    super(dimsIn, opts, ['clamp', 'clampActivation', 'splitLen', 'subnetConstructor'])
    this.subnet = this.makeSubnet('subnet', opts.subnetConstructor, this.splitLen1 + this.conditionLength, 2 * this.splitLen2)
  }

  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    const cs = this.checkCall(x, c)
    const [x1, x2] = this.splitChannels(x[0])
    // an empty x2 (integer splitLen = C) leaves nothing to transform: the identity
    if (this.splitLen2 === 0) return [[x[0].clone()], this.zeroLogDet(x[0])]
    const a = this.runSubnet(this.subnet, this.withConditions(x1, cs), 2 * this.splitLen2, 'subnet')
    const [y2, j] = this.affineFromSubnet(x2, a, this.splitLen2, rev)
    return [[cat([x1, y2], 1)], j]
  }
}
