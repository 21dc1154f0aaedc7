// `roaf train` and `roaf eval`: build a model for a task, train it with progress and a metrics log,
// checkpoint it, resume it, evaluate a saved one. Every option is validated before anything is written.

import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { BACKEND_NAMES, requireBackend, type BackendName } from '../backend/index.js';
import type { DType } from '../backend/backend.js';
import { TASKS, loadTask, type TaskName } from '../data/tasks.js';
import type { TaskData } from '../data/dataset.js';
import { MODEL_KINDS, type ModelConfig, type ModelKind } from '../models/config.js';
import { createModel, taskShape } from '../models/factory.js';
import type { Model } from '../models/model.js';
import { gradientSummaryCallback } from '../diagnostics/gradients.js';
import { FILTER_KINDS, type FilterKind } from '../nn/filter.js';
import {
  loadModelTensors, loadOptimizerState, readCheckpointConfig, resolveCheckpointDir,
  type Progress, type TaskConfig, type TrainingConfig,
} from '../train/checkpoint.js';
import { defaultCoefficients, runDefaults } from '../models/defaults.js';
import { Optimizer, type LrSchedule, type OptimizerKind } from '../train/optimizer.js';
import { defaultRunDir, trainingConfig } from '../train/run-options.js';
import { evaluate, runTraining, type Evaluation } from '../train/trainer.js';
import { UsageError, checkChoice, checkRange } from '../util/errors.js';
import { createProgress } from './progress.js';
import { numberOption, percent, printJsonResult } from './options.js';

interface TrainCliOptions {
  model?: string;
  task: string;
  depth?: number;
  width?: number;
  hidden?: number;
  layers?: number;
  alpha?: number;
  beta?: number;
  filter: string;
  sharedFilter: boolean;
  inputScale?: number;
  epochs?: number;
  batch?: number;
  lr?: number;
  optimizer: string;
  lrSchedule?: string;
  momentum: number;
  weightDecay: number;
  clip: number;
  seed: number;
  trainLimit?: number;
  testLimit?: number;
  trainSize?: number;
  testSize?: number;
  seqLen?: number;
  dataDir?: string;
  backend: string;
  threads?: number;
  dtype: string;
  out?: string;
  resume: boolean;
  evalEvery: number;
  checkpointEvery: number;
  logGradients: boolean;
  json: boolean;
  quiet: boolean;
}

/** The input size, outputs and readout a task gives a model (diagnose uses it too). */
export { taskShape };

/** Reads the options of a fresh run into model, task and training configs, validating each. */
function freshRun(options: TrainCliOptions): { modelConfig: Omit<ModelConfig, 'inputDim' | 'outputs' | 'readout'>; task: TaskConfig; training: TrainingConfig } {
  const taskName = checkChoice('--task', options.task, TASKS);
  const modelKind = options.model === undefined ? undefined : checkChoice('--model', options.model, MODEL_KINDS);
  const defaults = runDefaults(taskName, modelKind);
  const depth = checkRange('--depth', options.depth ?? defaults.depth, 1, 1_000_000, { integer: true });
  const coefficients = defaultCoefficients(defaults.model, depth);
  const training = trainingConfig(taskName, defaults.model, {
    epochs: options.epochs,
    batch: options.batch,
    optimizer: { kind: options.optimizer as OptimizerKind, lr: options.lr, momentum: options.momentum, weightDecay: options.weightDecay },
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
    width: checkRange('--width', options.width ?? defaults.width, 1, 65_536, { integer: true }),
    hidden: checkRange('--hidden', options.hidden ?? defaults.hidden, 1, 65_536, { integer: true }),
    ...(options.layers !== undefined ? { layers: checkRange('--layers', options.layers, 1, 64, { integer: true }) } : {}),
    alpha: checkRange('--alpha', options.alpha ?? coefficients.alpha, 0, 1),
    beta: checkRange('--beta', options.beta ?? coefficients.beta, 0, 100, { minExclusive: true }),
    filter: checkChoice('--filter', options.filter, FILTER_KINDS) as FilterKind,
    sharedFilter: options.sharedFilter,
    inputScale: checkRange('--input-scale', options.inputScale ?? defaults.inputScale, 0, 1e6, { minExclusive: true }),
    seed: training.seed,
    dtype: checkChoice('--dtype', options.dtype, ['float32', 'float64'] as const) as DType,
  };
  const task: TaskConfig = {
    name: taskName, seqLen: options.seqLen, dataDir: options.dataDir, trainLimit: options.trainLimit,
    testLimit: options.testLimit, trainSize: options.trainSize, testSize: options.testSize,
  };
  return { modelConfig, task, training };
}

function loadTaskData(task: TaskConfig, seed: number): TaskData {
  return loadTask(task.name, { ...task, seed });
}

function summary(model: Model, taskName: string, epochs: number, evaluation: Evaluation, seconds: number, extra: Record<string, unknown> = {}) {
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

async function trainCommand(options: TrainCliOptions): Promise<void> {
  const backendName = checkChoice('--backend', options.backend, BACKEND_NAMES) as BackendName;
  if (options.threads !== undefined) checkRange('--threads', options.threads, 1, 256, { integer: true });
  let modelConfigBase; let task: TaskConfig; let training: TrainingConfig;
  let progress: Progress | undefined;
  let outDir: string;
  if (options.resume) {
    if (options.out === undefined) throw new UsageError('--resume needs --out DIR, the directory of the run to continue');
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
    if (options.epochs !== undefined) training.epochs = checkRange('--epochs', options.epochs, 1, 1_000_000, { integer: true });
    progress = { epoch: saved.epoch, batchInEpoch: saved.batch_in_epoch, step: saved.step, seconds: saved.seconds };
  } else {
    ({ modelConfig: modelConfigBase, task, training } = freshRun(options));
    outDir = options.out ?? defaultRunDir(modelConfigBase.model, task.name);
  }
  const backend = requireBackend(backendName, modelConfigBase.dtype, options.threads);
  const data = loadTaskData(task, training.seed);
  const model = createModel({ ...modelConfigBase, ...taskShape(data) }, backend);
  const optimizer = new Optimizer(training.optimizer, model.params, backend);
  if (options.resume) {
    loadModelTensors(`${outDir}/checkpoint`, model);
    loadOptimizerState(`${outDir}/checkpoint`, optimizer);
  }
  mkdirSync(outDir, { recursive: true });

  const batchesPerEpoch = Math.ceil(data.train.count / Math.min(training.batch, data.train.count));
  const totalSteps = batchesPerEpoch * training.epochs;
  const quiet = options.quiet;
  const say = (line: string) => { if (!quiet) process.stderr.write(line + '\n'); };
  say(`roaf: ${model.config.model} on ${task.name}: ${model.params.size.toLocaleString('en-US')} parameters, ` +
    `${data.train.count} train / ${data.test.count} test samples, backend ${backend.describe()}, run directory ${outDir}` +
    (progress ? ` (resuming at step ${progress.step})` : ''));
  const bar = createProgress(totalSteps, 'train', { quiet });
  bar.update(progress?.step ?? 0, { loss: NaN, rate: 0, epoch: progress?.epoch ?? 0 });
  const result = runTraining({
    model, train: data.train, test: data.test, task, training, outDir, progress, optimizer,
    callbacks: {
      onStep: (event) => bar.update(event.step, { loss: event.loss, rate: event.samplesPerSecond, epoch: event.epoch }),
      onEvaluation: (record) => bar.log(
        `epoch ${record.epoch} step ${record.step}: train loss ${record.train_loss?.toFixed(4) ?? '-'}, ` +
        (record.test_accuracy !== undefined ? `test accuracy ${percent(record.test_accuracy)}` : `test MSE ${record.test_mse?.toExponential(3)}`) +
        `, test loss ${record.test_loss.toFixed(4)} (${record.seconds.toFixed(1)} s)`),
      gradientSummary: gradientSummaryCallback,
    },
  });
  bar.stop();
  const seconds = result.progress.seconds;
  process.stdout.write(`${model.config.model} on ${task.name}: ${describeEvaluation(result.final)} after ${training.epochs} epoch(s), ${seconds.toFixed(1)} s; checkpoint in ${outDir}/checkpoint\n`);
  if (options.json) printJsonResult(summary(model, task.name, training.epochs, result.final, seconds, { step: result.progress.step, out: outDir }));
}

interface EvalCliOptions {
  checkpoint: string;
  testLimit?: number;
  backend: string;
  threads?: number;
  json: boolean;
}

async function evalCommand(options: EvalCliOptions): Promise<void> {
  const backendName = checkChoice('--backend', options.backend, BACKEND_NAMES) as BackendName;
  const saved = readCheckpointConfig(options.checkpoint);
  const backend = requireBackend(backendName, saved.model.dtype, options.threads);
  const task: TaskConfig = { ...saved.task, testLimit: options.testLimit ?? saved.task.testLimit };
  const data = loadTaskData(task, saved.training.seed);
  const model = createModel(saved.model, backend);
  loadModelTensors(options.checkpoint, model);
  const start = performance.now();
  const evaluation = evaluate(model, data.test, saved.training.batch);
  const seconds = (performance.now() - start) / 1000;
  process.stdout.write(`${saved.model.model} on ${task.name} (${data.test.count} test samples): ${describeEvaluation(evaluation)}\n`);
  if (options.json) printJsonResult(summary(model, task.name, saved.epoch, evaluation, seconds, { step: saved.step }));
}

export function registerTrainCommands(program: Command): void {
  program.command('train')
    .description('train a model on a task, with a metrics log and checkpoints in --out')
    .option('--model <kind>', `model: ${MODEL_KINDS.join(', ')} (default: roaf-mlp for mnist, roaf-rnn for sequences)`)
    .option('--task <name>', `task: ${TASKS.join(', ')}`, 'mnist')
    .addOption(numberOption('--depth <L>', 'feed-forward depth (ROAF layers)'))
    .addOption(numberOption('--width <N>', 'feed-forward width'))
    .addOption(numberOption('--hidden <N>', 'recurrent units'))
    .addOption(numberOption('--layers <k>', 'stacked recurrent layers, 1..64 (default 1)'))
    .addOption(numberOption('--alpha <a>', 'weight of the filtered input, in [0, 1]'))
    .addOption(numberOption('--beta <b>', 'weight of the nonlinear branch, > 0'))
    .option('--filter <kind>', `orthogonal filter: ${FILTER_KINDS.join(', ')}`, 'haar')
    .option('--shared-filter', 'one filter shared by all layers (feed-forward)', false)
    .addOption(numberOption('--input-scale <s>', 'recurrent input weights U ~ N(0, s²/D)'))
    .addOption(numberOption('--epochs <n>', 'epochs to train'))
    .addOption(numberOption('--batch <B>', 'batch size'))
    .addOption(numberOption('--lr <rate>', 'learning rate'))
    .option('--optimizer <kind>', 'adam or sgd', 'adam')
    .option('--lr-schedule <kind>', 'constant, or cosine decay to 0 over the run (default: per task)')
    .addOption(numberOption('--momentum <m>', 'SGD momentum').default(0.9))
    .addOption(numberOption('--weight-decay <w>', 'AdamW decoupled weight decay').default(0))
    .addOption(numberOption('--clip <norm>', 'clip the global gradient norm (0: off)').default(0))
    .addOption(numberOption('--seed <n>', 'seed of weights, filters, data order and generated data').default(0))
    .addOption(numberOption('--train-limit <n>', 'use only the first n training samples'))
    .addOption(numberOption('--test-limit <n>', 'use only the first n test samples'))
    .addOption(numberOption('--train-size <n>', 'generated tasks: training samples (default 10000)'))
    .addOption(numberOption('--test-size <n>', 'generated tasks: test samples (default 1000)'))
    .addOption(numberOption('--seq-len <T>', 'adding: sequence length T; copy: blanks L'))
    .option('--data-dir <dir>', 'directory of the IDX files (image tasks)')
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .addOption(numberOption('--threads <n>', 'native backend threads (default: all cores)'))
    .option('--dtype <type>', 'float32 or float64 (float64: reference backend)', 'float32')
    .option('--out <dir>', 'run directory (default runs/<model>-<task>-<time>)')
    .option('--resume', 'continue the run in --out from its last checkpoint', false)
    .addOption(numberOption('--eval-every <k>', 'also evaluate every k steps (0: after each epoch only)').default(0))
    .addOption(numberOption('--checkpoint-every <k>', 'also checkpoint every k steps').default(0))
    .option('--log-gradients', 'add per-layer gradient-norm summaries to metrics.jsonl', false)
    .option('--json', 'end stdout with one JSON object of the results', false)
    .option('--quiet', 'no progress output', false)
    .action(trainCommand);

  program.command('eval')
    .description('evaluate a saved model on its task\'s test set')
    .requiredOption('--checkpoint <dir>', 'checkpoint directory (RUN/checkpoint)')
    .addOption(numberOption('--test-limit <n>', 'use only the first n test samples'))
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .addOption(numberOption('--threads <n>', 'native backend threads'))
    .option('--json', 'end stdout with one JSON object of the results', false)
    .action(evalCommand);
}
