// Checkpoints: a directory holding `model.safetensors` (every tensor needed to run the model without
// roaf, filters included), `optimizer.safetensors` (the optimiser's state) and `config.json` (model,
// task, hyperparameters, seed, epoch, step).
//
// Atomicity (docs/guarantees.md): once one complete checkpoint exists, one always exists, whatever
// sequence of kills, and a full disk never costs the previous one. A save:
//   0. recovers from an interrupted save: if `<dir>` is not complete but `<dir>.old` is (a kill between
//      the two renames below), `<dir>.old` is renamed back to `<dir>`; only then are the leftovers
//      `<dir>.tmp` and `<dir>.old` removed (neither is then the only complete copy);
//   1. writes the new checkpoint whole into `<dir>.tmp` (each file fsynced, config.json last), fsyncs it;
//   2. renames `<dir>` -> `<dir>.old`, then `<dir>.tmp` -> `<dir>`, and fsyncs the parent directory;
//   3. removes `<dir>.old`.
// Nothing is ever deleted unless `<dir>` is complete at that moment, except the partial `<dir>.tmp`.
// Readers take `<dir>` if it holds a config.json, else `<dir>.old` (a kill between the renames).
// A checkpoint whose parameters or optimiser state hold a non-finite value is never written.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { validateModelConfig, type ModelConfig } from '../models/config.js';
import type { Model } from '../models/model.js';
import { OPTIONS } from '../options/table.js';
import { UsageError } from '../util/errors.js';
import { beginSave, faultPoint } from '../util/fault-injection.js';
import { systemErrorMessage, withPath } from '../util/fs-errors.js';
import type { LrSchedule, OptimizerOptions } from './optimizer.js';
import { Optimizer } from './optimizer.js';
import { checkLoadedModel } from '../models/tensors.js';
import { modelTensors } from './model-tensors.js';
import { validateTrainingConfig } from './validate.js';
import { SafetensorsFile, type NamedTensor } from './safetensors.js';
import { writeFileDurably, writeSafetensors } from './safetensors-write.js';

// modelTensors lives in model-tensors.ts (no files, so the browser entry's in-memory checkpoints share it).
export { modelTensors };

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

export interface CheckpointContents {
  model: Model;
  optimizer: Optimizer;
  task: TaskConfig;
  training: TrainingConfig;
  progress: Progress;
}

/** A tensor to be saved that holds a non-finite value: the checkpoint is not written. */
export class NonFiniteCheckpointError extends Error {
  constructor(
    readonly tensor: string,
    readonly index: number,
    readonly value: number,
  ) {
    super(`refusing to write a checkpoint: ${tensor}[${index}] is ${value}`);
    this.name = 'NonFiniteCheckpointError';
  }
}

/** The first non-finite entry of `tensors`, or null. One pass over the data, no allocation. */
export function firstNonFinite(
  tensors: readonly NamedTensor[],
): { tensor: string; index: number; value: number } | null {
  for (const { name, data } of tensors) {
    if (data instanceof Int32Array) continue;
    for (let i = 0; i < data.length; i++) {
      const value = data[i]!;
      // value - value is 0 for finite values, NaN for NaN and ±Inf
      if (value - value !== 0) return { tensor: name, index: i, value };
    }
  }
  return null;
}

function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'config.json'));
}

/** fsync of a directory, so the renames and files in it are on disk (Linux and macOS allow it). */
function syncDirectory(dir: string): void {
  faultPoint('fsync directory', dir);
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return; // a platform that cannot open directories (Windows) cannot fsync them either
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    // some file systems refuse fsync on a directory; the renames still happened
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EPERM')
      throw error;
  } finally {
    closeSync(fd);
  }
}

function removeDirectory(path: string): void {
  if (!existsSync(path)) return;
  faultPoint('remove', path);
  rmSync(path, { recursive: true, force: true });
}

function renameDirectory(from: string, to: string): void {
  faultPoint(`rename -> ${to}`, from);
  renameSync(from, to);
}

/**
 * Step 0 of a save (see the file header): makes `dir` the complete checkpoint again after an interrupted
 * save, then removes the leftovers. Safe to interrupt at any point and to repeat.
 */
export function recoverCheckpointDir(dir: string): void {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  if (!isComplete(dir) && isComplete(old)) {
    removeDirectory(dir); // not complete, so never a checkpoint (normally absent)
    renameDirectory(old, dir);
    syncDirectory(dirname(dir));
  }
  removeDirectory(tmp);
  if (isComplete(dir) || !isComplete(old)) removeDirectory(old);
}

/** Writes a checkpoint to `dir` atomically (see the file header). */
export function saveCheckpoint(dir: string, contents: CheckpointContents): void {
  const { model, optimizer, task, training, progress } = contents;
  const { tensors, filterNames } = modelTensors(model);
  const state: NamedTensor[] = Object.entries(optimizer.state).map(([name, data]) => ({
    name,
    shape: [data.length],
    data,
  }));
  const bad = firstNonFinite(tensors) ?? firstNonFinite(state.map((t) => ({ ...t, name: `optimizer ${t.name}` })));
  if (bad !== null) throw new NonFiniteCheckpointError(bad.tensor, bad.index, bad.value);
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
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
  beginSave();
  try {
    recoverCheckpointDir(dir);
    faultPoint('create directory', tmp);
    mkdirSync(tmp, { recursive: true });
    writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'roaf', model: model.config.model });
    writeSafetensors(join(tmp, 'optimizer.safetensors'), state, {
      steps: String(optimizer.steps),
      kind: optimizer.options.kind,
    });
    // config.json last: a directory holding it is complete
    writeFileDurably(join(tmp, 'config.json'), [Buffer.from(JSON.stringify(config, null, 2) + '\n', 'utf8')]);
    syncDirectory(tmp);
    if (existsSync(dir)) renameDirectory(dir, old);
    renameDirectory(tmp, dir);
    syncDirectory(dirname(dir));
    removeDirectory(old);
  } catch (error) {
    // a failed save (a full disk, a permission): the previous checkpoint is untouched; drop the partial one
    try {
      if (isComplete(dir)) rmSync(tmp, { recursive: true, force: true });
    } catch {
      // the original error matters more
    }
    // the error names the file that could not be written (a full disk: the previous checkpoint is kept)
    const message = systemErrorMessage(error);
    throw message === null ? error : new UsageError(message);
  }
}

/** The complete checkpoint directory for `dir`: itself, or `<dir>.old` if a swap was interrupted. */
export function resolveCheckpointDir(dir: string): string | null {
  if (existsSync(join(dir, 'config.json'))) return dir;
  if (existsSync(join(`${dir}.old`, 'config.json'))) return `${dir}.old`;
  return null;
}

/** The JSON type of a value, as a message names it. */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/** The types config.json's fields must have (the ranges are checked by the model's and training's validation). */
const FIELD_TYPES: Record<string, Record<string, 'number' | 'string' | 'boolean' | 'object'>> = {
  '': { epoch: 'number', batch_in_epoch: 'number', step: 'number', seconds: 'number' },
  model: {
    model: 'string',
    depth: 'number',
    width: 'number',
    hidden: 'number',
    alpha: 'number',
    beta: 'number',
    filter: 'string',
    sharedFilter: 'boolean',
    inputScale: 'number',
    seed: 'number',
    dtype: 'string',
  },
  task: { name: 'string' },
  training: {
    epochs: 'number',
    batch: 'number',
    optimizer: 'object',
    clip: 'number',
    evalEvery: 'number',
    checkpointEvery: 'number',
    logGradients: 'boolean',
    seed: 'number',
  },
  'training.optimizer': {
    kind: 'string',
    lr: 'number',
    momentum: 'number',
    weightDecay: 'number',
  },
};

/** Flags of the options table by their field name, to name config.json's fields in range errors. */
function fieldOfFlag(flag: string): string | undefined {
  const entry = Object.entries(OPTIONS).find(([, option]) => option.flag === flag);
  return entry?.[0];
}

/**
 * Checks the types of config.json's fields, then their ranges with the model's and training's validation;
 * errors name the file and the field (`model.depth`), not the command-line option of the same meaning.
 */
function checkConfigFields(path: string, config: Record<string, unknown>): void {
  for (const [section, fields] of Object.entries(FIELD_TYPES)) {
    let holder: unknown = config;
    for (const part of section === '' ? [] : section.split('.')) holder = (holder as Record<string, unknown>)[part];
    for (const [field, type] of Object.entries(fields)) {
      const value = (holder as Record<string, unknown>)[field];
      const name = section === '' ? field : `${section}.${field}`;
      const ok =
        type === 'object'
          ? typeof value === 'object' && value !== null && !Array.isArray(value)
          : typeof value === type;
      if (!ok)
        throw new UsageError(
          `${path}: field '${name}' is ${value === undefined ? 'missing' : jsonType(value)}; allowed: ${type === 'object' ? 'an object' : `a ${type}`}`,
        );
    }
  }
  for (const [section, validate] of [
    // the task's shape (inputDim, outputs, readout) is checked when the model is built for the task's data
    [
      'model',
      () =>
        validateModelConfig({
          inputDim: 1,
          outputs: 1,
          readout: 'last',
          ...(config.model as Partial<ModelConfig>),
        } as ModelConfig),
    ],
    ['training', () => validateTrainingConfig(config.training as TrainingConfig)],
  ] as const) {
    try {
      validate();
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      const message = error.message.replace(/^(--[a-z-]+)/, (flag) => {
        const field = fieldOfFlag(flag);
        return `field '${section}.${field ?? flag}'`;
      });
      throw new UsageError(`${path}: ${message.startsWith('field') ? message : `field '${section}': ${message}`}`);
    }
  }
  for (const field of ['epoch', 'batch_in_epoch', 'step'] as const) {
    const value = config[field] as number;
    if (!Number.isInteger(value) || value < 0)
      throw new UsageError(`${path}: field '${field}' must be an integer >= 0, got ${value}`);
  }
}

/** Reads and checks config.json of a checkpoint directory. */
export function readCheckpointConfig(
  dir: string,
  { checkFields = true }: { checkFields?: boolean } = {},
): CheckpointConfig {
  const resolved = resolveCheckpointDir(dir);
  if (resolved === null) {
    throw new UsageError(
      existsSync(dir)
        ? `${join(dir, 'config.json')}: checkpoint config is missing`
        : `--checkpoint ${dir}: no such checkpoint directory`,
    );
  }
  const path = join(resolved, 'config.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(withPath(path, () => readFileSync(path, 'utf8')));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${path}: not valid JSON (${(error as Error).message.split('\n')[0]})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(
      `${path}: the document is ${jsonType(parsed)}; allowed: a JSON object (a roaf checkpoint config)`,
    );
  const config = parsed as CheckpointConfig;
  if (config.format !== CHECKPOINT_FORMAT)
    throw new UsageError(`${path}: not a roaf checkpoint (format '${String(config.format)}')`);
  if (config.version !== CHECKPOINT_VERSION)
    throw new UsageError(`${path}: checkpoint version ${config.version}, this roaf reads ${CHECKPOINT_VERSION}`);
  for (const key of ['model', 'task', 'training'] as const) {
    if (typeof config[key] !== 'object' || config[key] === null || Array.isArray(config[key]))
      throw new UsageError(
        `${path}: field '${key}' is ${config[key] === undefined ? 'missing' : jsonType(config[key])}; allowed: an object`,
      );
  }
  // `roaf report` only shows a config: it checks each field it shows by type itself (src/report/schema.ts)
  // and shows the rest of a run, so it reads without the range checks training and eval need.
  if (checkFields) checkConfigFields(path, parsed as Record<string, unknown>);
  return config;
}

/** Loads parameter values and filters from `dir` into a model built from the same config. */
export function loadModelTensors(dir: string, model: Model): void {
  const resolved = resolveCheckpointDir(dir) ?? dir;
  const file = new SafetensorsFile(join(resolved, 'model.safetensors'));
  const { tensors, filterNames } = modelTensors(model);
  file.readAllInto(tensors);
  checkLoadedModel(model, file.path, filterNames); // finite weights, orthogonal filters
}

/** Loads the optimiser state saved next to the model. */
export function loadOptimizerState(dir: string, optimizer: Optimizer): void {
  const resolved = resolveCheckpointDir(dir) ?? dir;
  const file = new SafetensorsFile(join(resolved, 'optimizer.safetensors'));
  file.readAllInto(Object.entries(optimizer.state).map(([name, data]) => ({ name, data, shape: [data.length] })));
  const steps = Number(file.metadata.steps);
  if (!Number.isInteger(steps) || steps < 0)
    throw new UsageError(`${file.path}: metadata 'steps' is missing or invalid`);
  optimizer.steps = steps;
}
