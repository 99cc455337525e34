/** Training helpers: the train() loop with progress, checkpoints and exact resumption, and the NLL objective. */
export { train, epochOrder, TRAIN_CHECKPOINT_KEY } from './train'
export type { Batch, TrainData, TrainOptions, TrainResult, StepInfo } from './train'
export { nllLoss, logLikelihood } from './objective'
export type { FlowLike } from './objective'
export { ProgressBar, formatDuration, formatRate } from './progress'
export type { ProgressBarOptions, ProgressStream } from './progress'
