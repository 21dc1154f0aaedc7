// Builds any model from its configuration on a given backend: the kind (kinds.ts) applies what it fixes
// (the baselines: `mlp` and `rnn` have alpha = 0 and beta = 1, `resmlp` O = I and alpha = beta = 1) and
// constructs it. A partial configuration is completed first with the CLI's defaults for the task
// (modelConfig). `createModel` (factory.ts) adds the default backend; this file reaches no backend loader
// and no file, so the browser entry shares it.

import type { Precision } from '../backend/names.js';
import type { Backend, DType } from '../backend/backend.js';
import type { Dataset, TaskData } from '../data/dataset.js';
import { TASKS, type TaskName } from '../data/task-names.js';
import { DEFAULT_FILTER } from '../nn/filter.js';
import { UsageError } from '../util/errors.js';
import { validateModelConfig, type ModelConfig } from './config.js';
import { runDefaults } from './defaults.js';
import { kindsWhere, modelKind } from './kinds.js';
import type { Model } from './model.js';

/** The config with the kind's fixed settings applied (the baselines'). */
export function resolveBaseline(config: ModelConfig): ModelConfig {
  const { fixed } = modelKind(config.model);
  return Object.keys(fixed).length === 0 ? config : { ...config, ...fixed };
}

/**
 * Builds a model on the backend `chooseBackend` gives for its dtype. `options` may be a complete
 * ModelConfig (a checkpoint's) or any part of one: the rest is filled by `modelConfig`.
 */
export function buildModel(
  options: ModelOptions,
  chooseBackend: (dtype: DType, precision: Precision) => Backend,
): Model {
  const config = modelConfig(options);
  const kind = modelKind(config.model);
  const resolved = validateModelConfig(resolveBaseline(config));
  if ((resolved.layers ?? 1) !== 1 && !kind.stackable) {
    throw new UsageError(
      `--layers must be 1 for --model ${kind.name}, got ${resolved.layers}: stacked layers are for ` +
        `${kindsWhere((k) => k.stackable).join(', ')} (a feed-forward model's depth is --depth)`,
    );
  }
  const chosen = chooseBackend(resolved.dtype, resolved.precision ?? 'float32');
  if (!chosen.supports(resolved.dtype)) {
    throw new Error(`the ${chosen.name} backend does not support ${resolved.dtype}`);
  }
  return kind.create(resolved, chosen);
}

/** Any part of a ModelConfig, and where the rest comes from. */
export type ModelOptions = Partial<ModelConfig> & {
  /**
   * The task the model is for: its sizes default to the task's (e.g. 256 units and input scale 3 on psmnist),
   * and without `model`, the model is the task's usual one. Default: the task `data` was loaded for.
   */
  task?: TaskName;
  /** Data whose shape gives inputDim, outputs and readout (a task's splits, or one dataset). */
  data?: TaskData | Dataset;
};

/** The task a dataset of `loadTask` belongs to (it names its splits 'task/split'), or undefined. */
export function datasetTask(dataset: Pick<Dataset, 'name'>): TaskName | undefined {
  const name = dataset.name.split('/')[0] ?? '';
  return (TASKS as readonly string[]).includes(name) ? (name as TaskName) : undefined;
}

/** The input size, classes or outputs, and readout a dataset gives a model. */
export function datasetShape(dataset: Dataset): Pick<ModelConfig, 'inputDim' | 'outputs' | 'readout'> {
  const { target } = dataset;
  const outputs = target.kind === 'regression' ? target.outputs : target.classes;
  return { inputDim: dataset.inputDim, outputs, readout: target.kind === 'class-per-step' ? 'every' : 'last' };
}

/** The classes/outputs and input size a task gives a model, and its readout. */
export function taskShape(data: TaskData): Pick<ModelConfig, 'inputDim' | 'outputs' | 'readout'> {
  return datasetShape(data.train);
}

/**
 * A complete config from any part of one. Sizes: the task's defaults (`runDefaults`: depth 100, width 64;
 * hidden 128, or 256 on smnist/psmnist; input scale 1, 3 on smnist/psmnist, 10 on adding), or without a
 * task depth 100, width 64, hidden 128, input scale 1; one layer, haar filters, seed 0, float32, and the
 * model's default alpha/beta (roaf-mlp: alpha 1, beta min(0.5, 1/sqrt(L)); roaf-rnn: alpha 1, beta 0.1).
 * inputDim, outputs and readout come from the options or from `data`.
 */
export function modelConfig(options: ModelOptions): ModelConfig {
  const { task: taskOption, data, ...given } = options;
  // A field given as undefined is left to its default, as a field not given at all.
  const fields = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<ModelConfig>;
  const dataset = data === undefined ? undefined : 'train' in data ? data.train : data;
  const task = taskOption ?? (dataset && datasetTask(dataset));
  const model = fields.model ?? (task && runDefaults(task).model);
  if (model === undefined)
    throw new UsageError('modelConfig: give the model kind (model) or a task (task, or data loaded by loadTask)');
  const sizes = task ? runDefaults(task, model) : { depth: 100, width: 64, hidden: 128, inputScale: 1 };
  const shape = dataset ? datasetShape(dataset) : { readout: 'last' as const };
  const defaults: Partial<ModelConfig> = {
    model,
    ...shape,
    depth: sizes.depth,
    width: sizes.width,
    hidden: sizes.hidden,
    ...modelKind(model).defaultCoefficients(fields.depth ?? sizes.depth),
    filter: DEFAULT_FILTER,
    sharedFilter: false,
    inputScale: sizes.inputScale,
    seed: 0,
    dtype: 'float32',
  };
  // The given fields first, in their order, so that a complete config comes back exactly as it was.
  const config = { ...fields } as Record<string, unknown>;
  for (const [key, value] of Object.entries(defaults)) if (config[key] === undefined) config[key] = value;
  for (const field of ['inputDim', 'outputs'] as const) {
    if (config[field] === undefined) throw new UsageError(`modelConfig: give ${field}, or data to take it from`);
  }
  return config as unknown as ModelConfig;
}
