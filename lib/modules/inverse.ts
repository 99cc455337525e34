/**
 * Inverse (FrEIA's `FrEIA.modules.inverse.Inverse(module)`): wraps an invertible module so that its forward is
 * the wrapped module's reverse and vice versa. dimsIn is the wrapped module's output shapes, dimsC its
 * conditions, and outputDims its input shapes; the log-det is whatever the wrapped module returns in the
 * opposite direction (so log|det J| of the inverse map). The wrapped module is the child `module`, so state-dict
 * keys are `module.<key>`, as in FrEIA.
 */
import { argumentError, InnflowError } from '../errors'
import type { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, ModuleOutput, sameDims } from './base'

function isInvertibleModule(v: unknown): v is InvertibleModule {
  if (v instanceof InvertibleModule) return true
  // modules built in another copy of the library (e.g. jest module registries) are accepted by shape
  return v !== null && typeof v === 'object' && (v as { __isInnflowModule?: boolean }).__isInnflowModule === true && 'dimsIn' in v && 'outputDims' in v
}

/** The output shapes of a module, as FrEIA's `output_dims_compatible` computes them. */
function outputDimsOf(module: unknown): number[][] {
  if (!isInvertibleModule(module))
    throw argumentError('Inverse', 'module', 'an InvertibleModule instance (Inverse wraps a built module: new Inverse(module))', module)
  return module.outputDims(module.dimsIn).map((d) => [...d])
}

/**
 * The inverse of an invertible module.
 * @example
 * const flow = new SequenceINN(2)  // ... appended blocks
 * const sampler = new modules.Inverse(flow)  // sampler.forward([z]) runs flow in reverse
 */
export class Inverse extends InvertibleModule {
  /** The wrapped module. */
  readonly module: InvertibleModule

  constructor(module: InvertibleModule) {
    super(outputDimsOf(module), { dimsC: module.dimsC })
    this.module = this.registerModule('module', module)
  }

  /** The wrapped module run in the opposite direction. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, jac = true): ModuleOutput {
    if (!Array.isArray(x)) throw argumentError('Inverse.forward', 'x', 'an array of tensors', x)
    const expected = rev ? this.module.dimsIn : this.dimsIn
    if (x.length !== expected.length || x.some((t, i) => !sameDims(t.shape.slice(1), expected[i])))
      throw new InnflowError(
        'ERR_SHAPE',
        `Inverse: expected ${rev ? 'reverse ' : ''}inputs of shape ${expected.map((d) => `(batch, ${d.join(', ')})`).join(', ')}, got ${x.map((t) => `(${t.shape.join(', ')})`).join(', ')}`,
      )
    return this.module.forward(x, c, !rev, jac)
  }

  /** The wrapped module's input shapes. */
  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== this.dimsIn.length || inputDims.some((d, i) => !sameDims(d, this.dimsIn[i])))
      throw new InnflowError('ERR_SHAPE', `Inverse.outputDims: expected ${this.dimsIn.map(dimsString).join(', ')}, got ${inputDims.map(dimsString).join(', ')}`)
    return this.module.dimsIn.map((d) => [...d])
  }

  override extraRepr(): string {
    return `of ${this.module.constructor.name}`
  }
}
