// The public API of roaf: an explicit list of what a user imports.
//
//   import { createModel, loadCheckpoint, loadTask, runTraining } from 'roaf';

// backends
export type { Backend, DType, FilterOperand, FloatArray, GruSaved, LstmSaved } from './backend/backend.js';
export type {
  AdamUpdateArgs,
  ApplyFilterArgs,
  BackendCore,
  BufferAllocator,
  FusedKernels,
  GemmArgs,
  GruBackwardArgs,
  GruForwardArgs,
  KernelName,
  LstmBackwardArgs,
  LstmForwardArgs,
  RoafCellBackwardArgs,
  RoafCellForwardArgs,
  RoafLayerBackwardArgs,
  RoafLayerForwardArgs,
  RoafMlpBackwardArgs,
  RoafMlpForwardArgs,
  SgdUpdateArgs,
  SoftmaxCrossEntropyArgs,
  SquaredErrorArgs,
} from './backend/backend.js';
export { allocateHost, hostMemory } from './backend/backend.js';
export { BackendBase } from './backend/backend-base.js';
export { KERNEL_TABLE, kernelTableId } from './backend/kernel-table.js';
export type { ArgSpec, KernelSpec } from './backend/kernel-table.js';
export { withArgumentChecks } from './backend/kernel-checks.js';
export { ReferenceBackend, referenceBackend } from './backend/reference.js';
export { BACKEND_NAMES, loadBackend, requireBackend } from './backend/index.js';
export type { BackendName } from './backend/index.js';
export { nativeInfo, nativeLoadError, setNativeThreads } from './backend/native.js';

// layers, filters, losses
export { FILTER_KINDS, filterMatrix, makeFilter, makeFilters, orthogonalFromQr } from './nn/filter.js';
export type { FilterKind } from './nn/filter.js';
export { GruCell, Linear, LstmCell, RoafCell, RoafLayer } from './nn/layers.js';
export type { SequenceCell } from './nn/layers.js';
export { Parameter, ParameterStore } from './nn/parameters.js';
export { crossEntropyLoss, meanSquaredErrorLoss } from './nn/losses.js';
export type { LossValue } from './nn/losses.js';

// models and the model-kind registry
export { validateModelConfig } from './models/config.js';
export type { ModelConfig } from './models/config.js';
export { MODEL_KINDS, findModelKind, isRecurrent, kindsWhere, modelKind, modelKindOf } from './models/kinds.js';
export type { ModelKind } from './models/kinds.js';
export { CURVE_LABELS, isNotApplicable, notApplicable } from './models/kind.js';
export type {
  BoundFactors,
  CurveLabels,
  FlopEstimate,
  KindLabels,
  ModelKindSpec,
  NotApplicable,
  SizeDefaults,
  TensorList,
  TensorSpec,
} from './models/kind.js';
export type { CellKind } from './models/kinds/recurrent.js';
export { bindTensors, filterTensors } from './models/tensors.js';
export type { BoundTensor } from './models/tensors.js';
export type { GradientHook, Model } from './models/model.js';
export { RoafMLP } from './models/roaf-mlp.js';
export { RecurrentModel, RecurrentModel as RoafRNN } from './models/recurrent.js';
export type { CellFactory } from './models/recurrent.js';
export { createModel, datasetShape, datasetTask, modelConfig, resolveBaseline, taskShape } from './models/factory.js';
export type { ModelOptions } from './models/factory.js';
export { defaultCoefficients, defaultMlpBeta, runDefaults } from './models/defaults.js';
export type { RunDefaults } from './models/defaults.js';

// training
export { DEFAULT_OPTIMIZER, OPTIMIZER_KINDS, Optimizer, clipGradients, gradientNorm } from './train/optimizer.js';
export type { OptimizerKind, OptimizerOptions } from './train/optimizer.js';
export { BatchBuffers, batchLoss, epochOrder, evaluate, runTraining } from './train/trainer.js';
export type { Evaluation, RunOptions, RunResult, StepEvent, TrainerCallbacks } from './train/trainer.js';
export {
  loadModelTensors,
  loadOptimizerState,
  modelTensors,
  readCheckpointConfig,
  saveCheckpoint,
} from './train/checkpoint.js';
export type { CheckpointConfig, Progress, TaskConfig, TrainingConfig } from './train/checkpoint.js';
export { MetricsLog, readMetrics } from './train/metrics.js';
export type { MetricsRecord } from './train/metrics.js';
export { SafetensorsFile, writeSafetensors } from './train/safetensors.js';
export { LR_SCHEDULES, scheduledLr } from './train/optimizer.js';
export type { LrSchedule } from './train/optimizer.js';
export { defaultRunDir, trainingConfig } from './train/run-options.js';
export type { TrainingOptions } from './train/run-options.js';

// serving a trained model
export { loadCheckpoint } from './serve/checkpoint.js';
export type { LoadOptions, LoadedModel } from './serve/checkpoint.js';
export { classify, predict } from './serve/predict.js';
export type { PredictInput, PredictOptions, Prediction } from './serve/predict.js';

// export to other runtimes (ONNX)
export { ONNX_INLINE_LIMIT, exportOnnx, saveOnnx } from './export/onnx.js';
export type { OnnxExportOptions, OnnxSaveOptions, OnnxSaved } from './export/onnx.js';

// diagnostics
export * from './diagnostics/index.js';

// plots and reports
export { buildReport } from './report/html.js';
export type { Report, ReportOptions } from './report/html.js';
export { readRun, readRuns } from './report/runs.js';
export type { RunData } from './report/runs.js';
export { gradientNormSpec, learningCurveSpec, renderSvg, spectrumSpec, svgToPng, writeFigure } from './report/plots.js';

// data
export * from './data/index.js';

// utilities
export { Random } from './util/random.js';
export { UsageError } from './util/errors.js';
