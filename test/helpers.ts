// Shared test helpers: random buffers, finite-difference gradient checks, and the list of backends the
// suites run on (reference always; native when its addon is built).

import assert from 'node:assert/strict';
import type { Backend, FloatArray } from '../src/backend/backend.js';
import { referenceBackend } from '../src/backend/reference.js';
import { Random } from '../src/util/random.js';

export function randomArray(n: number, rng: Random, scale = 1, dtype: 'float32' | 'float64' = 'float64'): FloatArray {
  const out = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

/**
 * Central finite differences of `loss` with respect to every entry of `values` (perturbed in place and
 * restored), compared with `analytic`. Fails when max |fd - analytic| / max(|fd|, |analytic|, floor)
 * exceeds `tolerance`. Returns the worst relative error.
 */
export function checkGradient(
  label: string, values: FloatArray, analytic: ArrayLike<number>, loss: () => number,
  { tolerance = 1e-6, step = 1e-5, floor = 1e-3, indices }: { tolerance?: number; step?: number; floor?: number; indices?: number[] } = {},
): number {
  let worst = 0;
  const which = indices ?? Array.from({ length: values.length }, (_, i) => i);
  let scaleRef = 0;
  for (const i of which) scaleRef = Math.max(scaleRef, Math.abs(analytic[i]));
  for (const i of which) {
    const saved = values[i];
    values[i] = saved + step;
    const plus = loss();
    values[i] = saved - step;
    const minus = loss();
    values[i] = saved;
    const fd = (plus - minus) / (2 * step);
    // Relative to the gradient's overall scale, so entries near zero do not inflate the error.
    const denominator = Math.max(Math.abs(fd), Math.abs(analytic[i]), floor * scaleRef, 1e-12);
    const relative = Math.abs(fd - analytic[i]) / denominator;
    worst = Math.max(worst, relative);
    if (relative > tolerance) {
      assert.fail(`${label}[${i}]: finite difference ${fd} vs analytic ${analytic[i]} (relative error ${relative.toExponential(2)})`);
    }
  }
  return worst;
}

/** Σ c ⊙ y in float64: a scalar loss with a known gradient (c) for any output y. */
export function weightedSum(y: ArrayLike<number>, c: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * c[i];
  return s;
}

export interface NamedBackend {
  name: string;
  backend: Backend;
}

/** The backends to run a suite on: reference always, native when it loads. */
export async function availableBackends(): Promise<NamedBackend[]> {
  const list: NamedBackend[] = [{ name: 'reference', backend: referenceBackend }];
  try {
    const { loadBackend } = await import('../src/backend/index.js');
    const native = loadBackend('native', { quiet: true });
    if (native !== null) list.push({ name: 'native', backend: native });
  } catch {
    // no native backend in this build
  }
  return list;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
