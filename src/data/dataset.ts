// The common shape of every task's data: a `Dataset` writes any set of samples as one batch.
//
// Inputs are always time-major (T, B, D) so that a recurrent model reads step t as one contiguous
// (B, D) block; a flat task (MNIST for an MLP) has T = 1. Samples are addressed by index, so a trainer
// shuffles indices and never copies the data itself.

import type { FloatArray } from '../backend/backend.js';

/** What a sample's target is. */
export type TargetSpec =
  /** One class label per sample (K = classes). */
  | { kind: 'class'; classes: number }
  /** One class label per sample per step (copy memory). */
  | { kind: 'class-per-step'; classes: number }
  /** K = outputs real targets per sample (adding problem: 1). */
  | { kind: 'regression'; outputs: number };

/** The targets of one batch; which field is filled depends on the dataset's `TargetSpec`. */
export interface BatchTargets {
  /** 'class': (B); 'class-per-step': (T, B), time-major. */
  labels?: Int32Array;
  /** 'regression': (B, K). */
  values?: FloatArray;
}

export interface Dataset {
  readonly name: string;
  /** Number of samples. */
  readonly count: number;
  /** T; 1 for a flat (non-sequential) input such as MNIST for an MLP. */
  readonly steps: number;
  /** D per step: 784 for flat MNIST, 1 for sMNIST, 2 for adding, 10 for copy. */
  readonly inputDim: number;
  readonly target: TargetSpec;
  /**
   * Writes the samples `indices` (length B) as one batch: `inputs` (T, B, D) time-major, and the targets
   * into `targets.labels` or `targets.values` (see `BatchTargets`). Every element of the batch buffers
   * is overwritten. Buffers must have exactly the batch's size; pass a `subarray` for a short batch.
   */
  fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void;
}

/** The two splits of a task. */
export interface TaskData {
  train: Dataset;
  test: Dataset;
}

/**
 * Checks a `fillBatch` call's buffers and indices against the dataset's shape, so that afterwards the
 * targets field the spec names is present with the right length. A mismatch is a bug in the caller,
 * so it throws a plain `Error`.
 */
export function checkBatch(ds: Dataset, indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
  const B = indices.length;
  const expectedInputs = ds.steps * B * ds.inputDim;
  if (inputs.length !== expectedInputs) {
    throw new Error(
      `${ds.name}: inputs must have T*B*D = ${ds.steps}*${B}*${ds.inputDim} = ${expectedInputs} elements, got ${inputs.length}`,
    );
  }
  for (let b = 0; b < B; b++) {
    const index = indices[b]!;
    if (!Number.isInteger(index) || index < 0 || index >= ds.count) {
      throw new Error(`${ds.name}: sample index ${index} out of range [0, ${ds.count})`);
    }
  }
  const spec = ds.target;
  if (spec.kind === 'regression') {
    const expected = B * spec.outputs;
    if (!targets.values || targets.values.length !== expected) {
      throw new Error(
        `${ds.name}: targets.values must have B*K = ${expected} elements, got ${targets.values?.length ?? 'none'}`,
      );
    }
    return;
  }
  const expected = spec.kind === 'class' ? B : ds.steps * B;
  if (!targets.labels || targets.labels.length !== expected) {
    throw new Error(
      `${ds.name}: targets.labels must have ${spec.kind === 'class' ? 'B' : 'T*B'} = ${expected} elements, got ${targets.labels?.length ?? 'none'}`,
    );
  }
}

/** A view of the first `n` samples of `ds` (all of them if `n >= ds.count`); shares the data. */
export function limitDataset(ds: Dataset, n: number): Dataset {
  if (!Number.isInteger(n) || n < 1) throw new Error(`limitDataset: n must be an integer >= 1, got ${n}`);
  if (n >= ds.count) return ds;
  return {
    name: ds.name,
    count: n,
    steps: ds.steps,
    inputDim: ds.inputDim,
    target: ds.target,
    fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets): void {
      for (let b = 0; b < indices.length; b++) {
        const index = indices[b]!;
        if (!Number.isInteger(index) || index < 0 || index >= n) {
          throw new Error(`${ds.name}: sample index ${index} out of range [0, ${n})`);
        }
      }
      ds.fillBatch(indices, inputs, targets);
    },
  };
}
