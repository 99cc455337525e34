/**
 * GLOWCouplingBlock (FrEIA's, the coupling of Kingma & Dhariwal 2018, "Glow"): a two-sided affine coupling
 * where one subnet per half returns both log-scale and shift, in the channel layout [s | t].
 *
 *   coupling 1: a2 = subnet2(x2 ⊕ c), s2 = clamp·f(a2[:, :splitLen1]), t2 = a2[:, splitLen1:], y1 = e^{s2}·x1 + t2
 *   coupling 2: a1 = subnet1(y1 ⊕ c), s1 = clamp·f(a1[:, :splitLen2]), t1 = a1[:, splitLen2:], y2 = e^{s1}·x2 + t1
 *   log|det J| = Σ s1 + Σ s2 over every non-batch axis; reverse x = (y − t)·e^{−s}, log-det −(Σ s1 + Σ s2)
 *
 * subnet1: (splitLen1 + condition channels) → 2·splitLen2, subnet2: (splitLen2 + condition channels) →
 * 2·splitLen1. Note: this is only Glow's coupling; a full Glow step (ActNorm, 1×1 convolution, coupling) is
 * AllInOneBlock. State-dict keys: `subnet1.*`, `subnet2.*`.
 */
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { Dims } from './base'
import { CouplingBaseOptions, TwoSidedCouplingBlock, LogDet, SubnetConstructor } from './coupling-base'

/** Options of {@link GLOWCouplingBlock} (FrEIA's `subnet_constructor`, `clamp`, `clamp_activation`, `split_len`). */
export interface GLOWCouplingBlockOptions extends CouplingBaseOptions {
  /** Builds subnet1 and subnet2: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * Glow's affine coupling, two-sided, with [s | t] subnet outputs.
 * @example new modules.GLOWCouplingBlock([[4, 8, 8]], { subnetConstructor: convSubnet, clamp: 1.2 })
 */
export class GLOWCouplingBlock extends TwoSidedCouplingBlock {
  readonly subnet1: Module
  readonly subnet2: Module

  constructor(dimsIn: Dims[], opts: GLOWCouplingBlockOptions = {}) {
    super(dimsIn, opts, ['clamp', 'clampActivation', 'splitLen', 'subnetConstructor'])
    this.subnet1 = this.makeSubnet('subnet1', opts.subnetConstructor, this.splitLen1 + this.conditionLength, 2 * this.splitLen2)
    this.subnet2 = this.makeSubnet('subnet2', opts.subnetConstructor, this.splitLen2 + this.conditionLength, 2 * this.splitLen1)
  }

  protected coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet] {
    const a = this.runSubnet(this.subnet2, u2, 2 * this.splitLen1, 'subnet2')
    return this.affineFromSubnet(x1, a, this.splitLen1, rev)
  }

  protected coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet] {
    const a = this.runSubnet(this.subnet1, u1, 2 * this.splitLen2, 'subnet1')
    return this.affineFromSubnet(x2, a, this.splitLen2, rev)
  }
}
