// Float64 building blocks of the kinds' Jacobian chains: a sample's trajectory is recomputed here in
// float64 from the model's parameters (whatever the model's dtype), so the spectrum depends neither on
// the backend nor on float32 rounding.

import type { FilterOperand } from '../../backend/backend.js';
import { filterMatrix } from '../../nn/filter.js';
import type { Linear } from '../../nn/layers.js';

/** Filters as dense float64 matrices, converted once per distinct filter (layers may share one). */
export function denseFilters(): (filter: FilterOperand) => Float64Array {
  let last: FilterOperand | null = null;
  let lastMatrix: Float64Array = new Float64Array(0);
  return (filter) => {
    if (filter !== last) {
      last = filter;
      lastMatrix = filterMatrix(filter);
    }
    return lastMatrix;
  };
}

/** y = W x + b for a Linear layer, in float64. */
export function linearForward(layer: Linear, x: ArrayLike<number>): Float64Array {
  const { inputs, outputs } = layer;
  const W = layer.W.value,
    b = layer.b.value;
  const y = new Float64Array(outputs);
  for (let i = 0; i < outputs; i++) {
    let s = b[i]!;
    for (let k = 0; k < inputs; k++) s += W[i * inputs + k]! * x[k]!;
    y[i] = s;
  }
  return y;
}

/**
 * J = alpha O + beta diag(1 - a²) W, and x <- alpha O x + beta a, for one ROAF layer or step
 * (O null: alpha = 0, no filter). J (N, N) is overwritten.
 */
export function roafStep(
  N: number,
  alpha: number,
  beta: number,
  O: Float64Array | null,
  W: ArrayLike<number>,
  a: Float64Array,
  x: Float64Array,
  J: Float64Array,
): void {
  const next = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const d = beta * (1 - a[i]! * a[i]!);
    const row = i * N;
    let filtered = 0;
    for (let k = 0; k < N; k++) {
      const o = O === null ? 0 : alpha * O[row + k]!;
      J[row + k] = o + d * W[row + k]!;
      filtered += o * x[k]!;
    }
    next[i] = filtered + beta * a[i]!;
  }
  x.set(next);
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** The input side of the gates at step t: Wx x_t + bx, (G). */
export function gatePreactivations(
  G: number,
  D: number,
  Wx: ArrayLike<number>,
  bx: ArrayLike<number>,
  xs: ArrayLike<number>,
  t: number,
): Float64Array {
  const pre = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let s = bx[g]!;
    for (let k = 0; k < D; k++) s += Wx[g * D + k]! * xs[t * D + k]!;
    pre[g] = s;
  }
  return pre;
}

/** The recurrent side of the gates: Wh h, (G). */
export function recurrentProjection(G: number, N: number, Wh: ArrayLike<number>, h: Float64Array): Float64Array {
  const out = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let s = 0;
    for (let k = 0; k < N; k++) s += Wh[g * N + k]! * h[k]!;
    out[g] = s;
  }
  return out;
}
