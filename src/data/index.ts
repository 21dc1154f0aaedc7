// The data layer's public surface: datasets, IDX files, and the task registry.

export { checkBatch, limitDataset } from './dataset.js';
export type { BatchTargets, Dataset, TargetSpec, TaskData } from './dataset.js';
export { encodeIdx, parseIdx, readIdx } from './idx.js';
export type { IdxData, IdxFile, IdxType } from './idx.js';
export {
  FASHION_MNIST_DIR,
  IMAGE_CLASSES,
  ImageDataset,
  defaultImageDir,
  imageFileNames,
  loadImageDataset,
} from './mnist.js';
export type { ImageKind, Split } from './mnist.js';
export { PSMNIST_SEED, SequentialImageDataset, psmnistPermutation, sequentialImages } from './sequential.js';
export { ADDING_BASELINE_MSE, AddingDataset } from './adding.js';
export type { AddingOptions, AddingSample } from './adding.js';
export {
  COPY_BLANK,
  COPY_INPUT_CLASSES,
  COPY_MARKER,
  COPY_OUTPUT_CLASSES,
  COPY_SYMBOLS,
  CopyDataset,
  copyMemorylessBaseline,
} from './copy.js';
export type { CopyOptions } from './copy.js';
export {
  DEFAULT_SEQ_LEN,
  DEFAULT_TEST_SIZE,
  DEFAULT_TRAIN_SIZE,
  MAX_SEQ_LEN,
  TASKS,
  isSequential,
  loadTask,
  splitSeed,
  taskKind,
} from './tasks.js';
export type { TaskKind, TaskName, TaskOptions } from './tasks.js';
