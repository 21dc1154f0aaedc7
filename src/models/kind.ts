// What a model kind declares: the interface every entry of the registry (kinds.ts) implements, and the
// small types it speaks in. Everything that depends on the kind of a model (its fixed settings and
// defaults, its constructor, its tensors, memory and FLOPs, its labels, and what the diagnostics need)
// is asked of the kind; nothing else switches on a model's name or class. docs/model-kinds.md explains
// how to add a kind.
//
// Shapes: B batch, T steps, N width/units, L depth, D input dim, K outputs, k stacked recurrent layers.

import type { Backend, FloatArray } from '../backend/backend.js';
import type { TaskName } from '../data/tasks.js';
import type { ModelConfig, ModelKind } from './config.js';
import type { Model } from './model.js';

/** How a feed-forward stack keeps what its backward pass needs (see RoafMLP.setMemoryMode). */
export type MemoryMode = 'full' | 'checkpoint';

export interface ActivationMemory {
  mode: MemoryMode;
  /** k: layers per recomputed segment (checkpoint mode). */
  segmentLength: number;
}

/** The segment length that minimises the stored activations L/k + 2k: about sqrt(L/2). */
export function defaultSegmentLength(depth: number): number {
  return Math.max(1, Math.round(Math.sqrt(depth / 2)));
}

/** What a gradient curve indexes: layers x_0..x_L (feed-forward) or steps h_1..h_T (recurrent). */
export type CurveIndex = 'layer' | 'step';

/** Human labels of a curve index, for plots and summaries. */
export interface CurveLabels {
  /** x axis of a gradient-norm plot. */
  axis: string;
  /** The plotted quantity (y axis). */
  quantity: string;
  /** Title of a figure comparing gradient norms. */
  title: string;
  /** Names of the curve's first and last entries, e.g. 'x_0' and 'x_L'. */
  first: string;
  last: string;
  /** The symbol of the gradient's variable, 'x' or 'h'. */
  symbol: string;
}

export const CURVE_LABELS: Readonly<Record<CurveIndex, CurveLabels>> = {
  layer: {
    axis: 'layer l (0 = input of the first ROAF layer)',
    quantity: '||∂loss/∂x_l||',
    title: 'Gradient norm against layer',
    first: 'x_0',
    last: 'x_L',
    symbol: 'x',
  },
  step: {
    axis: 'time step t',
    quantity: '||∂loss/∂h_t||',
    title: 'Gradient norm against time step',
    first: 'h_1',
    last: 'h_T',
    symbol: 'h',
  },
};

/** The number of curve entry i (layer i, or step i + 1). */
export function curvePosition(index: CurveIndex, i: number): number {
  return index === 'layer' ? i : i + 1;
}

export interface GradientCurve {
  /** 'layer': entry i is x_i, i = 0..L; 'step': entry i is h_{i+1}, i = 0..T-1. */
  index: CurveIndex;
  /** log10 ||∂loss/∂x_l|| (Frobenius norm over the batch), -Infinity for an exact zero. */
  log10Norms: Float64Array;
}

/** A diagnostic a kind does not provide, with the reason a user is shown. */
export interface NotApplicable {
  readonly notApplicable: string;
}

export function notApplicable(reason: string): NotApplicable {
  return { notApplicable: reason };
}

export function isNotApplicable(value: object): value is NotApplicable {
  return 'notApplicable' in value;
}

/** Receives the Jacobian of factor `index` (0-based: layer l+1 or step t+1), (size, size) row-major. */
export type JacobianVisitor = (index: number, J: Float64Array) => void;

/** The chain of per-layer (per-step) Jacobians of one sample, whose product is the input-output Jacobian. */
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
 * What the theory bounds of a ROAF model are made of (docs/math.md): every factor's Jacobian is
 * alpha O + beta D W with O orthogonal and 0 <= D <= I, so its singular values lie in
 * [max(0, alpha - beta ||W||₂), alpha + beta ||W||₂]; the diagnostics take the spectral norms and products.
 */
export interface BoundFactors {
  alpha: number;
  beta: number;
  /** N: every W is (N, N). */
  n: number;
  /** The distinct W's in factor order: one per layer, or the one W of a cell shared by all steps. */
  weights: ArrayLike<number>[];
  /** How many factors each W stands for: 1 per layer, T for a cell. */
  repeat: number;
}

/** Matrix-product FLOPs (2·M·N·K per product) of one batch; elementwise work is not counted. */
export interface FlopEstimate {
  /** Forward + backward (the optimiser update is elementwise). */
  train: number;
  /** Forward alone. */
  forward: number;
}

/** One tensor of model.safetensors, declared from the config alone. */
export interface TensorSpec {
  /** The name in the file, e.g. 'layers.3.W' or 'filter.perm'. */
  name: string;
  /** Row-major; a weight of a map N_in -> N_out is (N_out, N_in). */
  shape: number[];
  dtype: 'F32' | 'F64' | 'I32';
  /** Where a model holds it: the trained parameter of that name, or a part of layer `layer`'s fixed filter. */
  source: { kind: 'parameter' } | { kind: 'filter'; layer: number; part: 'matrix' | 'perm' | 'signs' };
}

/** The complete tensor list of a model, in file order, and the filter tensor's name of each layer (config.json). */
export interface TensorList {
  tensors: TensorSpec[];
  filterNames: string[];
}

/** The model-size defaults a kind uses on a task (the task's training recipe is in defaults.ts). */
export interface SizeDefaults {
  depth: number;
  width: number;
  hidden: number;
  inputScale: number;
}

/** How reports, plots, the CLI and the bench name a kind's models. */
export interface KindLabels {
  /** What the gradient curve runs over (CURVE_LABELS has its axis names and titles). */
  curve: CurveIndex;
  /** The sizes in a line, e.g. 'L=1000 N=64' or 'N=128'; `format` writes each number. */
  size(config: ModelConfig, format: (n: number) => string): string;
  /** A short description, e.g. 'roaf-mlp L=1000 N=64 α=1 β=0.0316'. */
  describe(config: ModelConfig): string;
  /** The sizes as rows of a report's configuration table: [label, value written by `format`]. */
  configRows(config: ModelConfig, format: (n: number) => string): Array<[string, string]>;
  /** What a gradient curve over this model spans, for progress lines: '1,000 layers', '784 steps'. */
  extent(config: ModelConfig, T: number): string;
}

/**
 * A model kind. `M` is the class its `create` returns; the diagnostics hooks receive that model (the
 * registry only hands a kind the models it created, so method parameters may be the concrete class).
 */
export interface ModelKindSpec<M extends Model = Model> {
  /** --model's value and ModelConfig.model. */
  readonly name: ModelKind;
  /** One line for help texts and docs. */
  readonly summary: string;
  /** Inputs are sequences (T, B, D), and `hidden` is the width; otherwise samples (B, D) and `depth`, `width`. */
  readonly recurrent: boolean;
  /** Whether `layers` (k stacked recurrent layers) may exceed 1. */
  readonly stackable: boolean;
  /** Settings the kind fixes over whatever the user gave (mlp, rnn: alpha 0, beta 1; resmlp: O = I, alpha = beta = 1). */
  readonly fixed: Readonly<Partial<ModelConfig>>;
  /** Default (alpha, beta) at depth L, for what `fixed` leaves open. */
  defaultCoefficients(depth: number): { alpha: number; beta: number };
  /** Model sizes used on `task` unless the user gives them. */
  sizeDefaults(task: TaskName): SizeDefaults;
  /** Builds the model from a resolved, validated config. */
  create(config: ModelConfig, backend: Backend): M;
  /** Every tensor the checkpoint writes, from the (resolved) config alone. */
  tensors(config: ModelConfig): TensorList;
  /**
   * Bytes of the buffers a training step of B samples and T steps keeps (saved activations and gradient
   * scratch of the model and its layers), not counting the parameters, their gradients and optimiser state.
   * `memory`: how a feed-forward stack keeps its activations (default: all of them); recurrent kinds ignore it.
   */
  activationBytes(config: ModelConfig, B: number, T: number, memory?: ActivationMemory): number;
  /** Matrix-product FLOPs of a training step and of a forward pass (T = 1 for feed-forward kinds). */
  flops(config: ModelConfig, B: number, T: number): FlopEstimate;
  readonly labels: KindLabels;
  /** The per-layer (per-step) Jacobians of one sample: `input` (D) or (T, D). */
  jacobianChain(model: M, input: ArrayLike<number>, T: number): JacobianChain | NotApplicable;
  /** ||∂loss/∂x_l|| at every layer (step) after a forward on `inputs`, given ∂loss/∂outputs; accumulates gradients. */
  gradientCurve(model: M, B: number, T: number, inputs: FloatArray, gOutputs: FloatArray): GradientCurve;
  /** What the theory bounds of the input-output Jacobian over T steps are made of. */
  boundFactors(model: M, T: number): BoundFactors | NotApplicable;
}
