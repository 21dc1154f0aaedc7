// `roaf train` and `roaf eval`: build a model for a task, train it with progress and a metrics log,
// checkpoint it, resume it, evaluate a saved one. Every option is validated before anything is written.
// Faults (docs/guarantees.md): an existing run in --out is refused unless --resume or --force; the run
// directory is locked while training; SIGINT/SIGTERM save a checkpoint at the current step, restore the
// terminal and exit 130/143 (a second one during the save exits at once: the previous checkpoint is whole).

import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { totalmem } from 'node:os';
import type { Command } from 'commander';
import { requireBackend } from '../backend/index.js';
import { loadTask } from '../data/tasks.js';
import type { TaskData } from '../data/dataset.js';
import { validateModelConfig, type ModelConfig } from '../models/config.js';
import { createModel, resolveBaseline, taskShape } from '../models/factory.js';
import { modelKind } from '../models/kinds.js';
import { applyMemoryOption } from '../models/memory.js';
import type { Model } from '../models/model.js';
import { gradientSummaryCallback } from '../diagnostics/gradients.js';
import { OPTIONS, checkOption, checkOptionChoice, type OptionValues } from '../options/table.js';
import {
  loadModelTensors,
  loadOptimizerState,
  readCheckpointConfig,
  resolveCheckpointDir,
  type Progress,
  type TaskConfig,
  type TrainingConfig,
} from '../train/checkpoint.js';
import { defaultCoefficients, runDefaults } from '../models/defaults.js';
import { Optimizer, type LrSchedule, type OptimizerKind } from '../train/optimizer.js';
import { defaultRunDir, trainingConfig } from '../train/run-options.js';
import { holdsRun, lockRunDir } from '../train/run-lock.js';
import { evaluate, peakRssBytes, runTrainingAsync, type Evaluation } from '../train/trainer.js';
import { InterruptedError, UsageError } from '../util/errors.js';
import { modelWeightBytes } from '../serve/checkpoint.js';
import { createProgress } from './progress.js';
import { addTableOptions, percent, printJsonResult } from './options.js';

/** What commander hands `roaf train` and `roaf eval`: typed from the options table. */
type TrainCliOptions = OptionValues<'train'>;
type EvalCliOptions = OptionValues<'eval'>;

/** The input size, outputs and readout a task gives a model (diagnose uses it too). */
export { taskShape };

/** Reads the options of a fresh run into model, task and training configs, validating each. */
function freshRun(options: TrainCliOptions): {
  modelConfig: Omit<ModelConfig, 'inputDim' | 'outputs' | 'readout'>;
  task: TaskConfig;
  training: TrainingConfig;
} {
  const taskName = checkOptionChoice(OPTIONS.task, options.task);
  const modelKind = options.model === undefined ? undefined : checkOptionChoice(OPTIONS.model, options.model);
  const defaults = runDefaults(taskName, modelKind);
  const depth = checkOption(OPTIONS.depth, options.depth ?? defaults.depth);
  const coefficients = defaultCoefficients(defaults.model, depth);
  const training = trainingConfig(taskName, defaults.model, {
    epochs: options.epochs,
    batch: options.batch,
    optimizer: {
      kind: options.optimizer as OptimizerKind,
      lr: options.lr,
      momentum: options.momentum,
      weightDecay: options.weightDecay,
    },
    lrSchedule: options.lrSchedule as LrSchedule | undefined,
    clip: options.clip,
    evalEvery: options.evalEvery,
    checkpointEvery: options.checkpointEvery,
    logGradients: options.logGradients,
    seed: options.seed,
  });
  const modelConfig = {
    model: defaults.model,
    depth,
    width: checkOption(OPTIONS.width, options.width ?? defaults.width),
    hidden: checkOption(OPTIONS.hidden, options.hidden ?? defaults.hidden),
    ...(options.layers !== undefined && options.layers !== 1
      ? { layers: checkOption(OPTIONS.layers, options.layers) }
      : {}),
    alpha: checkOption(OPTIONS.alpha, options.alpha ?? coefficients.alpha),
    beta: checkOption(OPTIONS.beta, options.beta ?? coefficients.beta),
    filter: checkOptionChoice(OPTIONS.filter, options.filter),
    sharedFilter: options.sharedFilter,
    inputScale: checkOption(OPTIONS.inputScale, options.inputScale ?? defaults.inputScale),
    // Only when not the default, so that configs (and checkpoints) from before these options stay equal.
    ...(options.recurrentScale !== undefined && options.recurrentScale !== 1
      ? { recurrentScale: checkOption(OPTIONS.recurrentScale, options.recurrentScale) }
      : {}),
    ...(options.biasInit !== undefined && options.biasInit !== 0
      ? { biasInit: checkOption(OPTIONS.biasInit, options.biasInit) }
      : {}),
    ...(options.biasSigns !== undefined && options.biasSigns !== 'constant'
      ? { biasSigns: checkOptionChoice(OPTIONS.biasSigns, options.biasSigns) }
      : {}),
    ...(options.forgetBias !== undefined ? { forgetBias: checkOption(OPTIONS.forgetBias, options.forgetBias) } : {}),
    seed: training.seed,
    dtype: checkOptionChoice(OPTIONS.dtype, options.dtype),
    // Recorded only when not the default, so that float32 runs keep the configs they always had.
    ...(checkOptionChoice(OPTIONS.precision, options.precision) === 'bf16' ? { precision: 'bf16' as const } : {}),
  };
  const task: TaskConfig = {
    name: taskName,
    seqLen: options.seqLen,
    dataDir: options.dataDir,
    trainLimit: options.trainLimit,
    testLimit: options.testLimit,
    trainSize: options.trainSize,
    testSize: options.testSize,
  };
  return { modelConfig, task, training };
}

function loadTaskData(task: TaskConfig, seed: number): TaskData {
  return loadTask(task.name, { ...task, seed });
}

function summary(
  model: Model,
  taskName: string,
  epochs: number,
  evaluation: Evaluation,
  seconds: number,
  extra: Record<string, unknown> = {},
) {
  return {
    model: model.config.model,
    task: taskName,
    params: model.params.size,
    epochs,
    ...(evaluation.accuracy !== undefined ? { test_accuracy: evaluation.accuracy } : { test_mse: evaluation.mse }),
    test_loss: evaluation.loss,
    seconds: Number(seconds.toFixed(3)),
    backend: model.backend.describe(),
    ...extra,
  };
}

function describeEvaluation(evaluation: Evaluation): string {
  return evaluation.accuracy !== undefined
    ? `test accuracy ${percent(evaluation.accuracy)}, test loss ${evaluation.loss.toFixed(4)}`
    : `test MSE ${evaluation.mse?.toExponential(3)}`;
}

/** Refuses an --out that is not a directory (a file, or under a file). */
function checkOutDir(outDir: string): boolean {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(outDir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'ENOTDIR')
      throw new UsageError(`--out ${outDir}: a parent of this path is a file; allowed: a directory path`);
    throw error;
  }
  if (!isDirectory) throw new UsageError(`--out ${outDir}: is a file; allowed: a new or existing directory`);
  return true;
}

/** What a fresh run replaces with --force: the files a run writes into its directory. */
const RUN_FILES = ['metrics.jsonl', 'checkpoint', 'checkpoint.tmp', 'checkpoint.old', 'permutation.json'];

/**
 * SIGINT and SIGTERM while training: the first one asks the trainer to stop after the current step and
 * save a checkpoint there, and removes the handlers, so that a second signal (during that save) ends the
 * process at once with the default action; the previous checkpoint is complete by then (checkpoint.ts).
 */
function interruptHandling(onFirst: (signal: 'SIGINT' | 'SIGTERM') => void): {
  signal: () => 'SIGINT' | 'SIGTERM' | null;
  dispose: () => void;
} {
  let received: 'SIGINT' | 'SIGTERM' | null = null;
  const handler = (signal: NodeJS.Signals) => {
    if (received !== null) return;
    received = signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    dispose();
    onFirst(received);
  };
  const dispose = () => {
    process.removeListener('SIGINT', handler);
    process.removeListener('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { signal: () => received, dispose };
}

async function trainCommand(options: TrainCliOptions): Promise<void> {
  const backendName = checkOptionChoice(OPTIONS.backend, options.backend);
  if (options.threads !== undefined) checkOption(OPTIONS.threads, options.threads);
  if (options.resume && options.force)
    throw new UsageError('--resume and --force exclude each other: --resume continues the run, --force replaces it');
  const quiet = options.quiet;
  const say = (line: string) => {
    if (!quiet) process.stderr.write(line + '\n');
  };
  // taking over a stale lock is said even with --quiet: the user should know a run died there
  const warn = (line: string) => process.stderr.write(line + '\n');
  let modelConfigBase;
  let task: TaskConfig;
  let training: TrainingConfig;
  let progress: Progress | undefined;
  let outDir: string;
  let release: (() => void) | null = null;
  try {
    if (options.resume) {
      if (options.out === undefined)
        throw new UsageError('--resume needs --out DIR, the directory of the run to continue');
      outDir = options.out;
      const checkpointDir = `${outDir}/checkpoint`;
      if (!checkOutDir(outDir) || resolveCheckpointDir(checkpointDir) === null) {
        throw new UsageError(`--resume: no checkpoint in ${checkpointDir} (start the run without --resume)`);
      }
      // locked before reading, so a run still writing its checkpoint is not read half-way
      release = lockRunDir(outDir, warn);
      const saved = readCheckpointConfig(checkpointDir);
      modelConfigBase = saved.model;
      task = saved.task;
      // A checkpoint from before schedules trained at a constant rate (not the task's default schedule).
      training = { ...saved.training, lrSchedule: saved.training.lrSchedule ?? 'constant' };
      if (options.epochs !== undefined) training.epochs = checkOption(OPTIONS.epochs, options.epochs);
      progress = { epoch: saved.epoch, batchInEpoch: saved.batch_in_epoch, step: saved.step, seconds: saved.seconds };
    } else {
      ({ modelConfig: modelConfigBase, task, training } = freshRun(options));
      outDir = options.out ?? defaultRunDir(modelConfigBase.model, task.name);
      if (checkOutDir(outDir) && holdsRun(outDir) && !options.force) {
        throw new UsageError(
          `--out ${outDir}: already holds a run; --resume continues it, --force replaces it (or choose another directory)`,
        );
      }
    }
    const backend = requireBackend(backendName, modelConfigBase.dtype, options.threads);
    const data = loadTaskData(task, training.seed);
    checkTrainingFits({ ...modelConfigBase, ...taskShape(data) }, totalmem());
    const model = createModel({ ...modelConfigBase, ...taskShape(data) }, backend);
    const memory = applyMemoryOption(
      model,
      training.batch,
      checkOptionChoice(OPTIONS.memory, options.memory),
      totalmem(),
    );
    const optimizer = new Optimizer(training.optimizer, model.params, backend);
    if (options.resume) {
      loadModelTensors(`${outDir}/checkpoint`, model);
      loadOptimizerState(`${outDir}/checkpoint`, optimizer);
    } else {
      // everything is validated: now the directory is created, locked and (with --force) emptied of the old run
      release = lockRunDir(outDir, warn);
      if (options.force) for (const name of RUN_FILES) rmSync(join(outDir, name), { recursive: true, force: true });
    }

    const batchesPerEpoch = Math.ceil(data.train.count / Math.min(training.batch, data.train.count));
    const totalSteps = batchesPerEpoch * training.epochs;
    say(
      `roaf: ${model.config.model} on ${task.name}: ${model.params.size.toLocaleString('en-US')} parameters, ` +
        `${data.train.count} train / ${data.test.count} test samples, backend ${backend.describe()}, ` +
        (memory?.mode === 'checkpoint' ? `activation checkpointing every ${memory.segmentLength} layers, ` : '') +
        `run directory ${outDir}` +
        (progress ? ` (resuming at step ${progress.step})` : ''),
    );
    const bar = createProgress(totalSteps, 'train', { quiet, startStep: progress?.step ?? 0 });
    const interrupt = interruptHandling((signal) => {
      // the terminal first: a second signal may end the process during the save
      bar.stop();
      process.stderr.write(
        `roaf: ${signal}: saving a checkpoint at the current step (within one step and one save); ` +
          `${signal === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again quits at once, keeping the previous checkpoint\n`,
      );
    });
    let result;
    try {
      bar.update(progress?.step ?? 0, { loss: NaN, rate: 0, epoch: progress?.epoch ?? 0 });
      result = await runTrainingAsync({
        model,
        train: data.train,
        test: data.test,
        task,
        training,
        outDir,
        progress,
        optimizer,
        stopRequested: () => interrupt.signal() !== null,
        callbacks: {
          onStep: (event) =>
            bar.update(event.step, { loss: event.loss, rate: event.samplesPerSecond, epoch: event.epoch }),
          onEvaluation: (record) =>
            bar.log(
              `epoch ${record.epoch} step ${record.step}: train loss ${record.train_loss?.toFixed(4) ?? '-'}, ` +
                (record.test_accuracy !== undefined
                  ? `test accuracy ${percent(record.test_accuracy)}`
                  : `test MSE ${record.test_mse?.toExponential(3)}`) +
                `, test loss ${record.test_loss.toFixed(4)} (${record.seconds.toFixed(1)} s)`,
            ),
          gradientSummary: gradientSummaryCallback,
        },
      });
    } finally {
      // whatever ends the run (an error, divergence, a signal), the cursor is shown again
      bar.stop();
      interrupt.dispose();
    }
    const seconds = result.progress.seconds;
    if (result.interrupted) {
      // only the signal handlers ask the trainer to stop
      const signal = interrupt.signal() ?? 'SIGINT';
      throw new InterruptedError(
        signal,
        `${signal}: stopped at step ${result.progress.step}; checkpoint in ${outDir}/checkpoint ` +
          `(roaf train --resume --out ${outDir} continues exactly from there)`,
      );
    }
    process.stdout.write(
      `${model.config.model} on ${task.name}: ${describeEvaluation(result.final)} after ${training.epochs} epoch(s), ${seconds.toFixed(1)} s; checkpoint in ${outDir}/checkpoint\n`,
    );
    if (options.json)
      printJsonResult(
        summary(model, task.name, training.epochs, result.final, seconds, {
          step: result.progress.step,
          out: outDir,
          memory: memory?.mode ?? 'full',
          peak_rss_bytes: peakRssBytes(),
        }),
      );
  } finally {
    release?.();
  }
}

function evalCommand(options: EvalCliOptions): void {
  const backendName = checkOptionChoice(OPTIONS.backend, options.backend);
  if (options.threads !== undefined) checkOption(OPTIONS.threads, options.threads);
  const saved = readCheckpointConfig(options.checkpoint);
  const backend = requireBackend(backendName, saved.model.dtype, options.threads);
  const task: TaskConfig = { ...saved.task, testLimit: options.testLimit ?? saved.task.testLimit };
  const data = loadTaskData(task, saved.training.seed);
  const model = createModel(saved.model, backend);
  loadModelTensors(options.checkpoint, model);
  const start = performance.now();
  const evaluation = evaluate(model, data.test, saved.training.batch);
  const seconds = (performance.now() - start) / 1000;
  if (!Number.isFinite(evaluation.loss)) {
    throw new UsageError(
      `--checkpoint ${options.checkpoint}: the model's test loss is ${evaluation.loss}: its weights are not usable ` +
        '(a corrupt file or a diverged run); allowed: a checkpoint whose outputs are finite',
    );
  }
  process.stdout.write(
    `${saved.model.model} on ${task.name} (${data.test.count} test samples): ${describeEvaluation(evaluation)}\n`,
  );
  if (options.json) printJsonResult(summary(model, task.name, saved.epoch, evaluation, seconds, { step: saved.step }));
}

export function registerTrainCommands(program: Command): void {
  const train = program
    .command('train')
    .description('train a model on a task, with a metrics log and checkpoints in --out');
  addTableOptions(train, 'train').action(trainCommand);

  const evaluation = program.command('eval').description("evaluate a saved model on its task's test set");
  addTableOptions(evaluation, 'eval').action(evalCommand);
}

/**
 * Refuses, before anything is allocated, a model whose training state alone would not fit in the machine's
 * memory: its weights and filters, their gradients and the optimiser's two moments (about four times the
 * weights; activations come on top, and --memory checkpoint bounds those). Sizes within each option's range
 * can still multiply to terabytes (--depth 1000000 --width 65536), which would otherwise fail inside an
 * allocation after minutes of building.
 */
function checkTrainingFits(config: ModelConfig, memoryBytes: number): void {
  const resolved = validateModelConfig(resolveBaseline(config));
  const bytes = 4 * modelWeightBytes(resolved);
  if (bytes > memoryBytes) {
    const sizes = modelKind(resolved.model).recurrent
      ? `--hidden ${resolved.hidden}`
      : `--depth ${resolved.depth} --width ${resolved.width}`;
    throw new UsageError(
      `--model ${resolved.model} ${sizes}: training needs about ${(bytes / 2 ** 30).toFixed(1)} GiB for the weights, their gradients and the optimiser state alone, more than this machine's ${(memoryBytes / 2 ** 30).toFixed(1)} GiB`,
    );
  }
}
