/**
 * NICECouplingBlock (FrEIA's, from Dinh et al. 2014, "NICE"): an additive two-sided coupling.
 *
 *   forward  y1 = x1 + F(x2 ⊕ c),   y2 = x2 + G(y1 ⊕ c)
 *   reverse  x2 = y2 − G(y1 ⊕ c),   x1 = y1 − F(x2 ⊕ c)
 *
 * F: (splitLen2 + condition channels) → splitLen1, G: (splitLen1 + condition channels) → splitLen2. The map
 * is volume preserving: the log-det is the number 0 in both directions (as FrEIA's Python float 0.0).
 * State-dict keys: `F.*`, `G.*`.
 */
import { Tensor } from '../tensor'
import { Module } from '../nn/module'
import { Dims } from './base'
import { CouplingBaseOptions, TwoSidedCouplingBlock, LogDet, SubnetConstructor } from './coupling-base'

/** Options of {@link NICECouplingBlock} (FrEIA's `subnet_constructor`, `split_len`; no clamp: the block is additive). */
export interface NICECouplingBlockOptions extends Omit<CouplingBaseOptions, 'clamp' | 'clampActivation'> {
  /** Builds F and G: `(cIn, cOut) => nn.Module` mapping (N, cIn, *spatial) to (N, cOut, *spatial). Required. */
  subnetConstructor?: SubnetConstructor
}

/**
 * Additive coupling: y1 = x1 + F(x2 ⊕ c), y2 = x2 + G(y1 ⊕ c); log-det 0.
 * @example
 * const subnet = (cIn: number, cOut: number) => new nn.Sequential(new nn.Linear(cIn, 64), new nn.ReLU(), new nn.Linear(64, cOut))
 * const block = new modules.NICECouplingBlock([[6]], { subnetConstructor: subnet })
 */
export class NICECouplingBlock extends TwoSidedCouplingBlock {
  /** F: (x2 ⊕ c) → shift of x1. */
  readonly F: Module
  /** G: (y1 ⊕ c) → shift of x2. */
  readonly G: Module

  constructor(dimsIn: Dims[], opts: NICECouplingBlockOptions = {}) {
    // FrEIA builds NICE on the affine base with clamp 0 and the identity activation; neither is used.
    super(dimsIn, opts, ['splitLen', 'subnetConstructor'], { clamp: 0, clampActivation: (u: Tensor) => u })
    this.F = this.makeSubnet('F', opts.subnetConstructor, this.splitLen2 + this.conditionLength, this.splitLen1)
    this.G = this.makeSubnet('G', opts.subnetConstructor, this.splitLen1 + this.conditionLength, this.splitLen2)
  }

  protected coupling1(x1: Tensor, u2: Tensor, rev: boolean): [Tensor, LogDet] {
    const shift = this.runSubnet(this.F, u2, this.splitLen1, 'F')
    return [rev ? x1.sub(shift) : x1.add(shift), 0]
  }

  protected coupling2(x2: Tensor, u1: Tensor, rev: boolean): [Tensor, LogDet] {
    const shift = this.runSubnet(this.G, u1, this.splitLen2, 'G')
    return [rev ? x2.sub(shift) : x2.add(shift), 0]
  }
}
