// The training loop: seeded shuffling, forward, loss, hand-written backward, optional clipping, the
// optimiser step; evaluation on the test set after every epoch (and every k steps on request), one
// metrics record per evaluation, and checkpoints that let an interrupted run resume exactly.
//
// Exact resume: the order of epoch e is a permutation drawn from Random.derive(seed, e), so it is known
// from the seed alone, and a checkpoint saves parameters, optimiser state and the position
// (epoch, batch in epoch): training on from a checkpoint computes the very same operations.

import type { Dataset } from '../data/dataset.js';
import type { GradientHook, Model } from '../models/model.js';
import { BatchBuffers, batchLoss, epochOrder, evaluate, type Evaluation } from './batches.js';
import { saveCheckpoint, type Progress, type TaskConfig } from './checkpoint.js';
import { MetricsLog, type MetricsRecord } from './metrics.js';
import { Optimizer, clipGradients, scheduledLr } from './optimizer.js';
import { resolveRunOptions, writeTaskFiles, type TrainingOptions } from './run-options.js';

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
}

export interface RunResult {
  final: Evaluation;
  progress: Progress;
  records: MetricsRecord[];
  /** True when onEvaluation stopped the run before its last epoch. */
  stopped: boolean;
}

/** A non-finite training loss: the run cannot go on (its last checkpoint is the state before). */
export class DivergedError extends Error {
  constructor(
    readonly step: number,
    readonly loss: number,
  ) {
    super(`training diverged at step ${step}: loss is ${loss} (try a smaller --lr or --clip 1)`);
    this.name = 'DivergedError';
  }
}

/** The process's peak resident memory so far, in bytes (maxRSS is in KiB). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Trains until `training.epochs` epochs are complete, evaluating, logging and checkpointing on the way. */
export function runTraining(request: RunOptions): RunResult {
  const options = resolveRunOptions(request);
  const { model, train, test, task, training, outDir, callbacks = {} } = options;
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

  /** Evaluates and logs; true when the callback asks to stop. */
  const evaluateAndLog = (): boolean => {
    const evaluation = evaluate(model, test, testBuffers.capacity, testBuffers);
    final = evaluation;
    const record: MetricsRecord = {
      epoch: Number((progress.epoch + progress.batchInEpoch / batchesPerEpoch).toFixed(4)),
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
    saveCheckpoint(checkpointDir, { model, optimizer, task, training, progress });
    callbacks.onCheckpoint?.(checkpointDir);
  };

  let stopped = false;
  run: while (progress.epoch < training.epochs) {
    const order = epochOrder(training.seed, progress.epoch, train.count);
    while (progress.batchInEpoch < batchesPerEpoch) {
      const start = progress.batchInEpoch * batch;
      const indices = order.subarray(start, Math.min(start + batch, train.count));
      const B = indices.length;
      const { loss, rows, inputs, gOutputs } = batchLoss(model, trainBuffers, indices, true);
      model.params.zeroGrad();
      model.backward(B, train.steps, inputs, gOutputs);
      if (training.clip > 0) clipGradients(model.params, model.backend, training.clip);
      optimizer.step(
        scheduledLr(
          training.lrSchedule ?? 'constant',
          training.optimizer.lr,
          progress.step + 1,
          batchesPerEpoch * training.epochs,
        ),
      );
      const meanLoss =
        train.target.kind === 'regression' ? loss.lossSum / (rows * train.target.outputs) : loss.lossSum / rows;
      if (!Number.isFinite(meanLoss)) {
        throw new DivergedError(progress.step + 1, meanLoss);
      }
      lossSinceEval += meanLoss;
      batchesSinceEval += 1;
      progress.step += 1;
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
    }
    const stop = evaluateAndLog();
    progress.epoch += 1;
    progress.batchInEpoch = 0;
    checkpoint();
    if (stop && progress.epoch < training.epochs) {
      stopped = true;
      break;
    }
  }
  progress.seconds = elapsed();
  return { final: final ?? evaluate(model, test, testBuffers.capacity, testBuffers), progress, records, stopped };
}
