// The ROAF cell of roaf-rnn (and, with alpha = 0, of the Elman rnn): h_t = alpha O h_{t-1} + beta
// tanh(W h_{t-1} + U x_t + b). Its parameters, saved state, per-step Jacobian, theory bounds, and a
// gradient curve that goes on below the dtype's range.
//
// Shapes: T steps, B batch, D input dim, N units.

import type { FloatArray } from '../../backend/backend.js';
import { filterMatrix } from '../../nn/filter.js';
import { RoafCell } from '../../nn/layers.js';
import { PowerOfTwoScale } from '../gradient-curve.js';
import type { GradientCurve, JacobianChain } from '../kind.js';
import type { RecurrentModel } from '../recurrent.js';
import { roafStep } from './jacobian-steps.js';
import type { CellKind } from './recurrent.js';

export const roafCellKind: CellKind<RoafCell> = {
  gates: 1,
  filtered: (config) => config.alpha !== 0,
  // W ~ N(0, r²/N) with r = --recurrent-scale (1 by default); U ~ N(0, s²/D) with s = --input-scale on the
  // first layer (the task's inputs), and N(0, 1/N) above it, where the inputs are hidden states like those
  // W reads; b = --bias-init (0 by default; --bias-signs lays out its signs) on every layer.
  create: (store, name, D, config, layer, filter) =>
    new RoafCell(store, name, D, config.hidden, config.alpha, config.beta, filter, {
      inputScale: layer === 0 ? config.inputScale : 1,
      recurrentScale: config.recurrentScale ?? 1,
      biasInit: config.biasInit ?? 0,
      biasSigns: config.biasSigns ?? 'constant',
    }),
  parameters: (D, N) => [
    ['W', [N, N]],
    ['U', [N, D]],
    ['b', [N]],
  ],
  stateWidth: (N) => 3 * N, // hs, as, gzs
  jacobianChain: roafCellChain,
  boundFactors: (cell, T) => ({
    alpha: cell.alpha,
    beta: cell.beta,
    n: cell.units,
    weights: [cell.W.value],
    repeat: T,
  }),
  scaledGradientCurve: scaledCellBackward,
};

/** ∂h_t/∂h_{t-1} = alpha O + beta D_t W along the sample's trajectory from h_0 = 0. */
function roafCellChain(cell: RoafCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units,
    D = cell.inputDim;
  return {
    size: N,
    count: T,
    description: '∂h_T/∂h_0',
    run(visit) {
      const O = cell.alpha === 0 ? null : filterMatrix(cell.filter);
      const W = cell.W.value,
        U = cell.U.value,
        b = cell.b.value;
      const h = new Float64Array(N);
      const a = new Float64Array(N);
      const J = new Float64Array(N * N);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < N; i++) {
          let z = b[i]!;
          for (let k = 0; k < N; k++) z += W[i * N + k]! * h[k]!;
          for (let k = 0; k < D; k++) z += U[i * D + k]! * xs[t * D + k]!;
          a[i] = Math.tanh(z);
        }
        roafStep(N, cell.alpha, cell.beta, O, W, a, h, J);
        visit(t, J);
      }
    },
  };
}

/** Steps per backward-through-time chunk: no plausible cell shrinks or grows a gradient by 2^±100 in 16 steps. */
const CHUNK = 16;

/**
 * The model's own backward-through-time kernel run over chunks of steps, with a power-of-two rescale of
 * the gradient between chunks (see gradient-curve.ts). The cell's weight gradients go to scratch buffers
 * (the readout's accumulate into the model's, as in a backward pass).
 */
function scaledCellBackward(
  model: RecurrentModel<RoafCell>,
  cell: RoafCell,
  B: number,
  T: number,
  inputs: FloatArray,
  gOutputs: FloatArray,
): GradientCurve {
  const { hidden: N, dtype } = model.config;
  const D = cell.inputDim;
  const backend = model.backend;
  const step = B * N;
  // The states again, by the same kernel on the same inputs (the cell keeps its own copy private).
  const hs = backend.allocate(dtype, (T + 1) * step);
  const as = backend.allocate(dtype, T * step);
  const { alpha, beta, filter } = cell;
  backend.roafCellForward({
    T,
    B,
    D,
    N,
    alpha,
    beta,
    filter,
    xs: inputs,
    W: cell.W.value,
    U: cell.U.value,
    b: cell.b.value,
    hs,
    as,
  });
  const ghs = backend.allocate(dtype, T * step); // ∂loss/∂h_t, t = 1..T, as stored · 2^exponent
  model.readout.backward(backend, B, hs.subarray(T * step), gOutputs, ghs.subarray((T - 1) * step));
  const gzs = backend.allocate(dtype, CHUNK * step);
  const gW = backend.allocate(dtype, N * N),
    gU = backend.allocate(dtype, N * D),
    gb = backend.allocate(dtype, N);
  const gh0 = backend.allocate(dtype, step);
  const log10Norms = new Float64Array(T);
  const scale = new PowerOfTwoScale((values, factor) => backend.scale(values.length, values, factor));
  for (let end = T; end > 0; end -= CHUNK) {
    const start = Math.max(0, end - CHUNK);
    scale.rescale(ghs.subarray((end - 1) * step, end * step));
    const steps = end - start;
    backend.roafCellBackward({
      T: steps,
      B,
      D,
      N,
      alpha,
      beta,
      filter,
      xs: inputs.subarray(start * B * D, end * B * D),
      W: cell.W.value,
      U: cell.U.value,
      hs: hs.subarray(start * step, (end + 1) * step),
      as: as.subarray(start * step, end * step),
      ghs: ghs.subarray(start * step, end * step),
      gzs: gzs.subarray(0, steps * step),
      gW,
      gU,
      gb,
      gh0: start > 0 ? gh0 : null,
      gxs: null,
      lastStepOnly: false,
    });
    for (let t = start; t < end; t++) log10Norms[t] = scale.log10Norm(ghs.subarray(t * step, (t + 1) * step));
    // ∂loss/∂h_start flows into the previous chunk's last step (which has no loss term of its own).
    if (start > 0) ghs.subarray((start - 1) * step, start * step).set(gh0);
  }
  return { index: 'step', log10Norms };
}
