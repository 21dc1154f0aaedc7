// Loading a trained model to serve it: `loadCheckpoint(dir)` reads a checkpoint directory (config.json and
// model.safetensors, as `roaf train` writes them; no optimiser state needed) and returns the model with
// its configuration and `predict`/`classify` bound to it. The configuration is checked before anything is
// allocated (a value out of range, or a model bigger than the machine's memory, is an error naming
// config.json), and the loaded weights after (finite, orthogonal filters: checkLoadedModel).

import { totalmem } from 'node:os';
import { join } from 'node:path';

import { BACKEND_NAMES, requireBackend, type BackendName } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import type { TaskData } from '../data/dataset.js';
import { loadTask } from '../data/tasks.js';
import { createModel } from '../models/factory.js';
import type { Model } from '../models/model.js';
import {
  loadModelTensors,
  readCheckpointConfig,
  resolveCheckpointDir,
  type CheckpointConfig,
} from '../train/checkpoint.js';
import { validateModelConfig, type ModelConfig } from '../models/config.js';
import { resolveBaseline } from '../models/factory.js';
import { modelKind } from '../models/kinds.js';
import { completeTaskConfig } from '../train/run-options.js';
import { checkChoice, UsageError } from '../util/errors.js';
import { classify, predict, type PredictInput, type PredictOptions, type Prediction } from './predict.js';

export interface LoadOptions {
  /** A backend, or its name: 'auto' (default: native where it is built and supports the dtype), 'native', 'reference'. */
  backend?: Backend | BackendName;
  /** Threads of the native backend (default: all cores). */
  threads?: number;
}

/** A model loaded from a checkpoint, ready to predict. */
export interface LoadedModel {
  readonly model: Model;
  /** The checkpoint's config.json: model, task and training configuration, progress. */
  readonly config: CheckpointConfig;
  /** Logits for every sample (see `predict`). */
  predict(inputs: PredictInput, options?: PredictOptions): Prediction;
  /** The predicted class of every sample (see `classify`). */
  classify(inputs: PredictInput, options?: PredictOptions): Int32Array;
  /** The task's data as the model was trained on it (train and test splits, limits and all). */
  taskData(): TaskData;
}

/** Loads the model saved in checkpoint directory `dir`; a missing or corrupt file is a UsageError naming it. */
export function loadCheckpoint(dir: string, options: LoadOptions = {}): LoadedModel {
  const config = readCheckpointConfig(dir);
  checkModelFits(config.model, join(resolveCheckpointDir(dir) ?? dir, 'config.json'), totalmem());
  const requested = options.backend ?? 'auto';
  const backend =
    typeof requested === 'string'
      ? requireBackend(checkChoice('backend', requested, BACKEND_NAMES), config.model.dtype, options.threads)
      : requested;
  const model = createModel(config.model, backend);
  loadModelTensors(dir, model);
  return {
    model,
    config,
    predict: (inputs, predictOptions) => predict(model, inputs, predictOptions),
    classify: (inputs, predictOptions) => classify(model, inputs, predictOptions),
    taskData: () => loadTask(config.task.name, { ...completeTaskConfig(config.task), seed: config.training.seed }),
  };
}

/** The bytes of a (validated) model configuration's tensors: weights and filters, as a checkpoint holds them. */
export function modelWeightBytes(resolved: ModelConfig): number {
  let bytes = 0;
  for (const tensor of modelKind(resolved.model).tensors(resolved).tensors)
    bytes += (tensor.dtype === 'F64' ? 8 : 4) * tensor.shape.reduce((a, b) => a * b, 1);
  return bytes;
}

/**
 * Checks a checkpoint's model configuration before the model is built: every field in range (an error
 * names `configPath` and the field), and the bytes of its tensors (the estimate `roaf bench` makes, without
 * optimiser state or activations) within `memoryBytes`, so a depth or width that implies terabytes is an
 * error instead of an allocation failure.
 */
export function checkModelFits(config: ModelConfig, configPath: string, memoryBytes: number): void {
  if (typeof config !== 'object' || config === null) throw new UsageError(`${configPath}: field 'model' is missing`);
  let resolved: ModelConfig;
  try {
    resolved = validateModelConfig(resolveBaseline(config));
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error;
    throw new UsageError(`${configPath}: model: ${error.message.replace(/^--/, '')}`);
  }
  const bytes = modelWeightBytes(resolved);
  if (bytes > memoryBytes)
    throw new UsageError(
      `${configPath}: the model (${resolved.model}, depth ${resolved.depth}, width ${resolved.width}, hidden ${resolved.hidden}) needs about ${(bytes / 2 ** 30).toFixed(1)} GiB for its weights alone, more than this machine's ${(memoryBytes / 2 ** 30).toFixed(1)} GiB`,
    );
}
