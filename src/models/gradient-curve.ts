// Measuring ||∂loss/∂x_l|| at every layer (||∂loss/∂h_t|| at every step): the pieces the kinds' gradient
// curves are built from.
//
// - `hookGradientCurve`: any model, through `model.backward` and its gradient hook. Exact wherever the
//   model's own backward is representable; an underflow to 0 is -Infinity.
// - `PowerOfTwoScale`: for kinds that run their backward piecewise (layer by layer, chunks of steps, or steps):
//   between pieces the gradient is rescaled by a power of two (exact in floating point) and the exponent
//   kept on the side, so the curve goes on where the plain backward would underflow or overflow (a plain
//   MLP at depth 50,000 vanishes like 10^-20000).

import type { FloatArray } from '../backend/backend.js';
import { curvePosition, type CurveIndex, type GradientCurve } from './kind.js';
import type { GradientHook, Model } from './model.js';

/**
 * ||x|| accumulated in float64 here rather than by a backend kernel: a float32 kernel may square tiny
 * gradients (below ~1e-19) to zero, and the whole point of these curves is to see tiny gradients.
 */
export function frobeniusNorm(x: FloatArray): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * x[i]!;
  if (sum > 1e-280 && sum < 1e280) return Math.sqrt(sum);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]!));
  if (max === 0 || !Number.isFinite(max)) return max;
  sum = 0;
  for (let i = 0; i < x.length; i++) sum += (x[i]! / max) ** 2;
  return max * Math.sqrt(sum);
}

/**
 * Runs `backward` with a hook that records each ||grad||; returns the norms in curve order (the hook's
 * index is curvePosition(index, entry)).
 */
export function collectNorms(index: CurveIndex, backward: (collect: GradientHook) => void): Float64Array {
  const byIndex = new Map<number, number>();
  backward((position, grad) => byIndex.set(position, frobeniusNorm(grad)));
  const first = curvePosition(index, 0);
  const count = byIndex.size === 0 ? 0 : Math.max(...byIndex.keys()) - first + 1;
  const norms = new Float64Array(count);
  for (const [position, norm] of byIndex) norms[position - first] = norm;
  return norms;
}

/** The curve from `model.backward` with its gradient hook (accumulates the parameter gradients). */
export function hookGradientCurve(
  model: Model,
  index: CurveIndex,
  B: number,
  T: number,
  inputs: FloatArray,
  gOutputs: FloatArray,
): GradientCurve {
  const norms = collectNorms(index, (collect) => model.backward(B, T, inputs, gOutputs, collect));
  return { index, log10Norms: norms.map(Math.log10) };
}

/**
 * A gradient carried as (stored values) · 2^exponent. `record` returns log10 of the true norm and
 * rescales the stored values to norm ~1, exactly (a power of two changes no mantissa).
 */
export class PowerOfTwoScale {
  /** The true gradient is the stored one · 2^exponent. */
  exponent = 0;

  /** `scale(values, factor)` multiplies in place: the backend's kernel. */
  constructor(private readonly scale: (values: FloatArray, factor: number) => void) {}

  /** log10 of the true norm of `stored` (-Infinity for an exact zero). */
  log10Norm(stored: FloatArray): number {
    return this.log10Of(frobeniusNorm(stored));
  }

  /** log10 of the true norm of `stored`, then rescales it to norm ~1. */
  record(stored: FloatArray): number {
    const norm = frobeniusNorm(stored);
    const log10 = this.log10Of(norm);
    this.rescaleFrom(norm, stored);
    return log10;
  }

  /** Rescales `stored` to norm ~1 without recording it. */
  rescale(stored: FloatArray): void {
    this.rescaleFrom(frobeniusNorm(stored), stored);
  }

  /** Rescales the parts of one gradient by the same power of two, to a joint norm of ~1. */
  rescaleTogether(parts: FloatArray[]): void {
    this.rescaleFrom(Math.hypot(...parts.map(frobeniusNorm)), ...parts);
  }

  private log10Of(norm: number): number {
    return norm === 0 ? -Infinity : Math.log10(norm) + this.exponent * Math.log10(2);
  }

  private rescaleFrom(norm: number, ...stored: FloatArray[]): void {
    if (norm === 0 || !Number.isFinite(norm)) return;
    const shift = Math.round(Math.log2(norm));
    if (shift !== 0 && Math.abs(shift) < 1000) {
      for (const part of stored) this.scale(part, 2 ** -shift);
      this.exponent += shift;
    }
  }
}

/**
 * The curve of a gated cell read at its last state (LSTM, GRU), its backward run one step at a time: before
 * each step the carried gradients (`carried`: ∂loss/∂h_t first, then any other state's, such as the LSTM's
 * ∂loss/∂c_t) are rescaled together by one power of two, so the curve goes on below the dtype's range.
 * `stepBack(t)` turns the carried ∂loss/∂(state at step t+1) into ∂loss/∂(state at step t) in place
 * (t = T-1..1, 0-based as the kernels count); entry t of the curve is ||∂loss/∂h_{t+1}||.
 */
export function stepwiseGradientCurve(T: number, carried: FloatArray[], stepBack: (t: number) => void): GradientCurve {
  const gh = carried[0]!;
  // A plain loop rather than a backend kernel: the parts may be of different dtypes (float64 cell-state
  // gradients beside float32 hidden ones, as the reference backward keeps them), and are only B·N long.
  const scaled = new PowerOfTwoScale((values, factor) => {
    for (let i = 0; i < values.length; i++) values[i] = values[i]! * factor;
  });
  const log10Norms = new Float64Array(T);
  for (let t = T - 1; t >= 0; t--) {
    scaled.rescaleTogether(carried);
    log10Norms[t] = scaled.log10Norm(gh);
    if (t > 0) stepBack(t);
  }
  return { index: 'step', log10Norms };
}
