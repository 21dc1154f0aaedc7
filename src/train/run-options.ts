// A run's settings from partial options: every field a caller leaves out takes the CLI's default for the
// task (the task's recipe in models/defaults.ts, the optimiser's DEFAULT_OPTIMIZER, and the loop's: no
// clipping, evaluation and checkpoints after each epoch), so `runTraining({ model, train, test, epochs: 1 })`
// trains like `roaf train --epochs 1`. `roaf train` fills its TrainingConfig here too, so the library and
// the CLI cannot drift apart. Also the files a run directory gets besides metrics and checkpoints (the
// psMNIST permutation, so others can rebuild the data: docs/tasks.md).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { COPY_SYMBOLS } from '../data/copy.js';
import type { Dataset } from '../data/dataset.js';
import { PSMNIST_SEED, psmnistPermutation } from '../data/sequential.js';
import { TASKS, type TaskName } from '../data/tasks.js';
import { runDefaults, type RunDefaults } from '../models/defaults.js';
import { datasetTask } from '../models/factory.js';
import type { ModelKind } from '../models/kinds.js';
import { OPTIONS, checkOptionChoice } from '../options/table.js';
import { UsageError, checkRange } from '../util/errors.js';
import { writeFileWhole } from '../util/paths.js';
import type { TaskConfig, TrainingConfig } from './checkpoint.js';
import { DEFAULT_OPTIMIZER, type OptimizerOptions } from './optimizer.js';
import type { RunOptions } from './trainer.js';
import { validateTrainingConfig } from './validate.js';

/** A TrainingConfig of which any field may be left out (the optimiser's too); a complete one is returned as it is. */
export type TrainingOptions = Partial<Omit<TrainingConfig, 'optimizer'>> & { optimizer?: Partial<OptimizerOptions> };

/** `value` without its undefined fields, so that spreading it does not erase defaults. */
function defined<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The complete, validated training configuration of a run of `model` on `task`: the given fields, and the
 * CLI's defaults for the others: epochs, batch, lr and schedule from the task's recipe (`runDefaults`), the
 * rest from the options table (Adam, momentum 0.9, no weight decay, no clipping, evaluation and checkpoints
 * after each epoch only, seed 0) and DEFAULT_OPTIMIZER (Adam's betas and eps). Errors name the CLI option,
 * the value and what is allowed.
 */
export function trainingConfig(task: string, model: ModelKind, options: TrainingOptions = {}): TrainingConfig {
  // A task roaf does not know (a user's own dataset) has no recipe: then its fields must be given.
  const known = (TASKS as readonly string[]).includes(task);
  const recipe = <K extends 'epochs' | 'batch' | 'lr' | 'lrSchedule'>(field: K): RunDefaults[K] => {
    if (!known)
      throw new UsageError(
        `training.${field} is needed: task '${task}' has no default recipe (tasks with one: ${TASKS.join(', ')})`,
      );
    return runDefaults(task as TaskName, model)[field];
  };
  const given = defined(options);
  const o = defined(options.optimizer);
  const config: TrainingConfig = {
    epochs: given.epochs ?? recipe('epochs'),
    batch: given.batch ?? recipe('batch'),
    optimizer: {
      kind: checkOptionChoice(OPTIONS.optimizer, o.kind ?? OPTIONS.optimizer.default),
      lr: o.lr ?? recipe('lr'),
      momentum: o.momentum ?? OPTIONS.momentum.default,
      weightDecay: o.weightDecay ?? OPTIONS.weightDecay.default,
      beta1: checkRange('optimizer.beta1', o.beta1 ?? DEFAULT_OPTIMIZER.beta1, 0, 0.999999),
      beta2: checkRange('optimizer.beta2', o.beta2 ?? DEFAULT_OPTIMIZER.beta2, 0, 0.999999),
      eps: checkRange('optimizer.eps', o.eps ?? DEFAULT_OPTIMIZER.eps, 0, 1, { minExclusive: true }),
    },
    lrSchedule: checkOptionChoice(OPTIONS.lrSchedule, given.lrSchedule ?? recipe('lrSchedule')),
    clip: given.clip ?? OPTIONS.clip.default,
    evalEvery: given.evalEvery ?? OPTIONS.evalEvery.default,
    checkpointEvery: given.checkpointEvery ?? OPTIONS.checkpointEvery.default,
    logGradients: given.logGradients ?? OPTIONS.logGradients.default,
    seed: given.seed ?? OPTIONS.seed.default,
  };
  return validateTrainingConfig(config);
}

/**
 * The task config with what the data needs to be rebuilt without roaf: for psMNIST the pixel permutation
 * (784 integers). A permutation already there (a checkpoint's) must be roaf's, or the data would differ.
 */
export function completeTaskConfig(task: TaskConfig): TaskConfig {
  if (task.name !== 'psmnist') return task;
  const permutation = Array.from(psmnistPermutation());
  if (task.permutation !== undefined && task.permutation.join() !== permutation.join()) {
    throw new UsageError(
      `task.permutation differs from roaf's psMNIST permutation (new Random(${PSMNIST_SEED}).permutation(784)): ` +
        `this data cannot be rebuilt by this version of roaf`,
    );
  }
  return { ...task, permutation };
}

/**
 * The task config of datasets loadTask made, as far as they tell it: the split sizes (as limits of an image
 * task, sizes and length of a generated one). A generated task's samples come from the training seed when
 * `roaf eval` or `--resume` rebuild them: load the data with the seed the model and run use.
 */
function inferredTask(name: TaskName, train: Dataset, test: Dataset): TaskConfig {
  if (name === 'adding' || name === 'copy') {
    const seqLen = name === 'adding' ? train.steps : train.steps - 2 * COPY_SYMBOLS;
    return { name, seqLen, trainSize: train.count, testSize: test.count };
  }
  return { name, trainLimit: train.count, testLimit: test.count };
}

/** The default run directory, `runs/<model>-<task>-<yyyymmdd-hhmmss>` (as `roaf train` names it). */
export function defaultRunDir(model: string, task: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return join('runs', `${model}-${task}-${stamp}`);
}

/** RunOptions with every field the trainer needs. */
export type ResolvedRunOptions = RunOptions & { task: TaskConfig; training: TrainingConfig; outDir: string };

/**
 * Fills a run's missing options: the task from the training set's name (loadTask's datasets carry it),
 * the training configuration from the task's defaults (trainingConfig; the seed defaults to the model's),
 * the shorthands `epochs`, `batch`, `lr` over `training`, and the run directory.
 */
export function resolveRunOptions(options: RunOptions): ResolvedRunOptions {
  const { model, train } = options;
  const inferred = datasetTask(train);
  if (options.task === undefined && inferred === undefined) {
    throw new UsageError(
      `runTraining: cannot tell the task of dataset '${train.name}': give options.task, e.g. { name: 'mnist' }`,
    );
  }
  const task = completeTaskConfig(options.task ?? inferredTask(inferred!, train, options.test));
  const shorthands = { epochs: options.epochs, batch: options.batch };
  for (const [field, value] of Object.entries({ ...shorthands, lr: options.lr })) {
    const inTraining =
      field === 'lr' ? options.training?.optimizer?.lr : options.training?.[field as 'epochs' | 'batch'];
    if (value !== undefined && inTraining !== undefined && value !== inTraining) {
      throw new UsageError(
        `runTraining: ${field} is given twice, ${value} and training.${field === 'lr' ? 'optimizer.lr' : field} ${inTraining}`,
      );
    }
  }
  const training = trainingConfig(task.name, model.config.model, {
    seed: model.config.seed,
    ...defined(options.training),
    ...defined(shorthands),
    optimizer: { ...defined(options.training?.optimizer), ...defined({ lr: options.lr }) },
  });
  return { ...options, task, training, outDir: options.outDir ?? defaultRunDir(model.config.model, task.name) };
}

/** Writes the run directory's description of its data: `permutation.json` for psMNIST (docs/tasks.md). */
export function writeTaskFiles(outDir: string, task: TaskConfig): void {
  if (task.permutation === undefined) return;
  mkdirSync(outDir, { recursive: true });
  const file = {
    task: task.name,
    generator: `new Random(${PSMNIST_SEED}).permutation(${task.permutation.length}): xoshiro128** seeded by splitmix32, Fisher-Yates from the end`,
    meaning: 'step t of a sequence reads pixel permutation[t] of the row-major 28x28 image (pixels / 255)',
    permutation: task.permutation,
  };
  writeFileWhole(join(outDir, 'permutation.json'), JSON.stringify(file) + '\n');
}
