/**
 * GINCouplingBlock (FrEIA's, from Sorrenson et al. 2020, "General Incompressible-flow Networks"): GLOW's
 * coupling made volume preserving by centring the log-scales over the channel axis.
 *
 *   coupling 1: a2 = subnet2(x2 ⊕ c), s2 = clamp·f(a2[:, :splitLen1]), s2 ← s2 − mean_channels(s2),
 *               y1 = e^{s2}·x1 + a2[:, splitLen1:]
 *   coupling 2: a1 = subnet1(y1 ⊕ c), s1 = clamp·f(a1[:, :splitLen2]), s1 ← s1 − mean_channels(s1),
 *               y2 = e^{s1}·x2 + a1[:, splitLen2:]
 *
 * The mean runs over axis 1 only (per pixel for images), so Σ s = 0 at every location and the log-det is
 * the number 0 in both directions. (AllInOneBlock's GIN mode subtracts the mean over all non-batch axes
 * instead; both are FrEIA's behaviour.) A half with one channel therefore has s = 0: a pure shift.
 * State-dict keys: `subnet1.*` ((splitLen1 + cond) → 2·splitLen2), `subnet2.*` ((splitLen2 + cond) → 2·splitLen1).
 */
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { Dims } from './base'
import { CouplingBaseOptions, TwoSidedCouplingBlock, LogDet, SubnetConstructor } from './coupling-base'

/** Options of {@link GINCouplingBlock} (FrEIA's `subnet_constructor`, `clamp`, `clamp_activation`, `split_len`). */
export interface GINCouplingBlockOptions extends CouplingBaseOptions {
  /** Builds subnet1 and subnet2: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * Volume-preserving GLOW-style coupling (log-det 0).
 * @example new modules.GINCouplingBlock([[6]], { subnetConstructor: subnet })
 */
export class GINCouplingBlock extends TwoSidedCouplingBlock {
  readonly subnet1: Module
  readonly subnet2: Module

  constructor(dimsIn: Dims[], opts: GINCouplingBlockOptions = {}) {
    super(dimsIn, opts, ['clamp', 'clampActivation', 'splitLen', 'subnetConstructor'])
    this.subnet1 = this.makeSubnet('subnet1', opts.subnetConstructor, this.splitLen1 + this.conditionLength, 2 * this.splitLen2)
    this.subnet2 = this.makeSubnet('subnet2', opts.subnetConstructor, this.splitLen2 + this.conditionLength, 2 * this.splitLen1)
  }

  /** y = e^s·x + t (or its inverse) with s clamped and centred over the channels. */
  private volumePreserving(net: Module, x: Tensor, u: Tensor, len: number, name: string, rev: boolean): [Tensor, LogDet] {
    const a = this.runSubnet(net, u, 2 * len, name)
    const raw = this.softClamp(a.narrow(1, 0, len))
    const s = raw.sub(raw.mean(1, true))
    const t = a.narrow(1, len, len)
    return [rev ? x.sub(t).mul(s.neg().exp()) : s.exp().mul(x).add(t), 0]
  }

  protected coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet] {
    return this.volumePreserving(this.subnet2, x1, u2, this.splitLen1, 'subnet2', rev)
  }

  protected coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet] {
    return this.volumePreserving(this.subnet1, x2, u1, this.splitLen2, 'subnet1', rev)
  }
}
