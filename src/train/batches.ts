// One batch of training or evaluation, without files: the batch buffers, forward + loss (+ its
// gradient), evaluation over a dataset and the seeded order of an epoch's samples. Shared by the
// training loop (trainer.ts) and the browser entry (src/browser/), so nothing here may import a Node
// built-in.

import type { FloatArray } from '../backend/backend.js';
import type { BatchTargets, Dataset } from '../data/dataset.js';
import { crossEntropyLoss, meanSquaredErrorLoss, type LossValue } from '../nn/losses.js';
import type { Model } from '../models/model.js';
import { Random } from '../util/random.js';

/** Buffers of one batch in the model's dtype, allocated once for the largest batch. */
export class BatchBuffers {
  readonly inputs: FloatArray; // (T, B, D)
  readonly labels: Int32Array; // (B) or (T, B)
  readonly values: FloatArray; // (B, K)
  readonly gOutputs: FloatArray; // (rows, K)
  readonly hits: Uint8Array; // (rows)

  constructor(
    readonly dataset: Dataset,
    readonly model: Model,
    readonly capacity: number,
  ) {
    const { steps: T, inputDim: D } = dataset;
    const K = model.config.outputs;
    const dtype = model.config.dtype;
    const memory = model.backend;
    this.inputs = memory.allocate(dtype, T * capacity * D);
    this.labels = new Int32Array(T * capacity);
    this.values = memory.allocate(dtype, capacity * K);
    this.gOutputs = memory.allocate(dtype, model.outputRows(capacity, T) * K);
    this.hits = new Uint8Array(model.outputRows(capacity, T));
  }

  /** Fills samples `indices` (B <= capacity); returns views of the batch's inputs and targets. */
  fill(indices: ArrayLike<number>): { inputs: FloatArray; targets: BatchTargets } {
    const B = indices.length;
    const { steps: T, inputDim: D, target } = this.dataset;
    const inputs = this.inputs.subarray(0, T * B * D);
    const targets: BatchTargets =
      target.kind === 'regression'
        ? { values: this.values.subarray(0, B * target.outputs) }
        : { labels: this.labels.subarray(0, target.kind === 'class' ? B : T * B) };
    this.dataset.fillBatch(indices, inputs, targets);
    return { inputs, targets };
  }
}

/** Forward and loss on one batch; with `withGradient`, also the loss gradient in buffers.gOutputs. */
export function batchLoss(
  model: Model,
  buffers: BatchBuffers,
  indices: ArrayLike<number>,
  withGradient: boolean,
): { loss: LossValue; rows: number; inputs: FloatArray; gOutputs: FloatArray } {
  const B = indices.length;
  const T = buffers.dataset.steps;
  const K = model.config.outputs;
  const { inputs, targets } = buffers.fill(indices);
  const outputs = model.forward(B, T, inputs);
  const rows = model.outputRows(B, T);
  const gOutputs = buffers.gOutputs.subarray(0, rows * K);
  const grad = withGradient ? gOutputs : null;
  const loss = targets.values
    ? meanSquaredErrorLoss(model.backend, rows, K, outputs, targets.values, grad)
    : crossEntropyLoss(
        model.backend,
        rows,
        K,
        outputs,
        targets.labels as Int32Array,
        grad,
        buffers.hits.subarray(0, rows),
      );
  return { loss, rows, inputs, gOutputs };
}

export interface Evaluation {
  /** Mean loss per output row (cross-entropy) or per value (MSE). */
  loss: number;
  /** Classification: fraction of rows classified correctly. */
  accuracy?: number;
  /** Regression: mean squared error (equal to `loss`). */
  mse?: number;
  samples: number;
}

/** Evaluates `model` on all of `dataset`, in batches of `batchSize`. */
export function evaluate(model: Model, dataset: Dataset, batchSize: number, buffers?: BatchBuffers): Evaluation {
  const batchBuffers = buffers ?? new BatchBuffers(dataset, model, Math.min(batchSize, dataset.count));
  const indices = new Int32Array(batchBuffers.capacity);
  let lossSum = 0;
  let correct = 0;
  let rowsTotal = 0;
  for (let start = 0; start < dataset.count; start += batchBuffers.capacity) {
    const B = Math.min(batchBuffers.capacity, dataset.count - start);
    for (let i = 0; i < B; i++) indices[i] = start + i;
    const { loss, rows } = batchLoss(model, batchBuffers, indices.subarray(0, B), false);
    lossSum += loss.lossSum;
    correct += loss.correct;
    rowsTotal += rows;
  }
  if (dataset.target.kind === 'regression') {
    const mse = lossSum / (rowsTotal * dataset.target.outputs);
    return { loss: mse, mse, samples: dataset.count };
  }
  return { loss: lossSum / rowsTotal, accuracy: correct / rowsTotal, samples: dataset.count };
}

/** The order of epoch `epoch`'s samples: drawn from the seed alone, so a resumed run sees the same one. */
export function epochOrder(seed: number, epoch: number, count: number): Int32Array {
  return Random.derive(seed, 0x5eed0000 + epoch).permutation(count);
}
