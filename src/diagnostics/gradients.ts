// Gradient norms ||∂loss/∂x_l|| at every layer (||∂loss/∂h_t|| at every step) on one batch, and the
// compact summaries that `roaf train --log-gradients` adds to metrics.jsonl.
//
// How a model's curve is measured its kind declares (models/kinds/): feed-forward models and single-layer
// cells read at the last state (ROAF/Elman over chunks of steps, LSTM and GRU one step at a time) run their
// backward piecewise with exact power-of-two rescaling, so the curve goes on where float32 (or float64)
// would underflow, and is returned as log10 norms; the others (per-step readouts, stacked layers: the top
// layer's ∂loss/∂h_t) use `model.backward` with its gradient hook, where an underflow is -Infinity
// (models/gradient-curve.ts).

import type { FloatArray } from '../backend/backend.js';
import { collectNorms } from '../models/gradient-curve.js';
import { curvePosition, type CurveIndex, type GradientCurve } from '../models/kind.js';
import { modelKindOf } from '../models/kinds.js';
import type { GradientHook, Model } from '../models/model.js';

export { frobeniusNorm } from '../models/gradient-curve.js';
export { curvePosition, type CurveIndex, type GradientCurve };

/**
 * The gradient-norm curve of `model` for a batch it has just run forward on (B samples, T steps),
 * given ∂loss/∂outputs. Accumulates into the model's parameter gradients; the caller zeroes them.
 */
export function measureGradientNorms(
  model: Model,
  B: number,
  T: number,
  inputs: FloatArray,
  gOutputs: FloatArray,
): GradientCurve {
  return modelKindOf(model).gradientCurve(model, B, T, inputs, gOutputs);
}

/** What `--log-gradients` writes into a metrics record, under the key `gradients`. */
export interface GradientSummary {
  index: CurveIndex;
  /** Number of layers + 1 (x_0..x_L) or of steps (h_1..h_T). */
  count: number;
  /** At most 64 evenly spaced positions (layer or step numbers), first and last included. */
  positions: number[];
  /** ||∂loss/∂x|| at those positions. */
  norms: number[];
  min: number;
  max: number;
  /** At x_0 (or h_1). */
  first: number;
  /** At x_L (or h_T). */
  last: number;
  /** first / last; null when last is 0. */
  first_last_ratio: number | null;
}

/** Up to `maxPoints` evenly spaced indices in [0, count), always including both ends. */
export function downsampleIndices(count: number, maxPoints = 64): number[] {
  if (count <= maxPoints) return Array.from({ length: count }, (_, i) => i);
  const picked = new Set<number>();
  for (let i = 0; i < maxPoints; i++) picked.add(Math.round((i * (count - 1)) / (maxPoints - 1)));
  return [...picked].sort((x, y) => x - y);
}

/** The metrics-record summary of a norm curve (plain values, entry i at curvePosition(index, i)). */
export function summarizeNorms(index: CurveIndex, norms: ArrayLike<number>, maxPoints = 64): GradientSummary {
  const count = norms.length;
  const picked = downsampleIndices(count, maxPoints);
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < count; i++) {
    min = Math.min(min, norms[i]!);
    max = Math.max(max, norms[i]!);
  }
  // A curve has at least one entry (x_0, or h_1).
  const first = norms[0]!,
    last = norms[count - 1]!;
  return {
    index,
    count,
    positions: picked.map((i) => curvePosition(index, i)),
    norms: picked.map((i) => norms[i]!),
    min,
    max,
    first,
    last,
    first_last_ratio: last === 0 ? null : first / last,
  };
}

/**
 * The trainer's `gradientSummary` callback (TrainerCallbacks): runs the model's own backward on one
 * training batch through `run` and returns `{ gradients: GradientSummary }` for the metrics record.
 */
export function gradientSummaryCallback(model: Model, run: (collect: GradientHook) => void): Record<string, unknown> {
  const index = modelKindOf(model).labels.curve;
  const norms = collectNorms(index, run);
  model.params.zeroGrad();
  return { gradients: summarizeNorms(index, norms) };
}
