/**
 * Checkpoints: a model's state dict (under `model.`) and optionally an optimiser's state (under
 * `optimizer.`) in one safetensors file. Loading validates everything before changing anything, so a bad
 * checkpoint leaves both the model and the optimiser as they were.
 */
import { argumentError, InnflowError } from '../errors'
import { Module } from '../nn/module'
import type { LoadStateDictResult } from '../nn/module'
import { Optimizer } from '../optim/optimizer'
import { Tensor } from '../tensor'
import { loadSafetensors, serializeSafetensors, writeAtomically } from './safetensors'

/** The metadata key under which innflow describes the checkpoint (JSON). */
export const CHECKPOINT_KEY = 'innflow.checkpoint'

interface CheckpointInfo {
  format: number
  model: string
  optimizer: { type: string; params: number } | null
}

/** What {@link saveCheckpoint} stores. */
export interface CheckpointContents {
  model: Module
  optimizer?: Optimizer
  /** Extra string metadata (e.g. epoch, loss), returned by {@link loadCheckpoint}. */
  metadata?: Record<string, string>
}

/** Where {@link loadCheckpoint} puts the state. */
export interface CheckpointTargets {
  model: Module
  /** Restores the optimiser state too (the checkpoint must hold one for the same kind of optimiser). */
  optimizer?: Optimizer
  /** Require the model keys to match exactly (default true). */
  strict?: boolean
}

/** What {@link loadCheckpoint} returns. */
export interface LoadedCheckpoint extends LoadStateDictResult {
  /** The metadata given to saveCheckpoint. */
  metadata: Record<string, string>
}

function isModule(v: unknown): v is Module {
  return v instanceof Module || (v as { __isInnflowModule?: boolean } | null)?.__isInnflowModule === true
}

/**
 * Saves `model.stateDict()` as `model.<key>` and `optimizer.stateDict()` as `optimizer.<key>` in one
 * safetensors file (replaced atomically), with `metadata`.
 * @example io.saveCheckpoint('ckpt.safetensors', { model: flow, optimizer: opt, metadata: { epoch: '10' } })
 */
export function saveCheckpoint(file: string, contents: CheckpointContents): void {
  const fn = 'saveCheckpoint'
  if (contents === null || typeof contents !== 'object') throw argumentError(fn, 'contents', '{ model, optimizer?, metadata? }', contents)
  const { model, optimizer, metadata } = contents
  if (!isModule(model)) throw argumentError(fn, 'model', 'a Module', model)
  if (optimizer !== undefined && !(optimizer instanceof Optimizer)) throw argumentError(fn, 'optimizer', 'an Optimizer', optimizer)
  if (metadata !== undefined && (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)))
    throw argumentError(fn, 'metadata', 'an object of strings', metadata)
  if (metadata && CHECKPOINT_KEY in metadata) throw new InnflowError('ERR_ARGUMENT', `${fn}: the metadata key '${CHECKPOINT_KEY}' is reserved`)
  const info: CheckpointInfo = {
    format: 1,
    model: model.constructor.name,
    optimizer: optimizer ? { type: optimizer.constructor.name, params: optimizer.params.length } : null,
  }
  const tensors: Record<string, Tensor> = {}
  for (const [k, t] of Object.entries(model.stateDict())) tensors[`model.${k}`] = t
  const optState = optimizer ? optimizer.stateDict() : {}
  try {
    for (const [k, t] of Object.entries(optState)) tensors[`optimizer.${k}`] = t
    const parts = serializeSafetensors(fn, tensors, { ...metadata, [CHECKPOINT_KEY]: JSON.stringify(info) })
    writeAtomically(fn, file, parts)
  } finally {
    for (const t of Object.values(optState)) t.dispose()
  }
}

/**
 * Loads a checkpoint written by {@link saveCheckpoint} into `model` (and `optimizer`). Everything is
 * validated first (file format, keys, shapes, optimiser kind and size); on any problem it throws
 * InnflowError ERR_CHECKPOINT and neither the model nor the optimiser changes.
 */
export function loadCheckpoint(file: string, targets: CheckpointTargets): LoadedCheckpoint {
  const fn = 'loadCheckpoint'
  if (targets === null || typeof targets !== 'object') throw argumentError(fn, 'targets', '{ model, optimizer? }', targets)
  const { model, optimizer, strict = true } = targets
  if (!isModule(model)) throw argumentError(fn, 'model', 'a Module', model)
  if (optimizer !== undefined && !(optimizer instanceof Optimizer)) throw argumentError(fn, 'optimizer', 'an Optimizer', optimizer)
  const { tensors, metadata } = loadSafetensors(file)
  try {
    const fail = (msg: string) => new InnflowError('ERR_CHECKPOINT', `${fn}: '${file}' ${msg} (nothing was loaded)`)
    let info: CheckpointInfo | null = null
    if (metadata[CHECKPOINT_KEY] !== undefined) {
      try {
        info = JSON.parse(metadata[CHECKPOINT_KEY]) as CheckpointInfo
      } catch {
        throw fail(`has unreadable '${CHECKPOINT_KEY}' metadata`)
      }
    }
    const modelDict: Record<string, Tensor> = {}
    const optDict: Record<string, Tensor> = {}
    const stray: string[] = []
    for (const [k, t] of Object.entries(tensors)) {
      if (k.startsWith('model.')) modelDict[k.slice(6)] = t
      else if (k.startsWith('optimizer.')) optDict[k.slice(10)] = t
      else stray.push(k)
    }
    if (stray.length) throw fail(`holds keys outside 'model.' and 'optimizer.': ${stray.map((k) => `'${k}'`).join(', ')}`)
    const applyModel = model._prepareLoad(modelDict, { strict })
    let applyOptimizer: (() => void) | null = null
    if (optimizer) {
      const saved = info?.optimizer
      if (!saved) throw fail('holds no optimizer state')
      if (saved.type !== optimizer.constructor.name) throw fail(`holds the state of a ${saved.type} optimizer, not a ${optimizer.constructor.name}`)
      if (saved.params !== optimizer.params.length)
        throw fail(`holds optimizer state for ${saved.params} parameters, but the optimizer has ${optimizer.params.length}`)
      applyOptimizer = optimizer._prepareLoad(optDict)
    }
    const result = applyModel()
    applyOptimizer?.()
    const userMetadata = { ...metadata }
    delete userMetadata[CHECKPOINT_KEY]
    return { ...result, metadata: userMetadata }
  } finally {
    for (const t of Object.values(tensors)) t.dispose()
  }
}
