/**
 * InvAutoActFixed (FrEIA.modules.InvAutoActFixed): a deprecated alias of {@link InvAutoAct}. As in FrEIA it is
 * IDENTICAL to InvAutoAct (the slopes stay learnable unless `learnable: false` is passed: the name notwithstanding,
 * FrEIA does not fix them) and only adds a deprecation warning, emitted once per process.
 */
import { Dims } from './base'
import { InvAutoAct, InvAutoActOptions } from './inv-auto-act'

let warned = false

/**
 * Deprecated: use `InvAutoAct` with `learnable: false`.
 * @deprecated FrEIA's own deprecation; behaves exactly as {@link InvAutoAct}.
 */
export class InvAutoActFixed extends InvAutoAct {
  constructor(dimsIn: Dims[], opts: InvAutoActOptions = {}) {
    super(dimsIn, opts)
    if (!warned) {
      warned = true
      process.emitWarning('InvAutoActFixed is deprecated: please use InvAutoAct with the learnable: false option.', 'DeprecationWarning')
    }
  }
}
