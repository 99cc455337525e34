/**
 * ActNorm (FrEIA's `ActNorm`, Kingma & Dhariwal 2018): a per-channel affine map whose parameters are
 * initialised from the data the first time the module runs.
 *
 *   forward  y = (x − loc) / exp(log_scale)          log|det J| = −n_pix · Σ_c log_scale_c
 *   reverse  x = exp(log_scale) · y + loc            log|det J| = +n_pix · Σ_c log_scale_c
 *
 * loc and log_scale have shape (1, C, 1, ...) (one value per channel, axis 1); n_pix is the number of
 * elements per channel of one sample. Data-dependent initialisation, as FrEIA does it: on the first call (in
 * either direction, in training or evaluation mode) unless the `is_initialized` buffer is already set (by an
 * earlier call, `initData`, or a loaded state dict), loc = the mean of the batch over the batch and spatial
 * axes and log_scale = log of the UNBIASED (N − 1) standard deviation over the same axes, so that the
 * forward output of that batch has per-channel mean 0 and unbiased standard deviation 1.
 *
 * State-dict keys: `log_scale`, `loc` (parameters), `is_initialized` (a 0-d buffer, 0 or 1; innflow has no
 * boolean dtype). Deviations from FrEIA, where FrEIA fails silently: an initialisation batch with fewer than
 * two values per channel (FrEIA: NaN parameters) is refused with ERR_ARGUMENT, as is a channel with zero
 * standard deviation (FrEIA raises too). The log-det is returned as a (batch,) tensor (FrEIA: shape (1,)).
 */
import { withoutCapture } from '../capture'
import { core } from '../binding'
import { noGrad } from '../autograd/tape'
import { actnorm } from '../ops/actnorm'
import { InnflowError } from '../errors'
import type { LoadStateDictOptions, LoadStateDictResult, StateDict } from '../nn/module'
import { getDefaultDtype } from '../dtype'
import { checkTensor, Tensor, zeros } from '../tensor'
import { tidy } from '../scope'
import { checkOptionKeys, Dims, InvertibleModule, InvertibleModuleOptions, ModuleOutput, sameDims } from './base'

/** Options of {@link ActNorm}. */
export interface ActNormOptions extends InvertibleModuleOptions {
  /** A batch (batch, ...dimsIn) to initialise loc and log_scale from at construction, instead of the first call. */
  initData?: Tensor
}

const OPTION_NAMES = ['dimsC', 'initData']

/**
 * Activation normalisation with data-dependent initialisation (see the file comment).
 * @example
 * const an = new modules.ActNorm([[3, 8, 8]])
 * const [[y], logDet] = an.forward([x])   // first call: loc/log_scale fitted to x, so y is standardised
 */
export class ActNorm extends InvertibleModule {
  /** log of the per-channel scale, (1, C, 1, ...). */
  readonly logScale: Tensor
  /** The per-channel location, (1, C, 1, ...). */
  readonly loc: Tensor
  /** 0-d buffer: 1 once loc and log_scale hold values (from data or a state dict), else 0. */
  readonly isInitializedBuffer: Tensor

  private readonly reduceDims: number[]

  constructor(dimsIn: Dims[], opts: ActNormOptions = {}) {
    super(dimsIn, opts)
    checkOptionKeys('ActNorm', opts, OPTION_NAMES)
    if (this.dimsIn.length !== 1) throw new InnflowError('ERR_ARGUMENT', `ActNorm: expected exactly one input, got ${this.dimsIn.length}`)
    if (this.dimsC.length > 0) throw new InnflowError('ERR_ARGUMENT', 'ActNorm is unconditional (dimsC must be empty)')
    const dims = this.dimsIn[0]
    const shape = [1, dims[0], ...dims.slice(1).map(() => 1)]
    const dtype = getDefaultDtype()
    this.logScale = this.registerParameter('log_scale', zeros(shape, { dtype }))
    this.loc = this.registerParameter('loc', zeros(shape, { dtype }))
    this.isInitializedBuffer = this.registerBuffer('is_initialized', zeros([], { dtype }))
    this.reduceDims = [0, ...dims.slice(1).map((_, i) => i + 2)]
    if (opts.initData !== undefined) {
      const data = checkTensor('ActNorm', 'initData', opts.initData)
      if (data.ndim !== dims.length + 1 || !sameDims(data.shape.slice(1), dims))
        throw new InnflowError('ERR_SHAPE', `ActNorm: initData must have shape (batch, ${dims.join(', ')}), got (${data.shape.join(', ')})`)
      this.initialize(data)
    }
  }

  /** True once loc and log_scale were set from data (or loaded with is_initialized = 1). */
  get isInitialized(): boolean {
    // Mirrored on the host so that a forward pass on the GPU does not wait for the device to read a flag;
    // re-read after anything that may have changed the buffer (loadStateDict).
    this.initializedMirror ??= withoutCapture(() => this.isInitializedBuffer.item() !== 0)
    return this.initializedMirror
  }
  private initializedMirror: boolean | null = null

  /**
   * Sets loc to the per-channel mean of `batch` and log_scale to the log of its unbiased per-channel standard
   * deviation (over the batch and spatial axes), and marks the module initialised.
   */
  initialize(batch: Tensor): void {
    checkTensor('ActNorm.initialize', 'batch', batch)
    const dims = this.dimsIn[0]
    if (batch.ndim !== this.loc.ndim)
      throw new InnflowError('ERR_SHAPE', `ActNorm: expected a batch of dimension ${this.loc.ndim}, but got ${batch.ndim} (shape (${batch.shape.join(', ')}))`)
    if (!sameDims(batch.shape.slice(1), dims))
      throw new InnflowError('ERR_SHAPE', `ActNorm: expected a batch of shape (batch, ${dims.join(', ')}), got (${batch.shape.join(', ')})`)
    const n = batch.size / dims[0]
    if (n < 2)
      throw new InnflowError('ERR_ARGUMENT', `ActNorm: cannot initialise from ${n} value(s) per channel (batch of shape (${batch.shape.join(', ')})); the unbiased standard deviation needs at least 2`)
    // Not kept in a step being compiled: a replay must not initialise again.
    withoutCapture(() => tidy(() =>
      noGrad(() => {
        const x = batch.to({ dtype: this.loc.dtype })
        const mean = x.mean(this.reduceDims, true)
        const std = x.sub(mean).square().sum(this.reduceDims, true).div(n - 1).sqrt()
        const values = Array.from(std.toArray())
        if (values.some((v) => !(v > 0) || !Number.isFinite(v)))
          throw new InnflowError('ERR_ARGUMENT', `ActNorm: failed to initialize: one or more channels have zero (or non-finite) standard deviation (${values.map((v) => v.toPrecision(3)).join(', ')})`)
        core.copyInto(this.loc.handle, mean.handle)
        core.copyInto(this.logScale.handle, std.log().handle)
        core.copyInto(this.isInitializedBuffer.handle, zeros([], { dtype: this.loc.dtype, device: this.loc.device }).add(1).handle)
        this.initializedMirror = true
      }),
    ))
  }

  /** Normalises (forward) or de-normalises (rev); the first call initialises from its input. */
  forward(x: Tensor[], c: Tensor[] = [], rev = false, _jac = true): ModuleOutput {
    if (c && c.length > 0) throw new InnflowError('ERR_ARGUMENT', 'ActNorm is unconditional (got conditions)')
    this.checkInputs(x)
    const h = x[0]
    if (h.dtype !== this.loc.dtype)
      throw new InnflowError('ERR_DTYPE', `ActNorm: the input is ${h.dtype} but the parameters are ${this.loc.dtype}; convert one (x.to({ dtype }) or module.to({ dtype }))`)
    if (!this.isInitialized) this.initialize(h)
    // one fused op per direction (lib/ops/actnorm.ts): y and the (batch,) log-det, −/+ nPix·Σ log_scale
    const [out, logDet] = actnorm(h, this.loc, this.logScale, rev)
    return [[out], logDet]
  }

  /** Same shape as the input. */
  outputDims(inputDims: Dims[]): number[][] {
    return inputDims.map((d) => [...d])
  }

  /**
   * Loads a state dict. Like FrEIA, a dict with exactly the keys of old FrEIA versions, `scale` and `bias`
   * (y = x·e^scale + bias), is converted: log_scale = −scale, loc = −e^(−scale)·bias, is_initialized = 1.
   */
  override _stateLoaded(): void {
    this.initializedMirror = null
  }

  override loadStateDict(dict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    if (dict !== null && typeof dict === 'object' && !Array.isArray(dict)) {
      const keys = Object.keys(dict).sort()
      if (keys.length === 2 && keys[0] === 'bias' && keys[1] === 'scale') {
        const scale = checkTensor('ActNorm.loadStateDict', "dict['scale']", dict.scale)
        const bias = checkTensor('ActNorm.loadStateDict', "dict['bias']", dict.bias)
        return tidy(() =>
          noGrad(() =>
            super.loadStateDict(
              {
                log_scale: scale.neg(),
                loc: scale.neg().exp().mul(bias).neg(),
                is_initialized: zeros([], { dtype: this.loc.dtype, device: this.loc.device }).add(1),
              },
              options,
            ),
          ),
        )
      }
    }
    return super.loadStateDict(dict, options)
  }

  override extraRepr(): string {
    return `dims_in=[(${this.dimsIn[0].join(', ')})]`
  }
}
