// roaf in the browser (`import ... from 'roaf/browser'`): models, step-wise training, the gradient
// diagnostics, MNIST from fetched IDX bytes, checkpoints as safetensors bytes in memory, and a Web
// Worker that trains while the page stays responsive. Nothing reachable from here imports a Node
// built-in (test/browser-entry.test.ts walks the compiled import graph). docs/browser.md has the API.

// the backend (one function chooses it) and its base classes
export { browserBackend } from './backend.js';
export type { Backend, DType, FloatArray } from '../backend/backend.js';
export { ReferenceBackend, referenceBackend } from '../backend/reference.js';
export { BACKEND_NAMES } from '../backend/names.js';

// models
export { buildModel, datasetShape, modelConfig, resolveBaseline } from '../models/build.js';
export type { ModelOptions } from '../models/build.js';
export { validateModelConfig } from '../models/config.js';
export type { ModelConfig } from '../models/config.js';
export { MODEL_KINDS, isRecurrent, modelKind, modelKindOf } from '../models/kinds.js';
export type { ModelKind } from '../models/kinds.js';
export type { Model } from '../models/model.js';
export { RoafMLP } from '../models/roaf-mlp.js';
export { RecurrentModel } from '../models/recurrent.js';
export { defaultCoefficients, defaultMlpBeta, runDefaults } from '../models/defaults.js';
export { FILTER_KINDS } from '../nn/filter.js';
export type { FilterKind } from '../nn/filter.js';

// training
export { StepTrainer, hiddenStateNorms } from './trainer.js';
export type { StepTrainerOptions } from './trainer.js';
export { BatchBuffers, batchLoss, epochOrder, evaluate } from '../train/batches.js';
export type { Evaluation } from '../train/batches.js';
export { DEFAULT_OPTIMIZER, Optimizer, clipGradients, scheduledLr } from '../train/optimizer.js';
export type { OptimizerOptions } from '../train/optimizer.js';
export { classify, predict } from '../serve/predict.js';

// diagnostics
export { diagnose, summarizeSpectrum } from '../diagnostics/diagnose.js';
export type { Diagnostics } from '../diagnostics/diagnose.js';
export { measureGradientNorms } from '../diagnostics/gradients.js';
export { ProductSpectrum } from '../diagnostics/product-spectrum.js';

// data
export { fetchMnist, imagesFromIdx } from './data.js';
export type { FetchMnistOptions, IdxPair } from './data.js';
export { ImageDataset, IMAGE_CLASSES } from '../data/images.js';
export { sequentialImages, psmnistPermutation } from '../data/sequential.js';
export { limitDataset } from '../data/dataset.js';
export type { Dataset, TaskData } from '../data/dataset.js';
export { parseIdx, encodeIdx } from '../data/idx-parse.js';
export { MNIST_SIDE, mnistDigit } from './digit.js';

// checkpoints as bytes
export { SafetensorsBytes, encodeSafetensors } from '../train/safetensors-bytes.js';
export { modelTensors } from '../train/model-tensors.js';
export {
  downloadBytes,
  loadModelBytes,
  loadStoredBytes,
  readFileBytes,
  saveModelBytes,
  storeBytes,
} from './checkpoint.js';

// the training worker and its messages
export type { FromWorker, ToWorker, WorkerRun } from './protocol.js';

/** Starts a training worker (a module worker running training-worker.js next to this file). */
export function startTrainingWorker(): Worker {
  return new Worker(new URL('./training-worker.js', import.meta.url), { type: 'module' });
}

// figures: the report's Vega-Lite specs
export { gradientNormSpec, learningCurveSpec, spectrumSpec } from '../report/specs.js';
export type { CurvePoint, GradientSeries, SpectrumSeries } from '../report/specs.js';

export { Random } from '../util/random.js';
export { UsageError } from '../util/errors.js';
