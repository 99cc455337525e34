/** ModuleList: children named '0', '1', ... held in a list, without a forward of their own (torch.nn.ModuleList). */
import { argumentError, InnflowError } from '../errors'
import { Module } from './module'

/** A list of modules registered as children '0', '1', ... (state-dict keys `<list>.<i>.<param>`). */
export class ModuleList extends Module implements Iterable<Module> {
  private readonly items: Module[] = []

  constructor(modules: Module[] = []) {
    super()
    modules.forEach((m) => this.append(m))
  }

  /** Adds a module at the end; returns this. */
  append(module: Module): this {
    if (!(module instanceof Module) && !(module as { __isInnflowModule?: boolean } | null)?.__isInnflowModule)
      throw argumentError('ModuleList.append', 'module', 'a Module', module)
    this.registerModule(String(this.items.length), module)
    this.items.push(module)
    return this
  }

  get length(): number {
    return this.items.length
  }

  /** The module at index i (negative counts from the end). */
  at(i: number): Module {
    const k = Number.isInteger(i) && i < 0 ? this.items.length + i : i
    if (!Number.isInteger(k) || k < 0 || k >= this.items.length)
      throw new InnflowError('ERR_ARGUMENT', `ModuleList.at: index ${i} is out of range for ${this.items.length} modules`)
    return this.items[k]
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.items[Symbol.iterator]()
  }

  forward(): never {
    throw new InnflowError('ERR_ARGUMENT', 'ModuleList has no forward; call its modules')
  }
}
