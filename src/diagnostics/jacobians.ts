// The per-layer (per-step) Jacobians of every model, for one sample, in float64.
//
// The sample's trajectory is recomputed here in float64 from the model's parameters (whatever the
// model's dtype), so the spectrum does not depend on the backend or on float32 rounding:
// - ROAF layer / ROAF and Elman cell (SPEC §4): J = alpha O + beta D W, D = diag(1 - a²), a = tanh(z);
//   the Jacobian of x_{l+1} with respect to x_l, or of h_t with respect to h_{t-1}.
// - GRU: ∂h_t/∂h_{t-1} (N x N). LSTM: the state is (h, c), so the Jacobian is ∂(h_t, c_t)/∂(h_{t-1}, c_{t-1})
//   (2N x 2N); h_0 = c_0 = 0 as in the models.
// The visitor receives each Jacobian row-major in a buffer it may overwrite (ProductSpectrum.push does).

import type { FilterOperand } from '../backend/backend.js';
import type { Model } from '../models/model.js';
import { RecurrentModel } from '../models/recurrent.js';
import { RoafMLP } from '../models/roaf-mlp.js';
import { filterMatrix } from '../nn/filter.js';
import { GruCell, LstmCell, RoafCell, type Linear } from '../nn/layers.js';

/** Receives the Jacobian of factor `index` (0-based: layer l+1 or step t+1), (size, size) row-major. */
export type JacobianVisitor = (index: number, J: Float64Array) => void;

export interface JacobianChain {
  /** Size of the state: N, or 2N for the LSTM's (h, c). */
  size: number;
  /** Number of factors: L layers or T steps. */
  count: number;
  /** What the product is the Jacobian of, for reports: e.g. '∂x_L/∂x_0'. */
  description: string;
  /** Computes the factors in order (first layer or step first) and passes each to `visit`. */
  run(visit: JacobianVisitor): void;
}

/**
 * The chain of Jacobians of `model` for one sample. `input` is the sample: (D) for a feed-forward model,
 * (T, D) for a recurrent one (its steps in order).
 */
export function jacobianChain(model: Model, input: ArrayLike<number>, T: number): JacobianChain {
  if (model instanceof RoafMLP) return mlpChain(model, input);
  if (model instanceof RecurrentModel) {
    const cell = model.cell;
    if (cell instanceof RoafCell) return roafCellChain(cell, input, T);
    if (cell instanceof GruCell) return gruChain(cell, input, T);
    if (cell instanceof LstmCell) return lstmChain(cell, input, T);
  }
  throw new Error(`jacobianChain: no Jacobian for model '${model.config.model}'`);
}

/** Filters as dense float64 matrices, converted once per distinct filter. */
function denseFilters(): (filter: FilterOperand) => Float64Array {
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
function linearForward(layer: Linear, x: ArrayLike<number>): Float64Array {
  const { inputs, outputs } = layer;
  const W = layer.W.value, b = layer.b.value;
  const y = new Float64Array(outputs);
  for (let i = 0; i < outputs; i++) {
    let s = b[i];
    for (let k = 0; k < inputs; k++) s += W[i * inputs + k] * x[k];
    y[i] = s;
  }
  return y;
}

/** J = alpha O + beta diag(1 - a²) W, and x <- alpha O x + beta a, for one ROAF layer or step. */
function roafStep(
  N: number, alpha: number, beta: number, O: Float64Array | null, W: ArrayLike<number>,
  a: Float64Array, x: Float64Array, J: Float64Array,
): void {
  const next = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const d = beta * (1 - a[i] * a[i]);
    const row = i * N;
    let filtered = 0;
    for (let k = 0; k < N; k++) {
      const o = O === null ? 0 : alpha * O[row + k];
      J[row + k] = o + d * W[row + k];
      filtered += o * x[k];
    }
    next[i] = filtered + beta * a[i];
  }
  x.set(next);
}

function mlpChain(model: RoafMLP, input: ArrayLike<number>): JacobianChain {
  const N = model.config.width;
  return {
    size: N,
    count: model.layers.length,
    description: '∂x_L/∂x_0',
    run(visit) {
      const dense = denseFilters();
      const x = linearForward(model.input, input);
      const J = new Float64Array(N * N);
      const a = new Float64Array(N);
      model.layers.forEach((layer, l) => {
        const W = layer.W.value, b = layer.b.value;
        for (let i = 0; i < N; i++) {
          let z = b[i];
          for (let k = 0; k < N; k++) z += W[i * N + k] * x[k];
          a[i] = Math.tanh(z);
        }
        roafStep(N, layer.alpha, layer.beta, layer.alpha === 0 ? null : dense(layer.filter), W, a, x, J);
        visit(l, J);
      });
    },
  };
}

function roafCellChain(cell: RoafCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units, D = cell.inputDim;
  return {
    size: N,
    count: T,
    description: '∂h_T/∂h_0',
    run(visit) {
      const O = cell.alpha === 0 ? null : filterMatrix(cell.filter);
      const W = cell.W.value, U = cell.U.value, b = cell.b.value;
      const h = new Float64Array(N);
      const a = new Float64Array(N);
      const J = new Float64Array(N * N);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < N; i++) {
          let z = b[i];
          for (let k = 0; k < N; k++) z += W[i * N + k] * h[k];
          for (let k = 0; k < D; k++) z += U[i * D + k] * xs[t * D + k];
          a[i] = Math.tanh(z);
        }
        roafStep(N, cell.alpha, cell.beta, O, W, a, h, J);
        visit(t, J);
      }
    },
  };
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** The input side of the gates at step t: Wx x_t + bx, (G). */
function gatePreactivations(
  G: number, D: number, Wx: ArrayLike<number>, bx: ArrayLike<number>,
  xs: ArrayLike<number>, t: number,
): Float64Array {
  const pre = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let s = bx[g];
    for (let k = 0; k < D; k++) s += Wx[g * D + k] * xs[t * D + k];
    pre[g] = s;
  }
  return pre;
}

/** The recurrent side of the gates: Wh h, (G). */
function recurrentProjection(G: number, N: number, Wh: ArrayLike<number>, h: Float64Array): Float64Array {
  const out = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    let s = 0;
    for (let k = 0; k < N; k++) s += Wh[g * N + k] * h[k];
    out[g] = s;
  }
  return out;
}

function gruChain(cell: GruCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units, D = cell.inputDim, G = 3 * N;
  return {
    size: N,
    count: T,
    description: '∂h_T/∂h_0',
    run(visit) {
      const Wx = cell.Wx.value, Wh = cell.Wh.value, bx = cell.bx.value, bh = cell.bh.value;
      const h = new Float64Array(N);
      const J = new Float64Array(N * N);
      for (let t = 0; t < T; t++) {
        const pre = gatePreactivations(G, D, Wx, bx, xs, t);
        const rec = recurrentProjection(G, N, Wh, h);
        const next = new Float64Array(N);
        for (let j = 0; j < N; j++) {
          const r = sigmoid(pre[j] + rec[j] + bh[j]);
          const z = sigmoid(pre[N + j] + rec[N + j] + bh[N + j]);
          const hn = rec[2 * N + j] + bh[2 * N + j];
          const n = Math.tanh(pre[2 * N + j] + r * hn);
          next[j] = (1 - z) * n + z * h[j];
          // Row j of ∂h'/∂h: z e_j + (h - n) z(1-z) Wh_z + (1-z)(1-n²) (r Wh_n + hn r(1-r) Wh_r).
          const cz = (h[j] - n) * z * (1 - z);
          const cn = (1 - z) * (1 - n * n);
          const cnn = cn * r;
          const cr = cn * hn * r * (1 - r);
          const row = j * N;
          for (let k = 0; k < N; k++) {
            J[row + k] = cz * Wh[(N + j) * N + k] + cnn * Wh[(2 * N + j) * N + k] + cr * Wh[j * N + k];
          }
          J[row + j] += z;
        }
        h.set(next);
        visit(t, J);
      }
    },
  };
}

function lstmChain(cell: LstmCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units, D = cell.inputDim, G = 4 * N, S = 2 * N;
  return {
    size: S,
    count: T,
    description: '∂(h_T, c_T)/∂(h_0, c_0)',
    run(visit) {
      const Wx = cell.Wx.value, Wh = cell.Wh.value, b = cell.b.value;
      const h = new Float64Array(N), c = new Float64Array(N);
      const J = new Float64Array(S * S);
      for (let t = 0; t < T; t++) {
        const pre = gatePreactivations(G, D, Wx, b, xs, t);
        const rec = recurrentProjection(G, N, Wh, h);
        const hNext = new Float64Array(N), cNext = new Float64Array(N);
        J.fill(0);
        for (let j = 0; j < N; j++) {
          const i = sigmoid(pre[j] + rec[j]);
          const f = sigmoid(pre[N + j] + rec[N + j]);
          const g = Math.tanh(pre[2 * N + j] + rec[2 * N + j]);
          const o = sigmoid(pre[3 * N + j] + rec[3 * N + j]);
          const cj = f * c[j] + i * g;
          const tc = Math.tanh(cj);
          cNext[j] = cj;
          hNext[j] = o * tc;
          // ∂c'/∂h row j = c f(1-f) Wh_f + g i(1-i) Wh_i + i (1-g²) Wh_g;  ∂c'/∂c = diag(f).
          // ∂h'/∂h row j = tanh(c') o(1-o) Wh_o + o (1 - tanh²c') ∂c'/∂h;  ∂h'/∂c = diag(o (1 - tanh²c') f).
          const cf = c[j] * f * (1 - f), ci = g * i * (1 - i), cg = i * (1 - g * g);
          const co = tc * o * (1 - o), ch = o * (1 - tc * tc);
          const hRow = j * S, cRow = (N + j) * S;
          for (let k = 0; k < N; k++) {
            const dc = cf * Wh[(N + j) * N + k] + ci * Wh[j * N + k] + cg * Wh[(2 * N + j) * N + k];
            J[cRow + k] = dc;
            J[hRow + k] = co * Wh[(3 * N + j) * N + k] + ch * dc;
          }
          J[cRow + N + j] = f;
          J[hRow + N + j] = ch * f;
        }
        h.set(hNext);
        c.set(cNext);
        visit(t, J);
      }
    },
  };
}
