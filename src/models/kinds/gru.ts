// The GRU cell of the gru kind (PyTorch's equations and gate order [r, z, n]): its parameters, saved
// state and per-step Jacobian ∂h_t/∂h_{t-1} (N x N, h_0 = 0 as in the model); its gradient curve goes on
// below float32's range. No theory bound applies.
//
// Shapes: T steps, D input dim, N units, G = 3N.

import type { FloatArray } from '../../backend/backend.js';
import { gruStepBackward, gruUpdateGateCarry, recurrentInputGradient } from '../../backend/backend-base.js';
import { GruCell } from '../../nn/layers.js';
import { stepwiseGradientCurve } from '../gradient-curve.js';
import { notApplicable, type GradientCurve, type JacobianChain } from '../kind.js';
import type { RecurrentModel } from '../recurrent.js';
import { gatePreactivations, recurrentProjection, sigmoid } from './jacobian-steps.js';
import type { CellKind } from './recurrent.js';

export const gruCellKind: CellKind<GruCell> = {
  gates: 3,
  filtered: () => false,
  // uniform(±1/sqrt(N)) on every layer, as PyTorch's nn.GRU initialises a stack
  create: (store, name, D, config) => new GruCell(store, name, D, config.hidden),
  parameters: (D, N) => [
    ['Wx', [3 * N, D]],
    ['Wh', [3 * N, N]],
    ['bx', [3 * N]],
    ['bh', [3 * N]],
  ],
  stateWidth: (N) => 9 * N, // hs, hn, gHn (N each); gates, gGates (3N each)
  jacobianChain: gruChain,
  scaledGradientCurve: scaledGruBackward,
  boundFactors: () =>
    notApplicable('no theory bound for gru: the bounds alpha ± beta·||W||₂ (docs/math.md) cover ROAF layers and cells'),
};

function gruChain(cell: GruCell, xs: ArrayLike<number>, T: number): JacobianChain {
  const N = cell.units,
    D = cell.inputDim,
    G = 3 * N;
  return {
    size: N,
    count: T,
    description: '∂h_T/∂h_0',
    run(visit) {
      const Wx = cell.Wx.value,
        Wh = cell.Wh.value,
        bx = cell.bx.value,
        bh = cell.bh.value;
      const h = new Float64Array(N);
      const J = new Float64Array(N * N);
      for (let t = 0; t < T; t++) {
        const pre = gatePreactivations(G, D, Wx, bx, xs, t);
        const rec = recurrentProjection(G, N, Wh, h);
        const next = new Float64Array(N);
        for (let j = 0; j < N; j++) {
          const r = sigmoid(pre[j]! + rec[j]! + bh[j]!);
          const z = sigmoid(pre[N + j]! + rec[N + j]! + bh[N + j]!);
          const hn = rec[2 * N + j]! + bh[2 * N + j]!;
          const n = Math.tanh(pre[2 * N + j]! + r * hn);
          next[j] = (1 - z) * n + z * h[j]!;
          // Row j of ∂h'/∂h: z e_j + (h - n) z(1-z) Wh_z + (1-z)(1-n²) (r Wh_n + hn r(1-r) Wh_r).
          const cz = (h[j]! - n) * z * (1 - z);
          const cn = (1 - z) * (1 - n * n);
          const cnn = cn * r;
          const cr = cn * hn * r * (1 - r);
          const row = j * N;
          for (let k = 0; k < N; k++) {
            J[row + k] = cz * Wh[(N + j) * N + k]! + cnn * Wh[(2 * N + j) * N + k]! + cr * Wh[j * N + k]!;
          }
          J[row + j] = J[row + j]! + z;
        }
        h.set(next);
        visit(t, J);
      }
    },
  };
}

/**
 * The GRU's backward one step at a time (the reference's pointwise step, the backend's gemm), rescaling
 * ∂loss/∂h_t by a power of two at every step (stepwiseGradientCurve). The readout's gradients accumulate
 * into the model's.
 */
function scaledGruBackward(
  model: RecurrentModel<GruCell>,
  cell: GruCell,
  B: number,
  T: number,
  inputs: FloatArray,
  gOutputs: FloatArray,
): GradientCurve {
  const { hidden: N, dtype } = model.config;
  const G = 3 * N,
    step = B * N;
  const backend = model.backend;
  // The states again, by the same kernel on the same inputs (the cell keeps its own copy private).
  const hs = backend.allocate(dtype, (T + 1) * step);
  const gates = backend.allocate(dtype, T * B * G);
  const hn = backend.allocate(dtype, T * step);
  hs.fill(0, 0, step);
  const Wh = cell.Wh.value;
  backend.gruForward({
    T,
    B,
    D: cell.inputDim,
    N,
    xs: inputs,
    Wx: cell.Wx.value,
    Wh,
    bx: cell.bx.value,
    bh: cell.bh.value,
    hs,
    gates,
    hn,
  });
  const gh = backend.allocate(dtype, step);
  gh.fill(0);
  model.readout.backward(backend, B, hs.subarray(T * step), gOutputs, gh);
  const gg = backend.allocate(dtype, B * G),
    ghRec = backend.allocate(dtype, B * G),
    gHn = backend.allocate(dtype, step),
    ghPrev = backend.allocate(dtype, step);
  return stepwiseGradientCurve(T, [gh], (t) => {
    const g = gates.subarray(t * B * G, (t + 1) * B * G);
    gruStepBackward(
      B,
      N,
      g,
      hs.subarray(t * step, (t + 1) * step),
      hn.subarray(t * step, (t + 1) * step),
      gh,
      gg,
      gHn,
      ghRec,
    );
    // ∂loss/∂h_{t-1} = ghRec Wh + gh ⊙ z: only the readout at the last step adds a term of its own.
    recurrentInputGradient((args) => backend.gemm(args), B, N, G, ghRec, Wh, 0, ghPrev);
    gruUpdateGateCarry(B, N, g, gh, ghPrev);
    gh.set(ghPrev);
  });
}
