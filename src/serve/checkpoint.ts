// Loading a trained model to serve it: `loadCheckpoint(dir)` reads a checkpoint directory (config.json and
// model.safetensors, as `roaf train` writes them; no optimiser state needed) and returns the model with
// its configuration and `predict`/`classify` bound to it.

import { BACKEND_NAMES, requireBackend, type BackendName } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import type { TaskData } from '../data/dataset.js';
import { loadTask } from '../data/tasks.js';
import { createModel } from '../models/factory.js';
import type { Model } from '../models/model.js';
import { loadModelTensors, readCheckpointConfig, type CheckpointConfig } from '../train/checkpoint.js';
import { completeTaskConfig } from '../train/run-options.js';
import { checkChoice } from '../util/errors.js';
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
