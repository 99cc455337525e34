/** Reading and writing tensors: safetensors files and training checkpoints (model + optimiser state). */
export { loadSafetensors, saveSafetensors, readSafetensorsMetadata } from './safetensors'
export type { Safetensors } from './safetensors'
export { saveCheckpoint, loadCheckpoint, CHECKPOINT_KEY } from './checkpoint'
export type { CheckpointContents, CheckpointTargets, LoadedCheckpoint } from './checkpoint'
