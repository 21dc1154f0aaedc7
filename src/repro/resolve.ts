// From a run of the claims table to what `roaf train` would build: the model, task and training
// configurations (with the same defaults, so a repro run and `roaf train` with the same flags save the
// same config.json), the equivalent `roaf train` command line, and the comparison of a saved run
// directory's configuration with the table's, field by field.

import type { ModelConfig } from '../models/config.js';
import { DEFAULT_FILTER } from '../nn/filter.js';
import { resolveBaseline } from '../models/factory.js';
import type { TaskConfig, TrainingConfig } from '../train/checkpoint.js';
import { defaultCoefficients, runDefaults } from '../models/defaults.js';
import { DEFAULT_OPTIMIZER } from '../train/optimizer.js';
import { UsageError } from '../util/errors.js';
import type { ClaimDefinition, RunDefinition, RunSettings } from './claims.js';

/** The model configuration without what the task's data fixes (input size, outputs, readout). */
export type ModelSettings = Omit<ModelConfig, 'inputDim' | 'outputs' | 'readout'>;

/** What a run's checkpoint/config.json must hold. */
export interface ExpectedConfig {
  model: ModelSettings;
  task: TaskConfig;
  training: TrainingConfig;
}

/** A run's settings for full size or `--quick` (the quick overrides applied). */
export function runSettings(run: RunDefinition, quick: boolean): RunSettings {
  const { name: _name, baseline: _baseline, quick: overrides, ...full } = run;
  return quick ? { ...full, ...overrides } : full;
}

/**
 * The configurations `roaf train` builds from these settings (src/cli/train.ts, freshRun): each option,
 * else the task's and model's default; the baselines' fixed coefficients and filters applied, as the
 * saved config.json has them.
 */
export function expectedConfig(settings: RunSettings): ExpectedConfig {
  const defaults = runDefaults(settings.task, settings.model);
  const depth = settings.depth ?? defaults.depth;
  const coefficients = defaultCoefficients(defaults.model, depth);
  const seed = settings.seed ?? 0;
  const training: TrainingConfig = {
    epochs: settings.epochs ?? defaults.epochs,
    batch: settings.batch ?? defaults.batch,
    optimizer: {
      ...DEFAULT_OPTIMIZER,
      kind: settings.optimizer ?? 'adam',
      lr: settings.lr ?? defaults.lr,
      momentum: settings.momentum ?? 0.9,
      weightDecay: settings.weightDecay ?? 0,
    },
    lrSchedule: settings.lrSchedule ?? defaults.lrSchedule,
    clip: settings.clip ?? 0,
    evalEvery: settings.evalEvery ?? 0,
    checkpointEvery: settings.checkpointEvery ?? 0,
    logGradients: false,
    seed,
  };
  const model: ModelSettings = {
    model: defaults.model,
    depth,
    width: settings.width ?? defaults.width,
    hidden: settings.hidden ?? defaults.hidden,
    alpha: settings.alpha ?? coefficients.alpha,
    beta: settings.beta ?? coefficients.beta,
    filter: settings.filter ?? DEFAULT_FILTER,
    sharedFilter: settings.sharedFilter ?? false,
    inputScale: settings.inputScale ?? defaults.inputScale,
    ...(settings.recurrentScale !== undefined && settings.recurrentScale !== 1
      ? { recurrentScale: settings.recurrentScale }
      : {}),
    ...(settings.biasInit !== undefined && settings.biasInit !== 0 ? { biasInit: settings.biasInit } : {}),
    ...(settings.biasSigns !== undefined && settings.biasSigns !== 'constant' ? { biasSigns: settings.biasSigns } : {}),
    ...(settings.forgetBias !== undefined ? { forgetBias: settings.forgetBias } : {}),
    seed,
    dtype: 'float32',
  };
  const {
    inputDim: _d,
    outputs: _k,
    readout: _r,
    ...resolved
  } = resolveBaseline({ ...model, inputDim: 1, outputs: 1, readout: 'last' });
  const task: TaskConfig = {
    name: settings.task,
    seqLen: settings.seqLen,
    trainLimit: settings.trainLimit,
    testLimit: settings.testLimit,
    trainSize: settings.trainSize,
    testSize: settings.testSize,
  };
  return { model: resolved, task, training };
}

/** `roaf train` flags for each setting, in the order the table's fields are usually read. */
const FLAGS: Array<[keyof RunSettings, string]> = [
  ['model', '--model'],
  ['task', '--task'],
  ['seqLen', '--seq-len'],
  ['depth', '--depth'],
  ['width', '--width'],
  ['hidden', '--hidden'],
  ['alpha', '--alpha'],
  ['beta', '--beta'],
  ['filter', '--filter'],
  ['sharedFilter', '--shared-filter'],
  ['inputScale', '--input-scale'],
  ['recurrentScale', '--recurrent-scale'],
  ['biasInit', '--bias-init'],
  ['biasSigns', '--bias-signs'],
  ['forgetBias', '--forget-bias'],
  ['trainSize', '--train-size'],
  ['testSize', '--test-size'],
  ['trainLimit', '--train-limit'],
  ['testLimit', '--test-limit'],
  ['epochs', '--epochs'],
  ['batch', '--batch'],
  ['optimizer', '--optimizer'],
  ['lr', '--lr'],
  ['lrSchedule', '--lr-schedule'],
  ['momentum', '--momentum'],
  ['weightDecay', '--weight-decay'],
  ['clip', '--clip'],
  ['seed', '--seed'],
  ['evalEvery', '--eval-every'],
  ['checkpointEvery', '--checkpoint-every'],
  ['memory', '--memory'],
];

/** The `roaf train` arguments that train the same run (without --out). */
export function trainArguments(settings: RunSettings): string[] {
  const args: string[] = [];
  for (const [key, flag] of FLAGS) {
    const value = settings[key];
    if (value === undefined || value === false) continue;
    if (value === true) args.push(flag);
    else args.push(flag, String(value));
  }
  return args;
}

/** One field where a saved configuration and the table disagree. */
export interface ConfigDifference {
  /** Dotted path, e.g. 'training.optimizer.lr'. */
  field: string;
  saved: unknown;
  expected: unknown;
}

/** Fields the task's data decides, not the table (compared through the task's name; psMNIST's permutation is roaf's, checked when the run resumes). */
const DERIVED = new Set(['model.inputDim', 'model.outputs', 'model.readout', 'task.permutation']);

/** Every field of `expected` and `saved` (model, task, training) whose values differ; absent equals undefined. */
export function configDifferences(
  expected: ExpectedConfig,
  saved: { model: unknown; task: unknown; training: unknown },
): ConfigDifference[] {
  const out: ConfigDifference[] = [];
  const walk = (path: string, e: unknown, s: unknown): void => {
    if (DERIVED.has(path)) return;
    const bothObjects = typeof e === 'object' && e !== null && typeof s === 'object' && s !== null;
    if (bothObjects) {
      const keys = new Set([...Object.keys(e), ...Object.keys(s)]);
      for (const key of [...keys].sort())
        walk(`${path}.${key}`, (e as Record<string, unknown>)[key], (s as Record<string, unknown>)[key]);
      return;
    }
    if (e !== s && !(e === undefined && s === null)) out.push({ field: path, saved: s, expected: e });
  };
  for (const part of ['model', 'task', 'training'] as const) walk(part, expected[part], saved[part]);
  return out;
}

/** The error for a run directory that holds a different run than the table defines. */
export function mismatchError(
  claim: ClaimDefinition,
  run: RunDefinition,
  file: string,
  differences: ConfigDifference[],
): UsageError {
  const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
  const listed = differences
    .map((d) => `${d.field} is ${show(d.saved)} there, ${show(d.expected)} in the claim`)
    .join('; ');
  return new UsageError(
    `run ${claim.name}/${run.name}: ${file} disagrees with the claim's definition: ${listed}. ` +
      'Refusing to continue or replace it: move that run directory away to start the run again, or change src/repro/claims.ts to match',
  );
}
