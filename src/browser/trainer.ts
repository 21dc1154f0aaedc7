// Training one step at a time, for a caller that must stay responsive (a Web Worker that answers
// messages between steps, a page): the same pieces as `runTraining` (src/train/trainer.ts): seeded epoch
// order, forward and loss, hand-written backward, optional clipping, the optimiser and its learning-rate
// schedule, evaluation, without its files (metrics.jsonl, checkpoints). Also the diagnostics a page
// draws while training: the per-layer (per-step) gradient-norm curve, the Jacobian spectrum, and a
// recurrent model's hidden-state norm over time.

import type { FloatArray } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { diagnose, type Diagnostics } from '../diagnostics/diagnose.js';
import { measureGradientNorms } from '../diagnostics/gradients.js';
import type { GradientCurve } from '../models/kind.js';
import type { Model } from '../models/model.js';
import type { SequenceCell } from '../nn/layers.js';
import { RecurrentModel } from '../models/recurrent.js';
import { BatchBuffers, batchLoss, epochOrder, evaluate, type Evaluation } from '../train/batches.js';
import {
  DEFAULT_OPTIMIZER,
  Optimizer,
  clipGradients,
  scheduledLr,
  type LrSchedule,
  type OptimizerOptions,
} from '../train/optimizer.js';
import { checkRange } from '../util/errors.js';

export interface StepTrainerOptions {
  /** B: samples per step. */
  batch: number;
  /** The optimiser (Adam by default); `lr` is its learning rate. */
  optimizer?: Partial<OptimizerOptions>;
  /** Learning-rate schedule over `totalSteps` steps; default constant. */
  lrSchedule?: LrSchedule;
  totalSteps?: number;
  /** Global gradient-norm clipping threshold; 0 (default) disables it. */
  clip?: number;
  /** Seed of the epoch order; default the model's seed. */
  seed?: number;
}

export class StepTrainer {
  readonly optimizer: Optimizer;
  readonly batch: number;
  /** Optimiser steps taken, epochs completed, batches taken in the current epoch. */
  step = 0;
  epoch = 0;
  batchInEpoch = 0;
  private readonly trainBuffers: BatchBuffers;
  private readonly testBuffers: BatchBuffers;
  private order: Int32Array;
  private readonly seed: number;

  constructor(
    readonly model: Model,
    readonly train: Dataset,
    readonly test: Dataset,
    readonly options: StepTrainerOptions,
  ) {
    this.batch = Math.min(checkRange('batch', options.batch, 1, 1_000_000, { integer: true }), train.count);
    this.optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, ...options.optimizer }, model.params, model.backend);
    this.trainBuffers = new BatchBuffers(train, model, this.batch);
    this.testBuffers = new BatchBuffers(test, model, Math.min(this.batch, test.count));
    this.seed = options.seed ?? model.config.seed;
    this.order = epochOrder(this.seed, 0, train.count);
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.train.count / this.batch);
  }

  /** One optimiser step on the next batch; returns its mean training loss. */
  trainStep(): number {
    const { model, train, batch } = this;
    const start = this.batchInEpoch * batch;
    const indices = this.order.subarray(start, Math.min(start + batch, train.count));
    const { loss, rows, inputs, gOutputs } = batchLoss(model, this.trainBuffers, indices, true);
    model.params.zeroGrad();
    model.backward(indices.length, train.steps, inputs, gOutputs);
    if ((this.options.clip ?? 0) > 0) clipGradients(model.params, model.backend, this.options.clip!);
    const lr = this.optimizer.options.lr;
    const total = this.options.totalSteps ?? this.batchesPerEpoch;
    this.optimizer.step(scheduledLr(this.options.lrSchedule ?? 'constant', lr, this.step + 1, total));
    this.step += 1;
    this.batchInEpoch += 1;
    if (this.batchInEpoch === this.batchesPerEpoch) {
      this.epoch += 1;
      this.batchInEpoch = 0;
      this.order = epochOrder(this.seed, this.epoch, train.count);
    }
    const values = train.target.kind === 'regression' ? rows * train.target.outputs : rows;
    return loss.lossSum / values;
  }

  /** Loss and accuracy on the whole test set. */
  evaluate(): Evaluation {
    return evaluate(this.model, this.test, this.testBuffers.capacity, this.testBuffers);
  }

  /** log10 ‖∂loss/∂x_l‖ at every layer (‖∂loss/∂h_t‖ at every step) on the first `batch` test samples. */
  gradientCurve(batch = 32): GradientCurve {
    const B = Math.min(batch, this.test.count, this.testBuffers.capacity);
    const indices = Int32Array.from({ length: B }, (_, i) => i);
    const { inputs, gOutputs } = batchLoss(this.model, this.testBuffers, indices, true);
    const curve = measureGradientNorms(this.model, B, this.test.steps, inputs, gOutputs);
    this.model.params.zeroGrad();
    return curve;
  }

  /** What `roaf diagnose` measures (gradient curve, Jacobian spectrum of `samples` samples, bounds) on the test set. */
  diagnose(batch = 16, samples = 1): Diagnostics {
    return diagnose(this.model, this.test, { batch, samples });
  }
}

/**
 * A recurrent model's mean hidden-state norm ‖h_t‖ (over the first `batch` samples of `dataset`) at
 * t = 0..T, from its first layer's cell.
 */
export function hiddenStateNorms(model: Model, dataset: Dataset, batch = 16): Float64Array {
  if (!(model instanceof RecurrentModel)) throw new Error(`hiddenStateNorms: ${model.config.model} is not recurrent`);
  const B = Math.min(batch, dataset.count);
  const buffers = new BatchBuffers(dataset, model, B);
  const { inputs } = buffers.fill(Int32Array.from({ length: B }, (_, i) => i));
  const T = dataset.steps;
  const N = model.config.hidden;
  const cell: SequenceCell = (model as RecurrentModel).cell;
  const hs: FloatArray = cell.forward(model.backend, T, B, inputs); // (T+1, B, N)
  const norms = new Float64Array(T + 1);
  for (let t = 0; t <= T; t++) {
    let sum = 0;
    for (let b = 0; b < B; b++) {
      let squares = 0;
      for (let n = 0; n < N; n++) squares += hs[(t * B + b) * N + n]! ** 2;
      sum += Math.sqrt(squares);
    }
    norms[t] = sum / B;
  }
  return norms;
}
