/**
 * `Module`: the base of every layer and invertible module. It keeps parameters, buffers and child modules in
 * registration order, so that names (`0.weight`, `module_list.3.subnet.2.bias`) and state-dict order are
 * PyTorch's byte for byte, and it loads, converts and switches modes the way torch.nn.Module does.
 */
import { core, NativeTensor } from '../binding'
import { DType, resolveDtype } from '../dtype'
import { resolveDevice } from '../device'
import { argumentError, describe, InnflowError } from '../errors'
import { noGrad } from '../autograd/tape'
import { keep } from '../scope'
import { checkTensor, Tensor } from '../tensor'

/** A state dict: dotted names to tensors, in PyTorch's order. */
export type StateDict = Record<string, Tensor>

/** What `loadStateDict` found (torch's `_IncompatibleKeys`); with `strict` both are empty or it throws. */
export interface LoadStateDictResult {
  missingKeys: string[]
  unexpectedKeys: string[]
}

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /** Require the keys of `dict` to match the module's exactly (default true). Shapes must match always. */
  strict?: boolean
}

function isModule(v: unknown): v is Module {
  return v instanceof Module || (v !== null && typeof v === 'object' && (v as { __isInnflowModule?: boolean }).__isInnflowModule === true)
}
function isTensorLike(v: unknown): v is Tensor {
  return v instanceof Tensor || (v !== null && typeof v === 'object' && (v as { __isInnflowTensor?: boolean }).__isInnflowTensor === true)
}

const join = (prefix: string, name: string): string => (prefix ? `${prefix}.${name}` : name)

/**
 * Base class of neural network modules. A subclass registers its tensors and children in its constructor
 * and implements `forward`:
 * @example
 * class Affine extends nn.Module {
 *   scale = this.registerParameter('scale', ones([3]))
 *   forward(x: Tensor): Tensor { return x.mul(this.scale) }
 * }
 */
export abstract class Module {
  /** @internal marks modules across module copies (jest realms) */
  readonly __isInnflowModule = true
  /** True in training mode (the default); see {@link train} and {@link eval}. */
  training = true
  private readonly _parameters = new Map<string, Tensor | null>()
  private readonly _buffers = new Map<string, Tensor | null>()
  private readonly _nonPersistent = new Set<string>()
  private readonly _modules = new Map<string, Module | null>()

  /** The computation of the module. */
  abstract forward(...args: unknown[]): unknown

  // ------------------------------------------------------------------------------------------ registration

  private checkName(fn: string, name: unknown, own: Map<string, unknown>): string {
    if (typeof name !== 'string' || name === '') throw argumentError(`${this.constructor.name}.${fn}`, 'name', 'a non-empty string', name)
    if (name.includes('.')) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}.${fn}: name must not contain '.', got '${name}'`)
    const kinds: [string, Map<string, unknown>][] = [['parameter', this._parameters], ['buffer', this._buffers], ['module', this._modules]]
    for (const [kind, map] of kinds)
      if (map !== own && map.has(name)) throw new InnflowError('ERR_ARGUMENT', `${this.constructor.name}.${fn}: '${name}' is already registered as a ${kind}`)
    return name
  }

  /**
   * Registers a parameter (or a null placeholder, e.g. an absent bias) under `name` and returns it. The
   * tensor becomes a trainable leaf (`requiresGrad = true`) that no `tidy` disposes. Registering an existing
   * name replaces it in place (its position in the order is kept).
   */
  registerParameter<T extends Tensor | null>(name: string, param: T): T {
    this.checkName('registerParameter', name, this._parameters)
    if (param !== null) {
      checkTensor('registerParameter', 'param', param)
      if (param.isDisposed) throw new InnflowError('ERR_DISPOSED', `registerParameter: the tensor for '${name}' was disposed`)
      if (!param.isLeaf)
        throw new InnflowError('ERR_ARGUMENT', `registerParameter: '${name}' must be a leaf tensor (not the result of a recorded op); use .detach()`)
      param.requiresGrad = true
      keep(param)
    }
    this._parameters.set(name, param)
    return param
  }

  /**
   * Registers a buffer: state that is not trained (running statistics, permutations). Persistent buffers
   * (the default) are part of the state dict. Buffers are exempt from `tidy` too.
   */
  registerBuffer<T extends Tensor | null>(name: string, buffer: T, persistent = true): T {
    this.checkName('registerBuffer', name, this._buffers)
    if (typeof persistent !== 'boolean') throw argumentError('registerBuffer', 'persistent', 'a boolean', persistent)
    if (buffer !== null) {
      checkTensor('registerBuffer', 'buffer', buffer)
      if (buffer.isDisposed) throw new InnflowError('ERR_DISPOSED', `registerBuffer: the tensor for '${name}' was disposed`)
      keep(buffer)
    }
    this._buffers.set(name, buffer)
    if (persistent) this._nonPersistent.delete(name)
    else this._nonPersistent.add(name)
    return buffer
  }

  /** Registers a child module (or null) under `name` and returns it. */
  registerModule<M extends Module | null>(name: string, module: M): M {
    this.checkName('registerModule', name, this._modules)
    if (module !== null) {
      if (!isModule(module)) throw argumentError('registerModule', 'module', 'a Module', module)
      if (module === (this as Module) || module.modules().includes(this))
        throw new InnflowError('ERR_ARGUMENT', `registerModule: registering '${name}' would make a cycle of modules`)
    }
    this._modules.set(name, module)
    return module
  }

  // ------------------------------------------------------------------------------------------ traversal

  /** This module and all its descendants as [dotted name, module] pairs, depth first, each module once. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = []
    const memo = new Set<Module>()
    const visit = (m: Module, p: string): void => {
      if (memo.has(m)) return
      memo.add(m)
      out.push([p, m])
      for (const [name, child] of m._modules) if (child) visit(child, join(p, name))
    }
    visit(this, prefix)
    return out
  }
  /** This module and all its descendants. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m)
  }
  /** The direct children as [name, module] pairs, in registration order. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = []
    const memo = new Set<Module>()
    for (const [name, child] of this._modules)
      if (child && !memo.has(child)) {
        memo.add(child)
        out.push([name, child])
      }
    return out
  }
  /** The direct children, in registration order. */
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m)
  }

  private namedMembers(which: '_parameters' | '_buffers', prefix: string, recurse: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = []
    const memo = new Set<Tensor>()
    const mods: [string, Module][] = recurse ? this.namedModules(prefix) : [[prefix, this]]
    for (const [p, m] of mods)
      for (const [name, t] of m[which])
        if (t && !memo.has(t)) {
          memo.add(t)
          out.push([join(p, name), t])
        }
    return out
  }

  /**
   * Every parameter as [dotted name, tensor]: a module's own parameters, then each child's, recursively, in
   * registration order (PyTorch's `named_parameters`; a parameter shared by two modules appears once).
   */
  namedParameters(prefix = '', recurse = true): [string, Tensor][] {
    return this.namedMembers('_parameters', prefix, recurse)
  }
  /** Every parameter, in {@link namedParameters} order. */
  parameters(recurse = true): Tensor[] {
    return this.namedParameters('', recurse).map(([, t]) => t)
  }
  /** Every buffer (persistent or not) as [dotted name, tensor]. */
  namedBuffers(prefix = '', recurse = true): [string, Tensor][] {
    return this.namedMembers('_buffers', prefix, recurse)
  }
  /** Every buffer. */
  buffers(recurse = true): Tensor[] {
    return this.namedBuffers('', recurse).map(([, t]) => t)
  }

  /** The descendant at a dotted path ('' is this module), or ERR_ARGUMENT. */
  getSubmodule(target: string): Module {
    if (typeof target !== 'string') throw argumentError('getSubmodule', 'target', 'a dotted name', target)
    let m: Module = this
    if (target === '') return m
    for (const part of target.split('.')) {
      const next = m._modules.get(part)
      if (!next) throw new InnflowError('ERR_ARGUMENT', `getSubmodule: ${m.constructor.name} has no submodule '${part}' (in '${target}')`)
      m = next
    }
    return m
  }

  /** Calls fn on every descendant, children before parents (PyTorch's `apply`), e.g. for custom init. */
  apply(fn: (m: Module) => void): this {
    for (const child of this.children()) child.apply(fn)
    fn(this)
    return this
  }

  // ------------------------------------------------------------------------------------------ state

  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order: a module's parameters, then its
   * buffers, then each child's entries. The values are the module's own tensors (not copies): do not
   * dispose them.
   */
  stateDict(prefix = ''): StateDict {
    const out: StateDict = {}
    const visit = (m: Module, p: string): void => {
      for (const [name, t] of m._parameters) if (t) out[p + name] = t
      for (const [name, t] of m._buffers) if (t && !m._nonPersistent.has(name)) out[p + name] = t
      for (const [name, child] of m._modules) if (child) visit(child, `${p}${name}.`)
    }
    visit(this, prefix ? `${prefix}.` : '')
    return out
  }

  /**
   * Copies the values of `dict` into the module's parameters and buffers (in place: tensors keep their
   * identity, so optimisers stay attached), converting them to each tensor's dtype. Everything is checked
   * first (with `strict`, missing and unexpected keys; always, shapes and that values are live tensors); on
   * any problem it throws InnflowError ERR_CHECKPOINT naming the keys and changes nothing.
   */
  loadStateDict(dict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    return this._prepareLoad(dict, options)()
  }

  /** @internal Validates `dict` and returns the function that applies it (checkpoints load atomically). */
  _prepareLoad(dict: unknown, options: LoadStateDictOptions = {}): () => LoadStateDictResult {
    const fn = `${this.constructor.name}.loadStateDict`
    if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw argumentError(fn, 'dict', 'an object of name -> Tensor', dict)
    if (options === null || typeof options !== 'object') throw argumentError(fn, 'options', '{ strict? }', options)
    const strict = options.strict ?? true
    if (typeof strict !== 'boolean') throw argumentError(fn, 'options.strict', 'a boolean', strict)
    const entries = dict as Record<string, unknown>
    const expected = this.stateDict()
    const missingKeys: string[] = []
    const problems: string[] = []
    const copies: [Tensor, Tensor][] = []
    for (const [key, target] of Object.entries(expected)) {
      if (!Object.prototype.hasOwnProperty.call(entries, key)) {
        missingKeys.push(key)
        continue
      }
      const value = entries[key]
      if (!isTensorLike(value)) problems.push(`'${key}' is not a tensor (${describe(value)})`)
      else if (value.isDisposed) problems.push(`'${key}' was disposed`)
      else if (value.shape.join() !== target.shape.join())
        problems.push(`'${key}' has shape [${value.shape.join(', ')}] but the module's is [${target.shape.join(', ')}]`)
      else copies.push([target, value])
    }
    const unexpectedKeys = Object.keys(entries).filter((k) => !Object.prototype.hasOwnProperty.call(expected, k))
    if (strict) {
      if (missingKeys.length) problems.unshift(`missing keys: ${missingKeys.map((k) => `'${k}'`).join(', ')}`)
      if (unexpectedKeys.length) problems.unshift(`unexpected keys: ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}`)
    }
    if (problems.length)
      throw new InnflowError('ERR_CHECKPOINT', `${fn}: the state dict does not fit the module (nothing was loaded):\n  ${problems.join('\n  ')}`)
    return () => {
      noGrad(() => {
        for (const [target, value] of copies) core.copyInto(target.handle, value.handle)
      })
      for (const m of this.modules()) m._stateLoaded()
      return { missingKeys, unexpectedKeys }
    }
  }

  /**
   * Converts every parameter and buffer (and existing gradients) to `dtype` and/or moves them to `device`,
   * in place: the tensor objects stay the same, so an optimiser created before keeps working. Returns this.
   */
  to(options: { dtype?: DType; device?: 'cpu' | 'cuda' }): this {
    const fn = `${this.constructor.name}.to`
    if (options === null || typeof options !== 'object') throw argumentError(fn, 'options', '{ dtype?, device? }', options)
    const device = options.device === undefined ? undefined : resolveDevice(fn, options.device)
    const dtype = options.dtype === undefined ? undefined : resolveDtype(fn, options.dtype)
    // Every converted copy is made first and assigned only when all succeeded: running out of device memory
    // half-way leaves the module as it was.
    const targets: Tensor[] = []
    for (const t of new Set<Tensor>([...this.parameters(), ...this.buffers()])) {
      targets.push(t)
      const g = t.grad
      if (g && !g.isDisposed) targets.push(g)
    }
    const converted: (NativeTensor | null)[] = []
    try {
      for (const t of targets) {
        let h: NativeTensor | null = null
        if (device !== undefined && t.device !== device) h = core.toDevice(t.handle, device)
        if (dtype !== undefined && t.dtype !== dtype) {
          const c = core.cast((h ?? t.handle) as NativeTensor, dtype)
          h?.dispose()
          h = c
        }
        converted.push(h)
      }
    } catch (e) {
      for (const h of converted) h?.dispose()
      throw e
    }
    targets.forEach((t, i) => {
      const h = converted[i]
      if (h) t._assign(h)
    })
    return this
  }

  /** @internal Called on this module after loadStateDict (on it or an ancestor) changed its tensors' values. */
  _stateLoaded(): void {}

  /** Sets training mode on this module and every descendant (Dropout and similar behave differently). */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw argumentError('train', 'mode', 'a boolean', mode)
    for (const m of this.modules()) m.training = mode
    return this
  }
  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false)
  }

  /** Drops every parameter's gradient (set to null and freed). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      const g = p.grad
      if (g) {
        p.grad = null
        g.dispose()
      }
    }
  }

  /** Extra text for {@link toString}, e.g. `in_features=2, out_features=3`. */
  extraRepr(): string {
    return ''
  }

  /** A PyTorch-style description of the module tree. */
  toString(): string {
    const children = this.namedChildren()
    const head = `${this.constructor.name}(${this.extraRepr()}`
    if (children.length === 0) return `${head})`
    const lines = children.map(([name, m]) => `  (${name}): ${m.toString().split('\n').join('\n  ')}`)
    return `${head}\n${lines.join('\n')}\n)`
  }
}
