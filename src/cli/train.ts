// `roaf train` and `roaf eval`: build a model for a task, train it with progress and a metrics log,
// checkpoint it, resume it, evaluate a saved one. Every option is validated before anything is written.

import { mkdirSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { Command } from 'commander';
import { requireBackend } from '../backend/index.js';
import { loadTask } from '../data/tasks.js';
import type { TaskData } from '../data/dataset.js';
import type { ModelConfig } from '../models/config.js';
import { createModel, taskShape } from '../models/factory.js';
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
import { evaluate, peakRssBytes, runTraining, type Evaluation } from '../train/trainer.js';
import { UsageError } from '../util/errors.js';
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
    seed: training.seed,
    dtype: checkOptionChoice(OPTIONS.dtype, options.dtype),
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

function trainCommand(options: TrainCliOptions): void {
  const backendName = checkOptionChoice(OPTIONS.backend, options.backend);
  if (options.threads !== undefined) checkOption(OPTIONS.threads, options.threads);
  let modelConfigBase;
  let task: TaskConfig;
  let training: TrainingConfig;
  let progress: Progress | undefined;
  let outDir: string;
  if (options.resume) {
    if (options.out === undefined)
      throw new UsageError('--resume needs --out DIR, the directory of the run to continue');
    outDir = options.out;
    const checkpointDir = `${outDir}/checkpoint`;
    if (resolveCheckpointDir(checkpointDir) === null) {
      throw new UsageError(`--resume: no checkpoint in ${checkpointDir} (start the run without --resume)`);
    }
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
  }
  const backend = requireBackend(backendName, modelConfigBase.dtype, options.threads);
  const data = loadTaskData(task, training.seed);
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
  }
  mkdirSync(outDir, { recursive: true });

  const batchesPerEpoch = Math.ceil(data.train.count / Math.min(training.batch, data.train.count));
  const totalSteps = batchesPerEpoch * training.epochs;
  const quiet = options.quiet;
  const say = (line: string) => {
    if (!quiet) process.stderr.write(line + '\n');
  };
  say(
    `roaf: ${model.config.model} on ${task.name}: ${model.params.size.toLocaleString('en-US')} parameters, ` +
      `${data.train.count} train / ${data.test.count} test samples, backend ${backend.describe()}, ` +
      (memory?.mode === 'checkpoint' ? `activation checkpointing every ${memory.segmentLength} layers, ` : '') +
      `run directory ${outDir}` +
      (progress ? ` (resuming at step ${progress.step})` : ''),
  );
  const bar = createProgress(totalSteps, 'train', { quiet });
  bar.update(progress?.step ?? 0, { loss: NaN, rate: 0, epoch: progress?.epoch ?? 0 });
  const result = runTraining({
    model,
    train: data.train,
    test: data.test,
    task,
    training,
    outDir,
    progress,
    optimizer,
    callbacks: {
      onStep: (event) => bar.update(event.step, { loss: event.loss, rate: event.samplesPerSecond, epoch: event.epoch }),
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
  bar.stop();
  const seconds = result.progress.seconds;
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
