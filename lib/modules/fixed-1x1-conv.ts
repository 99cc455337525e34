/**
 * Fixed1x1Conv: a fixed invertible C×C matrix applied to the channels of every pixel of a (C, H, W) image
 * (FrEIA's `FrEIA.modules.Fixed1x1Conv`, a 1×1 convolution). log|det J| = ln|det M|·H·W per sample (negated in
 * reverse). Nothing is trained.
 *
 * FrEIA quirk kept for parity (the fixed_1x1conv fixture depends on it): FrEIA stores Mᵀ as the convolution
 * kernel, so each pixel is mapped to y = Mᵀ·x — the TRANSPOSE of FixedLinearTransform's y = M·x for the same
 * M. The reverse applies (Mᵀ)⁻¹. Buffers with FrEIA's names and shapes: `M` = Mᵀ as (C, C, 1, 1), `M_inv` =
 * (Mᵀ)⁻¹ as (C, C, 1, 1), `logDetM` = ln|det M| (0-d). Computed as one batched C×C matrix product over the
 * pixels (no im2col). Deliberate difference: FrEIA returns a 0-d log-det; here it has shape (batch,).
 */
import { InnflowError } from '../errors'
import { tidy } from '../scope'
import { Tensor } from '../tensor'
import { Dims, dimsString, InvertibleModule, InvertibleModuleOptions, ModuleOutput } from './base'
import { fixedMatrices, matrixOption } from './fixed-linear-transform'
import { checkOptionKeys } from './irevnet-downsampling'

/** Options of {@link Fixed1x1Conv} (FrEIA's keyword arguments). */
export interface Fixed1x1ConvOptions extends InvertibleModuleOptions {
  /** The invertible C×C matrix (required): a Tensor or nested arrays of numbers. Each pixel maps to Mᵀ·x (FrEIA's convention). */
  M?: Tensor | number[][]
}

/**
 * A fixed invertible 1×1 convolution of images.
 * @example
 * inn.append(modules.Fixed1x1Conv, { M: [[2, 0.3, 0.1], [0, 1.5, -0.4], [0.2, 0, 0.8]] })
 */
export class Fixed1x1Conv extends InvertibleModule {
  /** Mᵀ as a (C, C, 1, 1) kernel (buffer `M`). */
  readonly M: Tensor
  /** (Mᵀ)⁻¹ as a (C, C, 1, 1) kernel (buffer `M_inv`). */
  readonly MInv: Tensor
  /** ln|det M|, 0-d (buffer `logDetM`). */
  readonly logDetM: Tensor

  constructor(dimsIn: Dims[], opts: Fixed1x1ConvOptions = {}) {
    super(dimsIn, opts)
    const name = new.target.name
    const o = checkOptionKeys(name, opts, ['M'])
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_SHAPE', `${name}: can only use 1 input, got ${this.dimsIn.length}`)
    if (this.dimsIn[0].length !== 3) throw new InnflowError('ERR_SHAPE', `${name}: requires 3-D input (channels, height, width), got ${dimsString(this.dimsIn[0])}`)
    const c = this.dimsIn[0][0]
    if (o.M === undefined || o.M === null) throw new InnflowError('ERR_ARGUMENT', `${name}: need to specify the M option, the matrix to be multiplied`)
    const { Mt, MtInv, logDet } = tidy(() => {
      const m = fixedMatrices(name, matrixOption(name, 'M', o.M, c))
      return { Mt: m.Mt.reshape([c, c, 1, 1]), MtInv: m.MtInv.reshape([c, c, 1, 1]), logDet: m.logDet }
    })
    this.M = this.registerBuffer('M', Mt)
    this.MInv = this.registerBuffer('M_inv', MtInv)
    this.logDetM = this.registerBuffer('logDetM', logDet)
  }

  forward(x: Tensor[], _c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    this.checkInputs(x)
    const [b, c, h, w] = x[0].shape
    const kernel = (rev ? this.MInv : this.M).reshape([c, c])
    const y = kernel.matmul(x[0].reshape([b, c, h * w])).reshape([b, c, h, w])
    const j = this.logDetM.mul(h * w).expand([b])
    return [[y], rev ? j.neg() : j]
  }

  outputDims(inputDims: Dims[]): number[][] {
    if (inputDims.length !== 1) throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: can only use 1 input, got ${inputDims.length}`)
    if (inputDims[0].length !== 3)
      throw new InnflowError('ERR_SHAPE', `${this.constructor.name}: requires 3-D input (channels, height, width), got ${dimsString(inputDims[0])}`)
    return [[...inputDims[0]]]
  }
}
