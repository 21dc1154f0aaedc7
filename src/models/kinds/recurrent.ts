// The recurrent kinds (roaf-rnn, rnn, lstm, gru): one RecurrentModel class with k stacked layers of a
// cell. What depends on the cell (its parameters, saved state, gate count, Jacobian, bounds) is a
// `CellKind` (roaf-cell.ts, lstm.ts, gru.ts); what depends on the stack and the readout is declared here
// once, for every cell.
//
// Shapes: T steps, B batch, D input dim, N units, K outputs, k layers; layer j reads D_j = D (j = 0) or N.

import type { FloatArray } from '../../backend/backend.js';
import type { TaskName } from '../../data/tasks.js';
import type { SequenceCell } from '../../nn/layers.js';
import type { ModelConfig, ModelKind } from '../config.js';
import { hookGradientCurve } from '../gradient-curve.js';
import {
  isNotApplicable,
  notApplicable,
  type BoundFactors,
  type GradientCurve,
  type JacobianChain,
  type ModelKindSpec,
  type NotApplicable,
  type SizeDefaults,
  type TensorSpec,
} from '../kind.js';
import { RecurrentModel, cellName, type CellFactory } from '../recurrent.js';
import { filterTensors, isDenseFilter, parameterTensor } from '../tensors.js';

/** What a recurrent kind's cell declares, beyond how to build it. */
export interface CellKind<C extends SequenceCell> extends CellFactory<C> {
  /** G: the cell's weights map each input to G·N values (1: ROAF/Elman; 4: LSTM's gates; 3: GRU's). */
  readonly gates: number;
  /** One layer's parameters when it reads D inputs: name suffixes and shapes, in the order `create` declares them. */
  parameters(D: number, N: number): Array<[suffix: string, shape: number[]]>;
  /** Values per (step, sequence) row of the cell's saved-state buffers, which hold (T+1)·B rows (SequenceBuffers). */
  stateWidth(N: number): number;
  /** The per-step Jacobians ∂h_t/∂h_{t-1} of a single-layer model, for one sample xs (T, D). */
  jacobianChain(cell: C, xs: ArrayLike<number>, T: number): JacobianChain | NotApplicable;
  /** Bound factors of a single-layer model over T steps. */
  boundFactors(cell: C, T: number): BoundFactors | NotApplicable;
  /**
   * A gradient curve that goes on below the dtype's range (see gradient-curve.ts), for a single layer read at
   * its last state; without one, the curve comes from the model's backward and its hook.
   */
  scaledGradientCurve?(
    model: RecurrentModel<C>,
    cell: C,
    B: number,
    T: number,
    inputs: FloatArray,
    gOutputs: FloatArray,
  ): GradientCurve;
}

/**
 * Model sizes of the recurrent kinds, by task (docs/defaults.md): sMNIST/psMNIST use 256 units and input
 * weights ×3; the adding problem input weights ×10, which let tanh saturate into a gate on the marker
 * channel (MSE 0.003-0.004 after 20 epochs at T = 200, where scale 1 stays on the 0.167 plateau).
 */
function recurrentSizes(task: TaskName): SizeDefaults {
  const sequentialMnist = task === 'smnist' || task === 'psmnist';
  return {
    depth: 100,
    width: 64,
    hidden: sequentialMnist ? 256 : 128,
    inputScale: sequentialMnist ? 3 : task === 'adding' ? 10 : 1,
  };
}

export interface RecurrentOptions<C extends SequenceCell> {
  name: ModelKind;
  summary: string;
  fixed: Partial<ModelConfig>;
  /** A plain function (no `this`): the kind passes it on as its own. */
  defaultCoefficients: (depth: number) => { alpha: number; beta: number };
  /** Whether alpha and beta are the user's to choose, and so part of the model's description. */
  tunable: boolean;
  cell: CellKind<C>;
}

const STACK_SPECTRUM =
  'not implemented for k > 1 stacked layers: the state of a stack is (h^1_t, ..., h^k_t) and its ' +
  'step Jacobian is block lower-triangular (each layer also reads the one below at the same step), while the ' +
  "chain here is a single layer's ∂h_T/∂h_0";
const STACK_BOUNDS =
  "the bounds alpha ± beta·||W||₂ (docs/math.md) cover a single layer's recurrence; in a stack of " +
  'k > 1 layers each layer also reads the one below through U, which they do not bound';

export function recurrentKind<C extends SequenceCell>(options: RecurrentOptions<C>): ModelKindSpec<RecurrentModel<C>> {
  const { name, cell, tunable } = options;
  const layers = (config: ModelConfig): number => config.layers ?? 1;
  const size = (config: ModelConfig, format: (n: number) => string): string =>
    `${layers(config) > 1 ? `k=${format(layers(config))} ` : ''}N=${format(config.hidden)}`;
  return {
    name,
    summary: options.summary,
    recurrent: true,
    stackable: true,
    fixed: options.fixed,
    defaultCoefficients: options.defaultCoefficients,
    sizeDefaults: recurrentSizes,
    create: (config, backend) => new RecurrentModel(config, backend, cell),

    // Every layer's parameters (`cell.*` for k = 1, `cells.{j}.*` for k > 1), the readout, then the filters.
    tensors(config) {
      const { hidden: N, inputDim: D, outputs: K, dtype } = config;
      const k = layers(config);
      const tensors: TensorSpec[] = [];
      for (let j = 0; j < k; j++) {
        for (const [suffix, shape] of cell.parameters(j === 0 ? D : N, N)) {
          tensors.push(parameterTensor(`${cellName(j, k)}.${suffix}`, shape, dtype));
        }
      }
      tensors.push(parameterTensor('readout.W', [K, N], dtype), parameterTensor('readout.b', [K], dtype));
      if (!cell.filtered(config)) return { tensors, filterNames: [] };
      const filters = filterTensors(config, N, k);
      return { tensors: [...tensors, ...filters.tensors], filterNames: filters.filterNames };
    },

    // Each cell's saved state ((T+1)·B rows), the outputs (capacity T·B rows), ∂loss/∂h_t (T, B, N), and in a
    // stack the gradient passed down to the layer below (T, B, N).
    activationBytes(config, B, T) {
      const { hidden: N, outputs: K } = config;
      const k = layers(config);
      const bytes = config.dtype === 'float64' ? 8 : 4;
      return bytes * (k * (T + 1) * B * cell.stateWidth(N) + T * B * K + (k > 1 ? 2 : 1) * T * B * N);
    },

    // Recurrent products, in N x N blocks: forward h_{t-1} [W; O]ᵀ at every step; backward the weight gradient
    // at every step and ∂loss/∂h_{t-1} at all steps but the first (∂loss/∂h_0 is not needed). A ROAF cell
    // without a dense filter (alpha = 0 or an O(N) filter) has no O block. Layers above the first also pass
    // ∂loss/∂(their inputs) down.
    flops(config, B, T) {
      const { hidden: N, inputDim: D, outputs: K } = config;
      const G = cell.gates;
      const filter = cell.filtered(config) && isDenseFilter(config.filter) ? 1 : 0;
      const block = 2 * B * N * N;
      const rows = config.readout === 'every' ? T * B : B;
      const readout = 2 * rows * N * K;
      let forward = readout,
        backward = 2 * readout;
      for (let j = 0; j < layers(config); j++) {
        const input = 2 * B * (j === 0 ? D : N) * N * G; // per step: x_t Uᵀ forward, gU backward
        forward += T * (block * (G + filter) + input);
        backward += (T - 1) * block * (G + filter) + T * (block * G + input) + (j > 0 ? T * input : 0);
      }
      return { forward, train: forward + backward };
    },

    labels: {
      curve: 'step',
      size,
      describe: (config) =>
        `${name} ${size(config, String)}` +
        (tunable ? ` α=${config.alpha} β=${Number(config.beta.toPrecision(3))}` : ''),
      configRows: (config, format) => [
        ['hidden units N', format(config.hidden)],
        ...(layers(config) > 1 ? [['stacked layers k', format(layers(config))] as [string, string]] : []),
      ],
      extent: (config, T) => `${T} steps${layers(config) > 1 ? ` (top of ${layers(config)} layers)` : ''}`,
    },

    jacobianChain(model, input, T) {
      return model.cells.length === 1 ? cell.jacobianChain(model.cell, input, T) : notApplicable(STACK_SPECTRUM);
    },

    gradientCurve(model, B, T, inputs, gOutputs) {
      if (model.cells.length === 1 && model.config.readout === 'last' && cell.scaledGradientCurve) {
        return cell.scaledGradientCurve(model, model.cell, B, T, inputs, gOutputs);
      }
      // A stack's curve is ∂loss/∂h_t of the top layer, which model.backward passes to the hook.
      return hookGradientCurve(model, 'step', B, T, inputs, gOutputs);
    },

    boundFactors(model, T) {
      const single = cell.boundFactors(model.cell, T);
      return model.cells.length === 1 || isNotApplicable(single) ? single : notApplicable(STACK_BOUNDS);
    },
  };
}
