// Times one training step of any model (forward + softmax cross-entropy + hand-written backward + Adam
// update), and optionally the forward pass alone (what evaluation costs), on random data in the model's
// shapes. Used by `roaf bench` and by the `bench/` harness, so both measure exactly the same thing.
//
// Sizes: B batch, T steps (1 for feed-forward models), N width/units, L depth, D input dim, K classes.

import type { FloatArray } from '../backend/backend.js';
import type { ModelConfig } from '../models/config.js';
import type { FlopEstimate } from '../models/kind.js';
import { modelKind } from '../models/kinds.js';
import type { Model } from '../models/model.js';
import { crossEntropyLoss } from '../nn/losses.js';
import { DEFAULT_OPTIMIZER, Optimizer } from '../train/optimizer.js';
import { Random } from '../util/random.js';

export interface StepBenchOptions {
  /** B: samples per batch. */
  batch: number;
  /** T: steps per sequence (recurrent models); ignored (1) for feed-forward models. */
  seqLen: number;
  /** Untimed steps before timing: first touches of fresh memory, thread-pool start-up. */
  warmup: number;
  /** Timed training steps; the result is their median. */
  repeats: number;
  /** Also time `repeats` forward passes with the loss but no gradient (evaluation). */
  forward: boolean;
  /** Seed of the random inputs and labels. */
  seed: number;
}

export type { FlopEstimate };

export interface StepBenchResult {
  /** Median wall time of one training step, ms. */
  msPerBatch: number;
  minMs: number;
  maxMs: number;
  /** Every timed step, ms, in order. */
  samplesMs: number[];
  /** Median wall time of one forward pass with the loss (no gradient), ms; null unless requested. */
  forwardMsPerBatch: number | null;
  flops: FlopEstimate;
  /** flops.train / median time, in 10⁹ per second. */
  gflops: number;
  /** Mean cross-entropy of the first warm-up batch (before any update) and of the last timed one. */
  firstLoss: number;
  lastLoss: number;
  /** Steps run, warm-up included. */
  steps: number;
}

/** Matrix-product FLOPs of one batch of a (resolved) model config at batch B and T steps, as its kind counts them. */
export function estimateFlops(config: ModelConfig, B: number, T: number): FlopEstimate {
  return modelKind(config.model).flops(config, B, T);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs warm-up steps, checks that the loss is finite (a benchmark of a broken model is meaningless, so a
 * non-finite loss before timing throws), then times `repeats` training steps with Adam (lr 1e-3), and
 * with `forward` as many forward passes. Inputs are uniform in [0, 1) like pixels, labels uniform.
 */
export function benchmarkTrainingStep(model: Model, options: StepBenchOptions): StepBenchResult {
  const { batch: B, warmup, repeats } = options;
  const T = model.recurrent ? options.seqLen : 1;
  const { inputDim: D, outputs: K, dtype } = model.config;
  const rng = new Random(options.seed);
  const inputs: FloatArray = model.backend.allocate(dtype, T * B * D); // (T, B, D)
  for (let i = 0; i < inputs.length; i++) inputs[i] = rng.uniform();
  const rows = model.outputRows(B, T);
  const labels = new Int32Array(rows); // (rows)
  for (let i = 0; i < rows; i++) labels[i] = rng.int(K);
  const gOutputs = model.backend.allocate(dtype, rows * K); // (rows, K)
  const hits = new Uint8Array(rows);
  const optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, kind: 'adam' }, model.params, model.backend);

  const trainStep = (): number => {
    const outputs = model.forward(B, T, inputs);
    const loss = crossEntropyLoss(model.backend, rows, K, outputs, labels, gOutputs, hits);
    model.params.zeroGrad();
    model.backward(B, T, inputs, gOutputs);
    optimizer.step();
    return loss.lossSum / rows;
  };
  const forwardStep = (): number => {
    const outputs = model.forward(B, T, inputs);
    return crossEntropyLoss(model.backend, rows, K, outputs, labels, null, hits).lossSum / rows;
  };

  let firstLoss = NaN;
  for (let i = 0; i < Math.max(1, warmup); i++) {
    const loss = trainStep();
    if (i === 0) firstLoss = loss;
    if (!Number.isFinite(loss)) {
      throw new Error(
        `${model.config.model}: the loss is ${loss} at warm-up step ${i + 1}, so its timing would mean nothing`,
      );
    }
  }
  const samplesMs: number[] = [];
  let lastLoss = NaN;
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    lastLoss = trainStep();
    samplesMs.push(performance.now() - start);
  }
  let forwardMsPerBatch: number | null = null;
  if (options.forward) {
    const forwardMs: number[] = [];
    forwardStep(); // the first forward after training steps touches no new memory, but keep it untimed
    for (let i = 0; i < repeats; i++) {
      const start = performance.now();
      forwardStep();
      forwardMs.push(performance.now() - start);
    }
    forwardMsPerBatch = median(forwardMs);
  }
  const msPerBatch = median(samplesMs);
  const flops = estimateFlops(model.config, B, T);
  return {
    msPerBatch,
    minMs: Math.min(...samplesMs),
    maxMs: Math.max(...samplesMs),
    samplesMs,
    forwardMsPerBatch,
    flops,
    gflops: flops.train / (msPerBatch * 1e6),
    firstLoss,
    lastLoss,
    steps: Math.max(1, warmup) + repeats,
  };
}
