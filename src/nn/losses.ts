// Losses: softmax cross-entropy and mean squared error, as means over the rows they are given,
// with their gradients (written into a buffer the caller owns).

import type { Backend, FloatArray } from '../backend/backend.js';

export interface LossValue {
  /** Sum of the per-row losses (cross-entropy) or of squared errors (MSE), in float64. */
  lossSum: number;
  /** Rows whose argmax equals the label (cross-entropy only; 0 for MSE). */
  correct: number;
}

/**
 * Mean softmax cross-entropy over `rows` rows of K logits. Writes grad = ∂mean/∂logits unless null.
 * `correctScratch` (rows) receives per-row hits.
 */
export function crossEntropyLoss(
  backend: Backend,
  rows: number,
  K: number,
  logits: FloatArray,
  labels: Int32Array,
  grad: FloatArray | null,
  correctScratch: Uint8Array,
): LossValue {
  const lossSum = backend.softmaxCrossEntropy({
    B: rows,
    K,
    logits,
    labels,
    gradScale: 1 / rows,
    grad,
    correct: correctScratch,
  });
  let correct = 0;
  for (let r = 0; r < rows; r++) correct += correctScratch[r]!;
  return { lossSum, correct };
}

/** Mean squared error over rows x K values. Writes grad = ∂mean/∂pred unless null. */
export function meanSquaredErrorLoss(
  backend: Backend,
  rows: number,
  K: number,
  pred: FloatArray,
  target: FloatArray,
  grad: FloatArray | null,
): LossValue {
  const lossSum = backend.squaredError({ B: rows, K, pred, target, gradScale: 1 / (rows * K), grad });
  return { lossSum, correct: 0 };
}
