// The training loop: seeded shuffling, forward, loss, hand-written backward, optional clipping, the
// optimiser step; evaluation on the test set after every epoch (and every k steps on request), one
// metrics record per evaluation, and checkpoints that let an interrupted run resume exactly.
//
// Exact resume: the order of epoch e is a permutation drawn from Random.derive(seed, e), so it is known
// from the seed alone, and a checkpoint saves parameters, optimiser state and the position
// (epoch, batch in epoch): training on from a checkpoint computes the very same operations.
//
// Faults (docs/guarantees.md): the loss and the global gradient norm are checked every step, before the
// optimiser touches the parameters; a non-finite one ends the run with DivergedError naming the step and
// where the gradient first became non-finite, after one metrics record saying so, and no checkpoint is
// ever written with a non-finite value. The run directory is locked while training (run-lock.ts).
// `runTrainingAsync` lets the event loop run between steps, so a SIGINT/SIGTERM handler can ask the run
// to stop: it saves a checkpoint at the current step and returns with `interrupted`.

import type { Dataset } from '../data/dataset.js';
import type { GradientHook, Model } from '../models/model.js';
import { stepDelay } from '../util/fault-injection.js';
import { BatchBuffers, batchLoss, epochOrder, evaluate, type Evaluation } from './batches.js';
import { NonFiniteCheckpointError, saveCheckpoint, type Progress, type TaskConfig } from './checkpoint.js';
import { MetricsLog, type MetricsRecord } from './metrics.js';
import { Optimizer, gradientNorm, scheduledLr } from './optimizer.js';
import { lockRunDir } from './run-lock.js';
import { resolveRunOptions, writeTaskFiles, type ResolvedRunOptions, type TrainingOptions } from './run-options.js';

// The batch pieces live in batches.ts (no Node built-ins, so the browser entry shares them).
export { BatchBuffers, batchLoss, epochOrder, evaluate, type Evaluation };

export interface StepEvent {
  step: number;
  epoch: number;
  batchInEpoch: number;
  batchesPerEpoch: number;
  /** Mean training loss since the last evaluation. */
  loss: number;
  samplesPerSecond: number;
}

export interface TrainerCallbacks {
  onStep?(event: StepEvent): void;
  /** After each logged evaluation; 'stop' ends the run there, after a checkpoint (an early-stop rule). */
  onEvaluation?(record: MetricsRecord): 'continue' | 'stop' | void;
  onCheckpoint?(dir: string): void;
  /** Per-layer (per-step) gradient norms for `--log-gradients`: run on one training batch. */
  gradientSummary?(model: Model, hook: (collect: GradientHook) => void): Record<string, unknown>;
}

/** What to train and how; everything but the model and the data has the CLI's default for the task (run-options.ts). */
export interface RunOptions {
  model: Model;
  train: Dataset;
  test: Dataset;
  /** What the data is, saved in checkpoints so `eval` and `--resume` rebuild it; default: the task loadTask named `train` after. */
  task?: TaskConfig;
  /** The training loop's settings; each one left out takes the CLI's default for the task (the seed: the model's). */
  training?: TrainingOptions;
  /** Shorthands for training.epochs, training.batch and training.optimizer.lr. */
  epochs?: number;
  batch?: number;
  lr?: number;
  /** Run directory: metrics.jsonl and checkpoint/ go here; default runs/<model>-<task>-<time>. */
  outDir?: string;
  /** Where to start (from a checkpoint) and the optimiser restored with it. */
  progress?: Progress;
  optimizer?: Optimizer;
  callbacks?: TrainerCallbacks;
  /** Polled after every step: true stops the run there, after a checkpoint at the current step. */
  stopRequested?: () => boolean;
}

interface RunResultBase {
  progress: Progress;
  records: MetricsRecord[];
  /** True when onEvaluation stopped the run before its last epoch. */
  stopped: boolean;
}

/**
 * How a run ended: trained (to the end, or stopped by onEvaluation) with its final evaluation, or
 * interrupted by stopRequested after a checkpoint at `progress`, with none (a run being stopped should not
 * spend minutes on a test pass nobody reads).
 */
export type RunResult =
  (RunResultBase & { interrupted: false; final: Evaluation }) | (RunResultBase & { interrupted: true; final: null });

/** What went non-finite, for DivergedError. */
export interface Divergence {
  /** The step that could not be taken (1-based: `step - 1` steps were taken). */
  step: number;
  quantity: 'loss' | 'gradient norm' | 'test loss' | 'parameters';
  value: number;
  /** Where: the first layer or time step whose gradient is non-finite, or the first tensor. */
  where?: string;
}

/** A non-finite loss or gradient: the run cannot go on (its last checkpoint is the state before). */
export class DivergedError extends Error {
  /** The CLI's exit code for a diverged run (docs/guarantees.md). */
  static readonly EXIT_CODE = 3;
  readonly step: number;
  readonly loss: number;

  constructor(readonly divergence: Divergence) {
    const { step, quantity, value, where } = divergence;
    super(
      `training diverged at step ${step}: the ${quantity} is ${value}` +
        (where ? ` (first non-finite: ${where})` : '') +
        '; no checkpoint with it was written (try a smaller --lr or --clip 1)',
    );
    this.name = 'DivergedError';
    this.step = step;
    this.loss = quantity === 'loss' ? value : NaN;
  }
}

/**
 * Where the backward pass first produced a non-finite gradient: it runs the batch again with a gradient
 * hook (layers from the output down, or time steps from the last back), then names the first parameter
 * tensor with a non-finite gradient. Only called once a step has diverged.
 */
function locateNonFiniteGradient(model: Model, buffers: BatchBuffers, indices: ArrayLike<number>): string {
  let first: number | null = null;
  const unit = model.recurrent ? 'time step' : 'layer';
  const { inputs, gOutputs } = batchLoss(model, buffers, indices, true);
  model.params.zeroGrad();
  model.backward(indices.length, buffers.dataset.steps, inputs, gOutputs, (index, grad) => {
    if (first !== null) return;
    for (let i = 0; i < grad.length; i++) {
      if (!Number.isFinite(grad[i]!)) {
        first = index;
        return;
      }
    }
  });
  const places: string[] = [];
  if (first !== null) places.push(`the gradient of ${unit} ${first as number} in the backward pass`);
  for (const parameter of model.params.parameters) {
    if (parameter.grad.some((g) => !Number.isFinite(g))) {
      places.push(`parameter ${parameter.name}`);
      break;
    }
  }
  return places.join(', ') || 'unknown';
}

/** The process's peak resident memory so far, in bytes (maxRSS is in KiB). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Trains until `training.epochs` epochs are complete, evaluating, logging and checkpointing on the way. */
export function runTraining(request: RunOptions): RunResult {
  const steps = trainingSteps(request);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/**
 * runTraining, letting the event loop run after every step, so signal handlers and timers run while it
 * trains (the CLI's SIGINT/SIGTERM handlers set `stopRequested`). Computes exactly what runTraining does.
 */
export async function runTrainingAsync(request: RunOptions): Promise<RunResult> {
  const steps = trainingSteps(request);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The training loop, yielding after every step (see runTraining). */
function* trainingSteps(request: RunOptions): Generator<void, RunResult, void> {
  const options = resolveRunOptions(request);
  const { model, train, test, task, training, outDir, callbacks = {} } = options;
  const release = lockRunDir(outDir);
  try {
    return yield* lockedTrainingSteps(options, model, train, test, task, training, outDir, callbacks);
  } finally {
    release();
  }
}

function* lockedTrainingSteps(
  options: RunOptions,
  model: Model,
  train: Dataset,
  test: Dataset,
  task: TaskConfig,
  training: ResolvedRunOptions['training'],
  outDir: string,
  callbacks: TrainerCallbacks,
): Generator<void, RunResult, void> {
  writeTaskFiles(outDir, task);
  const optimizer = options.optimizer ?? new Optimizer(training.optimizer, model.params, model.backend);
  const progress: Progress = { ...(options.progress ?? { epoch: 0, batchInEpoch: 0, step: 0, seconds: 0 }) };
  const batch = Math.min(training.batch, train.count);
  const batchesPerEpoch = Math.ceil(train.count / batch);
  const trainBuffers = new BatchBuffers(train, model, batch);
  const testBuffers = new BatchBuffers(test, model, Math.min(batch, test.count));
  const metrics = new MetricsLog(`${outDir}/metrics.jsonl`, progress.step);
  const checkpointDir = `${outDir}/checkpoint`;
  const records: MetricsRecord[] = [];
  const startTime = performance.now();
  const secondsBefore = progress.seconds;
  const elapsed = () => secondsBefore + (performance.now() - startTime) / 1000;
  let lossSinceEval = 0;
  let batchesSinceEval = 0;
  let samplesSinceRate = 0;
  let rateStart = performance.now();
  let samplesPerSecond = 0;
  let final: Evaluation | null = null;

  const epochNow = () => Number((progress.epoch + progress.batchInEpoch / batchesPerEpoch).toFixed(4));

  /** Logs the divergence (with the test figures of the parameters before it) and ends the run. */
  const diverge = (divergence: Divergence): never => {
    const evaluation = evaluate(model, test, testBuffers.capacity, testBuffers);
    const record: MetricsRecord = {
      epoch: epochNow(),
      step: progress.step,
      train_loss: batchesSinceEval > 0 ? lossSinceEval / batchesSinceEval : null,
      test_loss: evaluation.loss,
      ...(evaluation.accuracy !== undefined ? { test_accuracy: evaluation.accuracy } : { test_mse: evaluation.mse }),
      seconds: Number(elapsed().toFixed(3)),
      peak_rss_bytes: peakRssBytes(),
      diverged: {
        step: divergence.step,
        quantity: divergence.quantity,
        value: String(divergence.value),
        ...(divergence.where ? { where: divergence.where } : {}),
      },
    };
    metrics.append(record);
    records.push(record);
    throw new DivergedError(divergence);
  };

  /** Evaluates and logs; true when the callback asks to stop. */
  const evaluateAndLog = (): boolean => {
    const evaluation = evaluate(model, test, testBuffers.capacity, testBuffers);
    if (!Number.isFinite(evaluation.loss))
      diverge({ step: progress.step, quantity: 'test loss', value: evaluation.loss });
    final = evaluation;
    const record: MetricsRecord = {
      epoch: epochNow(),
      step: progress.step,
      train_loss: batchesSinceEval > 0 ? lossSinceEval / batchesSinceEval : null,
      test_loss: evaluation.loss,
      ...(evaluation.accuracy !== undefined ? { test_accuracy: evaluation.accuracy } : { test_mse: evaluation.mse }),
      seconds: Number(elapsed().toFixed(3)),
      peak_rss_bytes: peakRssBytes(),
    };
    if (training.logGradients && callbacks.gradientSummary) {
      const order = epochOrder(training.seed, progress.epoch, train.count);
      Object.assign(
        record,
        callbacks.gradientSummary(model, (collect) => {
          const { gOutputs, inputs } = batchLoss(model, trainBuffers, order.subarray(0, batch), true);
          model.params.zeroGrad();
          model.backward(batch, train.steps, inputs, gOutputs, collect);
        }),
      );
    }
    lossSinceEval = 0;
    batchesSinceEval = 0;
    metrics.append(record);
    records.push(record);
    return callbacks.onEvaluation?.(record) === 'stop';
  };

  const checkpoint = (): void => {
    progress.seconds = elapsed();
    try {
      saveCheckpoint(checkpointDir, { model, optimizer, task, training, progress });
    } catch (error) {
      if (!(error instanceof NonFiniteCheckpointError)) throw error;
      diverge({
        step: progress.step,
        quantity: 'parameters',
        value: error.value,
        where: `${error.tensor}[${error.index}]`,
      });
    }
    callbacks.onCheckpoint?.(checkpointDir);
  };

  let stopped = false;
  let interrupted = false;
  run: while (progress.epoch < training.epochs) {
    const order = epochOrder(training.seed, progress.epoch, train.count);
    while (progress.batchInEpoch < batchesPerEpoch) {
      const start = progress.batchInEpoch * batch;
      const indices = order.subarray(start, Math.min(start + batch, train.count));
      const B = indices.length;
      const { loss, rows, inputs, gOutputs } = batchLoss(model, trainBuffers, indices, true);
      const meanLoss =
        train.target.kind === 'regression' ? loss.lossSum / (rows * train.target.outputs) : loss.lossSum / rows;
      // checked before the update, so the parameters stay those of the last finite step
      if (!Number.isFinite(meanLoss)) diverge({ step: progress.step + 1, quantity: 'loss', value: meanLoss });
      model.params.zeroGrad();
      model.backward(B, train.steps, inputs, gOutputs);
      // the norm clipping needs anyway: one pass over the gradients, so checking it every step is cheap
      const norm = gradientNorm(model.params, model.backend);
      if (!Number.isFinite(norm)) {
        diverge({
          step: progress.step + 1,
          quantity: 'gradient norm',
          value: norm,
          where: locateNonFiniteGradient(model, trainBuffers, indices),
        });
      }
      if (training.clip > 0 && norm > training.clip)
        model.backend.scale(model.params.size, model.params.grads, training.clip / norm);
      optimizer.step(
        scheduledLr(
          training.lrSchedule ?? 'constant',
          training.optimizer.lr,
          progress.step + 1,
          batchesPerEpoch * training.epochs,
        ),
      );
      lossSinceEval += meanLoss;
      batchesSinceEval += 1;
      progress.step += 1;
      stepDelay();
      progress.batchInEpoch += 1;
      samplesSinceRate += B;
      const now = performance.now();
      if (now - rateStart > 500 || samplesPerSecond === 0) {
        samplesPerSecond = (samplesSinceRate * 1000) / Math.max(1e-3, now - rateStart);
        samplesSinceRate = 0;
        rateStart = now;
      }
      callbacks.onStep?.({
        step: progress.step,
        epoch: progress.epoch,
        batchInEpoch: progress.batchInEpoch,
        batchesPerEpoch,
        loss: lossSinceEval / batchesSinceEval,
        samplesPerSecond,
      });
      const endOfEpoch = progress.batchInEpoch === batchesPerEpoch;
      if (!endOfEpoch && training.evalEvery > 0 && progress.step % training.evalEvery === 0 && evaluateAndLog()) {
        stopped = true;
        checkpoint();
        break run;
      }
      if (!endOfEpoch && training.checkpointEvery > 0 && progress.step % training.checkpointEvery === 0) checkpoint();
      if (!endOfEpoch) {
        yield;
        if (options.stopRequested?.()) {
          interrupted = true;
          checkpoint();
          break run;
        }
      }
    }
    const stop = evaluateAndLog();
    progress.epoch += 1;
    progress.batchInEpoch = 0;
    checkpoint();
    if (stop && progress.epoch < training.epochs) {
      stopped = true;
      break;
    }
    if (progress.epoch < training.epochs) {
      yield;
      if (options.stopRequested?.()) {
        interrupted = true;
        break;
      }
    }
  }
  progress.seconds = elapsed();
  if (interrupted) return { final: null, progress, records, stopped, interrupted };
  return {
    final: final ?? evaluate(model, test, testBuffers.capacity, testBuffers),
    progress,
    records,
    stopped,
    interrupted,
  };
}
