// Serving a model: logits (and classes) for any number of samples, in batches of bounded size, from plain
// arrays or from a dataset. Samples are sample-major, as a user holds them; roaf's models read time-major
// (T, B, D) batches, so each batch is transposed on the way in (and, for a per-step readout, on the way out).
//
// Shapes: B samples, T steps, D inputs per step, K outputs.

import { allocateHost, type FloatArray } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import type { Model } from '../models/model.js';
import { BatchBuffers } from '../train/batches.js';
import { UsageError, checkRange } from '../util/errors.js';

/**
 * What to predict for: a dataset (all its samples, in order), or samples as arrays, each (T, D) row-major:
 * D values for a feed-forward model (e.g. 784 pixels / 255), T·D for a recurrent one (every sample the same T).
 */
export type PredictInput = Dataset | readonly ArrayLike<number>[];

export interface PredictOptions {
  /** Samples per forward pass, bounding the memory it takes; default 256. */
  batch?: number;
}

/** Logits, sample-major: (B, K), or (B, T, K) for a model that reads out every step (the copy task). */
export interface Prediction {
  logits: FloatArray;
  /** [B, K] or [B, T, K]. */
  shape: number[];
}

const DEFAULT_BATCH = 256;

function isDataset(inputs: PredictInput): inputs is Dataset {
  return !Array.isArray(inputs) && typeof (inputs as Dataset).fillBatch === 'function';
}

/** T of the samples given as arrays, checking each against the model's input size D. */
function stepsOf(model: Model, samples: readonly ArrayLike<number>[]): number {
  const D = model.config.inputDim;
  const first = samples[0]!.length;
  const T = first / D;
  samples.forEach((sample, i) => {
    const fits = model.recurrent ? sample.length === first && Number.isInteger(T) && T >= 1 : sample.length === D;
    if (!fits) {
      const wanted = model.recurrent
        ? `a multiple of D = ${D}, the same for every sample (sample 0 has ${first})`
        : `D = ${D}`;
      throw new UsageError(
        `predict: sample ${i} has ${sample.length} values; the model (${model.config.model}) reads ${wanted}`,
      );
    }
  });
  return model.recurrent ? T : 1;
}

/** Logits of `model` for every sample of `inputs`, computed `options.batch` samples at a time. */
export function predict(model: Model, inputs: PredictInput, options: PredictOptions = {}): Prediction {
  const batch = checkRange('batch', options.batch ?? DEFAULT_BATCH, 1, 1_000_000, { integer: true });
  const K = model.config.outputs;
  const D = model.config.inputDim;
  const count = isDataset(inputs) ? inputs.count : inputs.length;
  if (count === 0) return { logits: allocateHost(model.config.dtype, 0), shape: [0, K] };
  if (isDataset(inputs) && inputs.inputDim !== D) {
    throw new UsageError(
      `predict: dataset ${inputs.name} has ${inputs.inputDim} inputs per step; the model reads ${D}`,
    );
  }
  const T = isDataset(inputs) ? inputs.steps : stepsOf(model, inputs);
  const capacity = Math.min(batch, count);
  const every = model.recurrent && model.config.readout === 'every'; // one output row per step
  const logits = allocateHost(model.config.dtype, count * (every ? T : 1) * K); // the caller's: ordinary memory
  const datasetBuffers = isDataset(inputs) ? new BatchBuffers(inputs, model, capacity) : null;
  // The inputs the model reads live in its backend's memory (BatchBuffers allocates there too).
  const arrayBuffer = datasetBuffers === null ? model.backend.allocate(model.config.dtype, T * capacity * D) : null;
  const indices = new Int32Array(capacity);
  for (let start = 0; start < count; start += capacity) {
    const B = Math.min(capacity, count - start);
    let batchInputs: FloatArray;
    if (datasetBuffers !== null) {
      for (let b = 0; b < B; b++) indices[b] = start + b;
      batchInputs = datasetBuffers.fill(indices.subarray(0, B)).inputs;
    } else {
      const samples = inputs as readonly ArrayLike<number>[];
      batchInputs = arrayBuffer!.subarray(0, T * B * D);
      // (T, D) per sample -> (T, B, D) time-major
      for (let b = 0; b < B; b++) {
        const sample = samples[start + b]!;
        for (let t = 0; t < T; t++) {
          for (let d = 0; d < D; d++) batchInputs[(t * B + b) * D + d] = sample[t * D + d]!;
        }
      }
    }
    const out = model.forward(B, T, batchInputs);
    if (!every) {
      logits.set(out.subarray(0, B * K), start * K);
    } else {
      // (T, B, K) time-major -> (B, T, K) rows of the result
      for (let t = 0; t < T; t++) {
        for (let b = 0; b < B; b++)
          logits.set(out.subarray((t * B + b) * K, (t * B + b + 1) * K), ((start + b) * T + t) * K);
      }
    }
  }
  return { logits, shape: every ? [count, T, K] : [count, K] };
}

/** The index of the largest logit of every row: (B) classes, or (B, T) for a per-step readout. */
export function classify(model: Model, inputs: PredictInput, options: PredictOptions = {}): Int32Array {
  const { logits } = predict(model, inputs, options);
  const K = model.config.outputs;
  const classes = new Int32Array(logits.length / K);
  for (let r = 0; r < classes.length; r++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (logits[r * K + k]! > logits[r * K + best]!) best = k;
    classes[r] = best;
  }
  return classes;
}
