// Checkpoints: a directory holding `model.safetensors` (every tensor needed to run the model without
// roaf, filters included), `optimizer.safetensors` (the optimiser's state) and `config.json` (model,
// task, hyperparameters, seed, epoch, step).
//
// Atomicity: a new checkpoint is written whole into `<dir>.tmp`, then swapped in by renames
// (`<dir>` -> `<dir>.old`, `<dir>.tmp` -> `<dir>`, remove `<dir>.old`). A run killed at any moment leaves
// either the previous checkpoint or the new one complete; `resolveCheckpointDir` finds whichever it is.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../models/config.js';
import { modelKindOf } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { bindTensors } from '../models/tensors.js';
import { UsageError } from '../util/errors.js';
import type { LrSchedule, OptimizerOptions } from './optimizer.js';
import { Optimizer } from './optimizer.js';
import { SafetensorsFile, writeSafetensors, type NamedTensor } from './safetensors.js';
import { checkLoadedModel } from '../models/tensors.js';

export const CHECKPOINT_FORMAT = 'roaf-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** What the data of a run was, so `eval` and `--resume` rebuild the same task. */
export interface TaskConfig {
  name: string;
  seqLen?: number;
  dataDir?: string;
  trainLimit?: number;
  testLimit?: number;
  trainSize?: number;
  testSize?: number;
  /** psMNIST: the pixel read at each step, so the data can be rebuilt without roaf (docs/tasks.md). */
  permutation?: number[];
}

/** Hyperparameters of the training loop. */
export interface TrainingConfig {
  epochs: number;
  batch: number;
  optimizer: OptimizerOptions;
  /** Learning-rate schedule over the whole run (all epochs). */
  lrSchedule?: LrSchedule;
  /** Global gradient-norm clipping threshold; 0 disables it. */
  clip: number;
  /** Evaluate on the test set every k steps as well as after each epoch; 0: only after each epoch. */
  evalEvery: number;
  /** Also write a checkpoint every k steps; 0: only after each epoch. */
  checkpointEvery: number;
  /** Add per-layer/per-step gradient-norm summaries to each metrics record. */
  logGradients: boolean;
  seed: number;
}

/** Where a run stands: the next batch to train is batch `batchInEpoch` of epoch `epoch` (0-based). */
export interface Progress {
  epoch: number;
  batchInEpoch: number;
  /** Optimiser steps taken so far. */
  step: number;
  /** Wall-clock seconds of training so far, carried across resumes. */
  seconds: number;
}

export interface CheckpointConfig {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  model: ModelConfig;
  task: TaskConfig;
  training: TrainingConfig;
  seed: number;
  epoch: number;
  batch_in_epoch: number;
  step: number;
  seconds: number;
  tensors: string;
  optimizer_state: string;
  /** Names of the filter tensors in model.safetensors, by layer (the same name when shared). */
  filters: string[];
}

/**
 * The tensors of a model as safetensors entries, as its kind lists them (parameters under their names,
 * then the filters), each a view of the model's own buffer; and each layer's filter tensor name.
 */
export function modelTensors(model: Model): { tensors: NamedTensor[]; filterNames: string[] } {
  const list = modelKindOf(model).tensors(model.config);
  return { tensors: bindTensors(model, list), filterNames: list.filterNames };
}

export interface CheckpointContents {
  model: Model;
  optimizer: Optimizer;
  task: TaskConfig;
  training: TrainingConfig;
  progress: Progress;
}

/** Writes a checkpoint to `dir` atomically (see the file header). */
export function saveCheckpoint(dir: string, contents: CheckpointContents): void {
  const { model, optimizer, task, training, progress } = contents;
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const { tensors, filterNames } = modelTensors(model);
  writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'roaf', model: model.config.model });
  const state: NamedTensor[] = Object.entries(optimizer.state).map(([name, data]) => ({
    name,
    shape: [data.length],
    data,
  }));
  writeSafetensors(join(tmp, 'optimizer.safetensors'), state, {
    steps: String(optimizer.steps),
    kind: optimizer.options.kind,
  });
  const config: CheckpointConfig = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    model: model.config,
    task,
    training,
    seed: model.config.seed,
    epoch: progress.epoch,
    batch_in_epoch: progress.batchInEpoch,
    step: progress.step,
    seconds: progress.seconds,
    tensors: 'model.safetensors',
    optimizer_state: 'optimizer.safetensors',
    filters: filterNames,
  };
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/** The complete checkpoint directory for `dir`: itself, or `<dir>.old` if a swap was interrupted. */
export function resolveCheckpointDir(dir: string): string | null {
  if (existsSync(join(dir, 'config.json'))) return dir;
  if (existsSync(join(`${dir}.old`, 'config.json'))) return `${dir}.old`;
  return null;
}

/** Reads and checks config.json of a checkpoint directory. */
export function readCheckpointConfig(dir: string): CheckpointConfig {
  const resolved = resolveCheckpointDir(dir);
  if (resolved === null) {
    throw new UsageError(
      existsSync(dir)
        ? `${join(dir, 'config.json')}: checkpoint config is missing`
        : `--checkpoint ${dir}: no such checkpoint directory`,
    );
  }
  const path = join(resolved, 'config.json');
  let config: CheckpointConfig;
  try {
    config = JSON.parse(readFileSync(path, 'utf8')) as CheckpointConfig;
  } catch (error) {
    throw new UsageError(`${path}: not valid JSON (${(error as Error).message.split('\n')[0]})`);
  }
  if (config.format !== CHECKPOINT_FORMAT)
    throw new UsageError(`${path}: not a roaf checkpoint (format '${String(config.format)}')`);
  if (config.version !== CHECKPOINT_VERSION)
    throw new UsageError(`${path}: checkpoint version ${config.version}, this roaf reads ${CHECKPOINT_VERSION}`);
  for (const key of ['model', 'task', 'training'] as const) {
    if (typeof config[key] !== 'object' || config[key] === null)
      throw new UsageError(`${path}: field '${key}' is missing`);
  }
  return config;
}

/** Loads parameter values and filters from `dir` into a model built from the same config. */
export function loadModelTensors(dir: string, model: Model): void {
  const resolved = resolveCheckpointDir(dir) ?? dir;
  const file = new SafetensorsFile(join(resolved, 'model.safetensors'));
  const { tensors, filterNames } = modelTensors(model);
  for (const tensor of tensors) file.readInto(tensor.name, tensor.data, tensor.shape);
  checkLoadedModel(model, file.path, filterNames); // finite weights, orthogonal filters
}

/** Loads the optimiser state saved next to the model. */
export function loadOptimizerState(dir: string, optimizer: Optimizer): void {
  const resolved = resolveCheckpointDir(dir) ?? dir;
  const file = new SafetensorsFile(join(resolved, 'optimizer.safetensors'));
  for (const [name, data] of Object.entries(optimizer.state)) file.readInto(name, data, [data.length]);
  const steps = Number(file.metadata.steps);
  if (!Number.isInteger(steps) || steps < 0)
    throw new UsageError(`${file.path}: metadata 'steps' is missing or invalid`);
  optimizer.steps = steps;
}
