// Recurrent models: k stacked cells run over the whole sequence (layer 1 reads the inputs, layer j the
// hidden states of layer j-1) and a trained linear readout from the top layer's last state
// (classification, regression) or from every state (per-step targets such as the copy task). The cell
// comes from the model's kind (kinds/roaf-cell.ts, lstm.ts, gru.ts): ROAF (alpha = 0: the vanilla Elman
// RNN), LSTM or GRU, so every recurrent kind shares the data path, readout, loss and optimiser.
//
// Shapes: T steps, B batch, D input dim, N units, K outputs, k layers.

import type { Backend, FilterOperand, FloatArray } from '../backend/backend.js';
import { makeFilters } from '../nn/filter.js';
import { Linear, type SequenceCell } from '../nn/layers.js';
import { ParameterStore } from '../nn/parameters.js';
import { Random } from '../util/random.js';
import type { ModelConfig } from './config.js';
import type { GradientHook, Model } from './model.js';

/** How a recurrent kind builds the cell of one layer. */
export interface CellFactory<C extends SequenceCell> {
  /** Whether the cell applies an orthogonal filter; then the model draws one per layer from (seed, layer). */
  filtered(config: ModelConfig): boolean;
  /**
   * Declares the parameters of layer `layer` (0-based) under `name` in `store` and builds its cell, which
   * reads D inputs per step. `filter` is the layer's filter (identity when the cell applies none).
   */
  create(store: ParameterStore, name: string, D: number, config: ModelConfig, layer: number, filter: FilterOperand): C;
}

/** The parameter-name prefix of layer j of k: `cell` for a single layer (as every checkpoint before stacks), else `cells.{j}`. */
export function cellName(j: number, k: number): string {
  return k === 1 ? 'cell' : `cells.${j}`;
}

export class RecurrentModel<C extends SequenceCell = SequenceCell> implements Model {
  readonly params: ParameterStore;
  readonly filters: readonly FilterOperand[];
  readonly recurrent = true;
  /** Layer j's cell, j = 0..k-1 (bottom first). */
  readonly cells: readonly C[];
  readonly readout: Linear;
  private capacity = 0;
  private outputs!: FloatArray; // (rows, K)
  private ghs!: FloatArray; // (T, B, N): ∂loss/∂h_t of the layer being run backwards
  private gInputs!: FloatArray; // (T, B, N), k > 1 only: ∂loss/∂(its inputs) of that layer, the next one down's ghs
  /** Every layer's hidden states (T+1, B, N) of the last forward, which backward reads. */
  private lastStates: FloatArray[] | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    cellFactory: CellFactory<C>,
  ) {
    const { hidden: N, inputDim: D, outputs: K, dtype, seed } = config;
    const k = config.layers ?? 1;
    this.params = new ParameterStore(dtype, backend);
    this.filters = cellFactory.filtered(config)
      ? makeFilters(config.filter, N, k, config.sharedFilter, seed, dtype, backend)
      : [];
    const identity: FilterOperand = { kind: 'identity', n: N };
    this.cells = Array.from({ length: k }, (_, j) =>
      cellFactory.create(this.params, cellName(j, k), j === 0 ? D : N, config, j, this.filters[j] ?? identity),
    );
    this.readout = new Linear(this.params, 'readout', N, K);
    this.params.allocate(new Random(seed));
  }

  /** The first layer's cell: the only one of a single-layer model. */
  get cell(): C {
    return this.cells[0]!;
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
    if (this.cells.length > 1) this.gInputs = this.backend.allocate(dtype, T * B * N);
  }

  forward(B: number, T: number, inputs: FloatArray): FloatArray {
    this.reserve(B, T);
    const N = this.config.hidden;
    const states: FloatArray[] = [];
    let xs = inputs;
    for (const cell of this.cells) {
      const hs = cell.forward(this.backend, T, B, xs);
      states.push(hs);
      xs = hs.subarray(B * N, (T + 1) * B * N); // h_1..h_T: the next layer's inputs
    }
    const top = states[states.length - 1]!;
    const rows = this.outputRows(B, T);
    const out = this.outputs.subarray(0, rows * this.config.outputs);
    // 'every' reads h_1..h_T, 'last' reads h_T: both are the tail of hs.
    this.readout.forward(this.backend, rows, top.subarray((T + 1) * B * N - rows * N), out);
    this.lastStates = states;
    return out;
  }

  backward(B: number, T: number, inputs: FloatArray, gOutputs: FloatArray, hook?: GradientHook): void {
    const N = this.config.hidden;
    const states = this.lastStates;
    if (states === null) throw new Error('backward called before forward');
    const k = this.cells.length;
    let ghs = this.ghs.subarray(0, T * B * N);
    let gInputs = k > 1 ? this.gInputs.subarray(0, T * B * N) : null;
    const rows = this.outputRows(B, T);
    // A readout of the last state puts a loss term at h_T only: unless a hook reads the gradient of every step,
    // the top cell need not be given zeros for the others nor store their gradients (T·B·N floats per step).
    // Lower layers get a gradient at every step from the layer above.
    const lastStepOnly = rows === B && hook === undefined;
    if (!lastStepOnly) ghs.fill(0, 0, T * B * N - rows * N);
    const top = states[k - 1]!;
    this.readout.backward(
      this.backend,
      rows,
      top.subarray((T + 1) * B * N - rows * N),
      gOutputs,
      ghs.subarray(T * B * N - rows * N),
    );
    for (let j = k - 1; j >= 0; j--) {
      const xs = j === 0 ? inputs : states[j - 1]!.subarray(B * N, (T + 1) * B * N);
      // ∂loss/∂(layer j's inputs) is ∂loss/∂h_t of layer j-1 from above: its loss terms, on entry to its backward.
      this.cells[j]!.backward(this.backend, T, B, xs, ghs, lastStepOnly && j === k - 1, j > 0 ? gInputs : null);
      if (hook && j === k - 1) {
        for (let t = T; t >= 1; t--) hook(t, ghs.subarray((t - 1) * B * N, t * B * N));
      }
      if (j > 0) [ghs, gInputs] = [gInputs!, ghs];
    }
  }
}
