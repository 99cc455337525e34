/**
 * RNVPCouplingBlock (FrEIA's, from Dinh et al. 2016, "Real NVP"): a two-sided affine coupling with separate
 * scale and shift subnets.
 *
 *   coupling 1: s2 = clamp·f(subnet_s2(x2 ⊕ c)), t2 = subnet_t2(x2 ⊕ c), y1 = e^{s2}·x1 + t2
 *   coupling 2: s1 = clamp·f(subnet_s1(y1 ⊕ c)), t1 = subnet_t1(y1 ⊕ c), y2 = e^{s1}·x2 + t1
 *   log|det J| = Σ s1 + Σ s2 (over every non-batch axis); reverse x = (y − t)·e^{−s}, log-det −(Σ s1 + Σ s2)
 *
 * subnet_s1, subnet_t1: (splitLen1 + condition channels) → splitLen2; subnet_s2, subnet_t2:
 * (splitLen2 + condition channels) → splitLen1. f is the soft clamp (default 0.636·atan).
 * State-dict keys: `subnet_s1.*`, `subnet_t1.*`, `subnet_s2.*`, `subnet_t2.*` (FrEIA's order).
 */
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { Dims } from './base'
import { CouplingBaseOptions, TwoSidedCouplingBlock, LogDet, SubnetConstructor } from './coupling-base'

/** Options of {@link RNVPCouplingBlock} (FrEIA's `subnet_constructor`, `clamp`, `clamp_activation`, `split_len`). */
export interface RNVPCouplingBlockOptions extends CouplingBaseOptions {
  /** Builds the four subnets: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * Real NVP coupling with four subnets (scale and shift for each half).
 * @example new modules.RNVPCouplingBlock([[6]], { subnetConstructor: subnet, clamp: 2 })
 */
export class RNVPCouplingBlock extends TwoSidedCouplingBlock {
  readonly subnetS1: Module
  readonly subnetT1: Module
  readonly subnetS2: Module
  readonly subnetT2: Module

  constructor(dimsIn: Dims[], opts: RNVPCouplingBlockOptions = {}) {
    super(dimsIn, opts, ['clamp', 'clampActivation', 'splitLen', 'subnetConstructor'])
    const ctor = opts.subnetConstructor
    const in1 = this.splitLen1 + this.conditionLength
    const in2 = this.splitLen2 + this.conditionLength
    // FrEIA's construction order (it fixes the order of random draws and of the state dict)
    this.subnetS1 = this.makeSubnet('subnet_s1', ctor, in1, this.splitLen2)
    this.subnetT1 = this.makeSubnet('subnet_t1', ctor, in1, this.splitLen2)
    this.subnetS2 = this.makeSubnet('subnet_s2', ctor, in2, this.splitLen1)
    this.subnetT2 = this.makeSubnet('subnet_t2', ctor, in2, this.splitLen1)
  }

  protected coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet] {
    const s = this.runSubnet(this.subnetS2, u2, this.splitLen1, 'subnet_s2')
    const t = this.runSubnet(this.subnetT2, u2, this.splitLen1, 'subnet_t2')
    return this.affine(x1, s, t, rev)
  }

  protected coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet] {
    const s = this.runSubnet(this.subnetS1, u1, this.splitLen2, 'subnet_s1')
    const t = this.runSubnet(this.subnetT1, u1, this.splitLen2, 'subnet_t1')
    return this.affine(x2, s, t, rev)
  }
}
