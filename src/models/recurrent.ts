// Recurrent models (SPEC §5): one cell run over the whole sequence and a trained linear readout from the
// last state (classification, regression) or from every state (per-step targets such as the copy task).
// `RoafRNN` uses the ROAF cell (alpha = 0 gives the vanilla Elman RNN); LSTM and GRU baselines use the
// same class with their cells, so they share the data path, readout, loss and optimiser.

import type { Backend, FilterOperand, FloatArray } from '../backend/backend.js';
import { makeFilters } from '../nn/filter.js';
import { GruCell, Linear, LstmCell, RoafCell, type SequenceCell } from '../nn/layers.js';
import { ParameterStore } from '../nn/parameters.js';
import { Random } from '../util/random.js';
import type { ModelConfig } from './config.js';
import type { GradientHook, Model } from './model.js';

export class RecurrentModel implements Model {
  readonly params: ParameterStore;
  readonly filters: readonly FilterOperand[];
  readonly recurrent = true;
  readonly cell: SequenceCell;
  readonly readout: Linear;
  private capacity = 0;
  private outputs!: FloatArray; // (rows, K)
  private ghs!: FloatArray; // (T, B, N)
  /** The hidden states (T+1, B, N) of the last forward, which backward reads. */
  private lastStates: FloatArray | null = null;

  constructor(readonly config: ModelConfig, readonly backend: Backend) {
    const { hidden: N, inputDim: D, outputs: K, dtype, seed } = config;
    this.params = new ParameterStore(dtype, backend);
    this.filters = [];
    switch (config.model) {
      case 'lstm':
        this.cell = new LstmCell(this.params, 'cell', D, N);
        break;
      case 'gru':
        this.cell = new GruCell(this.params, 'cell', D, N);
        break;
      default: {
        const filters = config.alpha === 0 ? [] : makeFilters(config.filter, N, 1, true, seed, dtype, backend);
        this.filters = filters;
        const filter = filters[0] ?? { kind: 'identity', n: N };
        this.cell = new RoafCell(this.params, 'cell', D, N, config.alpha, config.beta, filter, {
          inputScale: config.inputScale,
        });
      }
    }
    this.readout = new Linear(this.params, 'readout', N, K);
    this.params.allocate(new Random(seed));
  }

  outputRows(B: number, T: number): number {
    return this.config.readout === 'every' ? T * B : B;
  }

  private reserve(B: number, T: number): void {
    if (T * B <= this.capacity) return;
    this.capacity = T * B;
    const { hidden: N, outputs: K, dtype } = this.config;
    this.outputs = this.backend.allocate(dtype, T * B * K);
    this.ghs = this.backend.allocate(dtype, T * B * N);
  }

  forward(B: number, T: number, inputs: FloatArray): FloatArray {
    this.reserve(B, T);
    const N = this.config.hidden;
    const hs = this.cell.forward(this.backend, T, B, inputs);
    const rows = this.outputRows(B, T);
    const out = this.outputs.subarray(0, rows * this.config.outputs);
    // 'every' reads h_1..h_T, 'last' reads h_T: both are the tail of hs.
    this.readout.forward(this.backend, rows, hs.subarray((T + 1) * B * N - rows * N), out);
    this.lastStates = hs;
    return out;
  }

  backward(B: number, T: number, inputs: FloatArray, gOutputs: FloatArray, hook?: GradientHook): void {
    const N = this.config.hidden;
    const hs = this.lastStates;
    if (hs === null) throw new Error('backward called before forward');
    const ghs = this.ghs.subarray(0, T * B * N);
    const rows = this.outputRows(B, T);
    // A readout of the last state puts a loss term at h_T only: unless a hook reads the gradient of every step,
    // the cell need not be given zeros for the others nor store their gradients (T·B·N floats per step).
    const lastStepOnly = rows === B && hook === undefined;
    if (!lastStepOnly) ghs.fill(0, 0, T * B * N - rows * N);
    this.readout.backward(this.backend, rows, hs.subarray((T + 1) * B * N - rows * N), gOutputs, ghs.subarray(T * B * N - rows * N));
    this.cell.backward(this.backend, T, B, inputs, ghs, lastStepOnly);
    if (hook) {
      for (let t = T; t >= 1; t--) hook(t, ghs.subarray((t - 1) * B * N, t * B * N));
    }
  }
}
