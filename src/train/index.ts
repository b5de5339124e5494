/**
 * `p2ptls/train`: data-parallel training of TensorFlow.js models over a p2ptls mesh (docs/TRAINING.md).
 * A separate entry point: the core bundles (`p2ptls`, `p2ptls/browser`) never load TensorFlow.js.
 */
export { type FlatLayout, flattenInto, layoutOf, unflatten } from './flat.js';
export { type Compression, type Setting, SLOTS, type StepPlan } from './header.js';
export {
  accuracy,
  batchOf,
  crossEntropy,
  type Shard,
  SPIRAL_CLASSES,
  spiralModel,
  spiralShard,
} from './spirals.js';
export { DataParallel, type DataParallelOptions, type StepReport, type TrainingMesh } from './trainer.js';
