// The LSTM cell of the lstm kind (PyTorch's equations and gate order [i, f, g, o]): its parameters, saved
// state and per-step Jacobian. Its state is (h, c), so the Jacobian is ∂(h_t, c_t)/∂(h_{t-1}, c_{t-1}),
// 2N x 2N; h_0 = c_0 = 0 as in the model; its gradient curve goes on below float32's range. No theory bound
// applies.
//
// Shapes: T steps, D input dim, N units, G = 4N.

import type { FloatArray } from '../../backend/backend.js';
import { lstmStepBackward, recurrentInputGradient } from '../../backend/backend-base.js';
import { LstmCell } from '../../nn/layers.js';
import { stepwiseGradientCurve } from '../gradient-curve.js';
import { notApplicable, type GradientCurve, type JacobianChain } from '../kind.js';
import type { RecurrentModel } from '../recurrent.js';
import { gatePreactivations, recurrentProjection, sigmoid } from './jacobian-steps.js';
import type { CellKind } from './recurrent.js';

export const lstmCellKind: CellKind<LstmCell> = {
  gates: 4,
  filtered: () => false,
  // uniform(±1/sqrt(N)) on every layer, as PyTorch's nn.LSTM initialises a stack; b_f = forgetBias if given
  create: (store, name, D, config) => new LstmCell(store, name, D, config.hidden, { forgetBias: config.forgetBias }),
  parameters: (D, N) => [
    ['Wx', [4 * N, D]],
    ['Wh', [4 * N, N]],
    ['b', [4 * N]],
  ],
  stateWidth: (N) => 10 * N, // hs, cs (N each); gates, gGates (4N each)
  jacobianChain: lstmChain,
  scaledGradientCurve: scaledLstmBackward,
  boundFactors: () =>
    notApplicable(
      'no theory bound for lstm: the bounds alpha ± beta·||W||₂ (docs/math.md) cover ROAF layers and cells',
    ),
};

function lstmChain(cell: LstmCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units,
    D = cell.inputDim,
    G = 4 * N,
    S = 2 * N;
  return {
    size: S,
    count: T,
    description: '∂(h_T, c_T)/∂(h_0, c_0)',
    run(visit) {
      const Wx = cell.Wx.value,
        Wh = cell.Wh.value,
        b = cell.b.value;
      const h = new Float64Array(N),
        c = new Float64Array(N);
      const J = new Float64Array(S * S);
      for (let t = 0; t < T; t++) {
        const pre = gatePreactivations(G, D, Wx, b, xs, t);
        const rec = recurrentProjection(G, N, Wh, h);
        const hNext = new Float64Array(N),
          cNext = new Float64Array(N);
        J.fill(0);
        for (let j = 0; j < N; j++) {
          const i = sigmoid(pre[j]! + rec[j]!);
          const f = sigmoid(pre[N + j]! + rec[N + j]!);
          const g = Math.tanh(pre[2 * N + j]! + rec[2 * N + j]!);
          const o = sigmoid(pre[3 * N + j]! + rec[3 * N + j]!);
          const cj = f * c[j]! + i * g;
          const tc = Math.tanh(cj);
          cNext[j] = cj;
          hNext[j] = o * tc;
          // ∂c'/∂h row j = c f(1-f) Wh_f + g i(1-i) Wh_i + i (1-g²) Wh_g;  ∂c'/∂c = diag(f).
          // ∂h'/∂h row j = tanh(c') o(1-o) Wh_o + o (1 - tanh²c') ∂c'/∂h;  ∂h'/∂c = diag(o (1 - tanh²c') f).
          const cf = c[j]! * f * (1 - f),
            ci = g * i * (1 - i),
            cg = i * (1 - g * g);
          const co = tc * o * (1 - o),
            ch = o * (1 - tc * tc);
          const hRow = j * S,
            cRow = (N + j) * S;
          for (let k = 0; k < N; k++) {
            const dc = cf * Wh[(N + j) * N + k]! + ci * Wh[j * N + k]! + cg * Wh[(2 * N + j) * N + k]!;
            J[cRow + k] = dc;
            J[hRow + k] = co * Wh[(3 * N + j) * N + k]! + ch * dc;
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

/**
 * The LSTM's backward one step at a time (the reference's pointwise step, the backend's gemm), with (h, c)'s
 * gradients rescaled together at every step (stepwiseGradientCurve): without it, float32 underflows within a
 * few hundred steps of a psMNIST LSTM at init. The readout's gradients accumulate into the model's.
 */
function scaledLstmBackward(
  model: RecurrentModel<LstmCell>,
  cell: LstmCell,
  B: number,
  T: number,
  inputs: FloatArray,
  gOutputs: FloatArray,
): GradientCurve {
  const { hidden: N, dtype } = model.config;
  const G = 4 * N,
    step = B * N;
  const backend = model.backend;
  // The states again, by the same kernel on the same inputs (the cell keeps its own copy private).
  const hs = backend.allocate(dtype, (T + 1) * step);
  const cs = backend.allocate(dtype, (T + 1) * step);
  const gates = backend.allocate(dtype, T * B * G);
  hs.fill(0, 0, step);
  cs.fill(0, 0, step);
  const Wh = cell.Wh.value;
  backend.lstmForward({ T, B, D: cell.inputDim, N, xs: inputs, Wx: cell.Wx.value, Wh, b: cell.b.value, hs, cs, gates });
  const gh = backend.allocate(dtype, step);
  gh.fill(0);
  // ∂loss/∂c_t in float64, as the reference backward carries it: in float32 its rounding over the steps shows
  // in the curve (1e-4 relative over 20 steps of the adding problem).
  const gc = new Float64Array(step);
  model.readout.backward(backend, B, hs.subarray(T * step), gOutputs, gh);
  const gg = backend.allocate(dtype, B * G);
  return stepwiseGradientCurve(T, [gh, gc], (t) => {
    const g = gates.subarray(t * B * G, (t + 1) * B * G);
    lstmStepBackward(
      B,
      N,
      g,
      cs.subarray(t * step, (t + 1) * step),
      cs.subarray((t + 1) * step, (t + 2) * step),
      gh,
      gc,
      gg,
    );
    // ∂loss/∂h_{t-1} = gg Wh: only the readout at the last step adds a term of its own, so nothing to keep.
    recurrentInputGradient((args) => backend.gemm(args), B, N, G, gg, Wh, 0, gh);
  });
}
