// Gradient norms ||∂loss/∂x_l|| at every layer (||∂loss/∂h_t|| at every step) on one batch, and the
// compact summaries that `roaf train --log-gradients` adds to metrics.jsonl.
//
// Feed-forward models: the model's own layer kernels run backwards through the layers, and after each
// layer the gradient is rescaled by a power of two (exact in floating point) with the exponent kept on
// the side. The curve therefore equals the one from `model.backward` wherever that one is representable,
// and goes on where it would underflow to 0 or overflow (a plain MLP at depth 50,000 vanishes like
// 10^-20000): it is returned as log10 norms. ROAF and Elman cells with a last-state readout get the same
// treatment: the model's backward-through-time kernel runs over chunks of steps, rescaling between them.
// LSTM, GRU and per-step readouts: `model.backward` with its gradient hook; an underflow is -Infinity.

import type { FloatArray } from '../backend/backend.js';
import type { GradientHook, Model } from '../models/model.js';
import { RecurrentModel } from '../models/recurrent.js';
import { RoafMLP } from '../models/roaf-mlp.js';
import { RoafCell } from '../nn/layers.js';

export type CurveIndex = 'layer' | 'step';

export interface GradientCurve {
  /** 'layer': entry i is x_i, i = 0..L; 'step': entry i is h_{i+1}, i = 0..T-1. */
  index: CurveIndex;
  /** log10 ||∂loss/∂x_l|| (Frobenius norm over the batch), -Infinity for an exact zero. */
  log10Norms: Float64Array;
}

/** The layer (or step) number of entry i of a curve. */
export function curvePosition(index: CurveIndex, i: number): number {
  return index === 'layer' ? i : i + 1;
}

/**
 * The gradient-norm curve of `model` for a batch it has just run forward on (B samples, T steps),
 * given ∂loss/∂outputs. Accumulates into the model's parameter gradients; the caller zeroes them.
 */
export function measureGradientNorms(
  model: Model, B: number, T: number, inputs: FloatArray, gOutputs: FloatArray,
): GradientCurve {
  if (model instanceof RoafMLP) return scaledLayerBackward(model, B, gOutputs);
  if (model instanceof RecurrentModel && model.cell instanceof RoafCell && model.config.readout === 'last') {
    return scaledCellBackward(model, model.cell, B, T, inputs, gOutputs);
  }
  const norms = collectNorms(model, (collect) => model.backward(B, T, inputs, gOutputs, collect));
  return { index: model.recurrent ? 'step' : 'layer', log10Norms: norms.map(Math.log10) };
}

/**
 * ||x|| accumulated in float64 here rather than by a backend kernel: a float32 kernel may square tiny
 * gradients (below ~1e-19) to zero, and the whole point of these curves is to see tiny gradients.
 */
export function frobeniusNorm(x: FloatArray): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  if (sum > 1e-280 && sum < 1e280) return Math.sqrt(sum);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]));
  if (max === 0 || !Number.isFinite(max)) return max;
  sum = 0;
  for (let i = 0; i < x.length; i++) sum += (x[i] / max) ** 2;
  return max * Math.sqrt(sum);
}

/** Runs `backward` with a hook that records each ||grad||; returns the norms in layer/step order. */
function collectNorms(model: Model, backward: (collect: GradientHook) => void): Float64Array {
  const byIndex = new Map<number, number>();
  backward((index, grad) => byIndex.set(index, frobeniusNorm(grad)));
  const first = model.recurrent ? 1 : 0;
  const count = byIndex.size === 0 ? 0 : Math.max(...byIndex.keys()) - first + 1;
  const norms = new Float64Array(count);
  for (const [index, norm] of byIndex) norms[index - first] = norm;
  return norms;
}

function scaledLayerBackward(model: RoafMLP, B: number, gOutputs: FloatArray): GradientCurve {
  const { width: N, dtype } = model.config;
  const backend = model.backend;
  const L = model.layers.length;
  const size = B * N;
  let gy = backend.allocate(dtype, size);
  let gx = backend.allocate(dtype, size);
  const gz = backend.allocate(dtype, size);
  const a = backend.allocate(dtype, size);
  const y = backend.allocate(dtype, size);
  const log10Norms = new Float64Array(L + 1);
  let exponent = 0; // the true gradient is gy · 2^exponent
  const record = (l: number): void => {
    const norm = frobeniusNorm(gy);
    log10Norms[l] = norm === 0 ? -Infinity : Math.log10(norm) + exponent * Math.log10(2);
    if (norm === 0 || !Number.isFinite(norm)) return;
    const shift = Math.round(Math.log2(norm));
    if (shift !== 0 && Math.abs(shift) < 1000) {
      backend.scale(size, gy, 2 ** -shift);
      exponent += shift;
    }
  };
  model.readout.backward(backend, B, model.savedLayerInput(L, B), gOutputs, gy);
  record(L);
  for (let l = L - 1; l >= 0; l--) {
    const x = model.savedLayerInput(l, B);
    // The forward kept the activations in a private buffer; the same kernel recomputes them bit for bit.
    model.layers[l].forward(backend, B, x, a, y);
    model.layers[l].backward(backend, B, x, a, gy, gx, gz);
    [gy, gx] = [gx, gy];
    record(l);
  }
  return { index: 'layer', log10Norms };
}

/** Steps per backward-through-time chunk: no plausible cell shrinks or grows a gradient by 2^±100 in 16 steps. */
const CHUNK = 16;

function scaledCellBackward(
  model: RecurrentModel, cell: RoafCell, B: number, T: number, inputs: FloatArray, gOutputs: FloatArray,
): GradientCurve {
  const { hidden: N, dtype } = model.config;
  const D = cell.inputDim;
  const backend = model.backend;
  const step = B * N;
  // The states again, by the same kernel on the same inputs (the cell keeps its own copy private).
  const hs = backend.allocate(dtype, (T + 1) * step);
  const as = backend.allocate(dtype, T * step);
  const { alpha, beta, filter } = cell;
  backend.roafCellForward({ T, B, D, N, alpha, beta, filter, xs: inputs, W: cell.W.value, U: cell.U.value, b: cell.b.value, hs, as });
  const ghs = backend.allocate(dtype, T * step); // ∂loss/∂h_t, t = 1..T, as stored · 2^exponent
  model.readout.backward(backend, B, hs.subarray(T * step), gOutputs, ghs.subarray((T - 1) * step));
  const gzs = backend.allocate(dtype, CHUNK * step);
  const gW = backend.allocate(dtype, N * N), gU = backend.allocate(dtype, N * D), gb = backend.allocate(dtype, N);
  const gh0 = backend.allocate(dtype, step);
  const log10Norms = new Float64Array(T);
  let exponent = 0;
  for (let end = T; end > 0; end -= CHUNK) {
    const start = Math.max(0, end - CHUNK);
    const last = ghs.subarray((end - 1) * step, end * step);
    const norm = frobeniusNorm(last);
    if (norm > 0 && Number.isFinite(norm)) {
      const shift = Math.round(Math.log2(norm));
      if (shift !== 0 && Math.abs(shift) < 1000) {
        backend.scale(step, last, 2 ** -shift);
        exponent += shift;
      }
    }
    const steps = end - start;
    backend.roafCellBackward({
      T: steps, B, D, N, alpha, beta, filter,
      xs: inputs.subarray(start * B * D, end * B * D), W: cell.W.value, U: cell.U.value,
      hs: hs.subarray(start * step, (end + 1) * step), as: as.subarray(start * step, end * step),
      ghs: ghs.subarray(start * step, end * step), gzs: gzs.subarray(0, steps * step), gW, gU, gb,
      gh0: start > 0 ? gh0 : null, gxs: null, lastStepOnly: false,
    });
    for (let t = start; t < end; t++) {
      const n = frobeniusNorm(ghs.subarray(t * step, (t + 1) * step));
      log10Norms[t] = n === 0 ? -Infinity : Math.log10(n) + exponent * Math.log10(2);
    }
    // ∂loss/∂h_start flows into the previous chunk's last step (which has no loss term of its own).
    if (start > 0) ghs.subarray((start - 1) * step, start * step).set(gh0);
  }
  return { index: 'step', log10Norms };
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
  let min = Infinity, max = -Infinity;
  for (let i = 0; i < count; i++) {
    min = Math.min(min, norms[i]);
    max = Math.max(max, norms[i]);
  }
  const first = norms[0], last = norms[count - 1];
  return {
    index, count,
    positions: picked.map((i) => curvePosition(index, i)),
    norms: picked.map((i) => norms[i]),
    min, max, first, last,
    first_last_ratio: last === 0 ? null : first / last,
  };
}

/**
 * The trainer's `gradientSummary` callback (TrainerCallbacks): runs the model's own backward on one
 * training batch through `run` and returns `{ gradients: GradientSummary }` for the metrics record.
 */
export function gradientSummaryCallback(model: Model, run: (collect: GradientHook) => void): Record<string, unknown> {
  const norms = collectNorms(model, run);
  model.params.zeroGrad();
  return { gradients: summarizeNorms(model.recurrent ? 'step' : 'layer', norms) };
}
