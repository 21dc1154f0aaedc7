// Layers and cells: small classes that declare their parameters, run a forward pass that saves exactly
// what the backward pass needs, and a hand-written backward pass (docs/math.md). All arithmetic goes through
// the Backend; the caller owns the activation buffers, so a model allocates them once per batch size.
//
// Shapes: B batch, T steps, N width/units, D input dim, K outputs.

import type { Backend, FilterOperand, FloatArray, GruSaved, LstmSaved } from '../backend/backend.js';
import {
  alternatingInit,
  constantInit,
  normalInit,
  uniformInit,
  zeroInit,
  type Parameter,
  type ParameterStore,
} from './parameters.js';

/** y = x Wᵀ + b: W (out, in), b (out). Initialised like PyTorch's nn.Linear: uniform(±1/sqrt(in)). */
export class Linear {
  readonly W: Parameter;
  readonly b: Parameter;
  constructor(
    store: ParameterStore,
    name: string,
    readonly inputs: number,
    readonly outputs: number,
  ) {
    const bound = 1 / Math.sqrt(inputs);
    this.W = store.declare(`${name}.W`, [outputs, inputs], uniformInit(bound));
    this.b = store.declare(`${name}.b`, [outputs], uniformInit(bound));
  }

  /** x (rows, in) -> y (rows, out). */
  forward(backend: Backend, rows: number, x: FloatArray, y: FloatArray): void {
    const { inputs, outputs } = this;
    backend.gemm({
      transA: false,
      transB: true,
      M: rows,
      N: outputs,
      K: inputs,
      alpha: 1,
      A: x,
      lda: inputs,
      B: this.W.value,
      ldb: inputs,
      beta: 0,
      C: y,
      ldc: outputs,
    });
    backend.addRowVector(rows, this.outputs, y, this.b.value);
  }

  /** Accumulates gW += gyᵀ x, gb += Σ gy; writes gx = gy W unless null. */
  backward(backend: Backend, rows: number, x: FloatArray, gy: FloatArray, gx: FloatArray | null): void {
    const { inputs, outputs } = this;
    backend.gemm({
      transA: true,
      transB: false,
      M: outputs,
      N: inputs,
      K: rows,
      alpha: 1,
      A: gy,
      lda: outputs,
      B: x,
      ldb: inputs,
      beta: 1,
      C: this.W.grad,
      ldc: inputs,
    });
    backend.sumRows(rows, outputs, gy, this.b.grad);
    if (gx !== null) {
      backend.gemm({
        transA: false,
        transB: false,
        M: rows,
        N: inputs,
        K: outputs,
        alpha: 1,
        A: gy,
        lda: outputs,
        B: this.W.value,
        ldb: inputs,
        beta: 0,
        C: gx,
        ldc: inputs,
      });
    }
  }
}

/**
 * One ROAF layer, x_{l+1} = alpha O x_l + beta tanh(W x_l + b).
 * W ~ N(0, 1/N) (the initialisation docs/defaults.md describes), b = 0; O fixed, not trained.
 */
export class RoafLayer {
  readonly W: Parameter;
  readonly b: Parameter;
  constructor(
    store: ParameterStore,
    name: string,
    readonly width: number,
    readonly alpha: number,
    readonly beta: number,
    readonly filter: FilterOperand,
    /** Parameters declared beforehand with declareWeight/declareBias (RoafMLP stacks all W's, then all b's). */
    declared?: { W: Parameter; b: Parameter },
  ) {
    this.W = declared?.W ?? RoafLayer.declareWeight(store, name, width);
    this.b = declared?.b ?? RoafLayer.declareBias(store, name, width);
  }

  /** Declares `${name}.W` (N, N) ~ N(0, 1/N). */
  static declareWeight(store: ParameterStore, name: string, width: number): Parameter {
    return store.declare(`${name}.W`, [width, width], normalInit(1 / Math.sqrt(width)));
  }

  /** Declares `${name}.b` (N) = 0. */
  static declareBias(store: ParameterStore, name: string, width: number): Parameter {
    return store.declare(`${name}.b`, [width], zeroInit);
  }

  /** x (B, N) -> a (B, N) = tanh(z), y (B, N). */
  forward(backend: Backend, B: number, x: FloatArray, a: FloatArray, y: FloatArray): void {
    const { width: N, alpha, beta, filter } = this;
    backend.roafLayerForward({ B, N, alpha, beta, filter, x, W: this.W.value, b: this.b.value, a, y });
  }

  /** gy (B, N) -> gx (B, N) unless null; accumulates gW, gb. gz (B, N) is scratch. */
  backward(
    backend: Backend,
    B: number,
    x: FloatArray,
    a: FloatArray,
    gy: FloatArray,
    gx: FloatArray | null,
    gz: FloatArray,
  ): void {
    const { width: N, alpha, beta, filter } = this;
    backend.roafLayerBackward({
      B,
      N,
      alpha,
      beta,
      filter,
      x,
      a,
      W: this.W.value,
      gy,
      gx,
      gW: this.W.grad,
      gb: this.b.grad,
      gz,
    });
  }
}

/** A recurrent cell run over a whole sequence with its own saved state, sized once per (T, B). */
export interface SequenceCell {
  readonly inputDim: number;
  readonly units: number;
  /** Allocates the saved-state buffers for up to T steps and B sequences (no-op if big enough). */
  reserve(T: number, B: number): void;
  /** xs (T, B, D) -> hidden states (T+1, B, N), h_0 = 0; returns a view of hs. */
  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray;
  /**
   * ghs (T, B, N): ∂loss/∂h_t from the loss on entry, the complete ∂loss/∂h_t on return. With `lastStepOnly`
   * only the last step's entry is read and the others are unspecified on return (see Backend.roafCellBackward).
   * Accumulates the parameter gradients. When asked with a `gxs` buffer (T, B, D), writes ∂loss/∂x_t there
   * (what a stacked model passes down to the layer below) and returns it; otherwise returns null.
   */
  backward(
    backend: Backend,
    T: number,
    B: number,
    xs: FloatArray,
    ghs: FloatArray,
    lastStepOnly: boolean,
    gxs?: FloatArray | null,
  ): FloatArray | null;
}

/**
 * A cell's saved-state buffers, by name, each `width` values per (step, sequence) row. They grow to the
 * largest (T + 1)·B rows seen (the hidden states' count, the largest of any buffer) and are reused after
 * that, so nothing is allocated in the step loop.
 */
class SequenceBuffers<Name extends string> {
  private rows = 0;
  private readonly buffers = {} as Record<Name, FloatArray>;

  constructor(
    private readonly store: ParameterStore,
    private readonly widths: Record<Name, number>,
  ) {}

  reserve(T: number, B: number): void {
    const rows = (T + 1) * B;
    if (rows <= this.rows) return;
    this.rows = rows;
    for (const name of Object.keys(this.widths) as Name[]) {
      this.buffers[name] = this.store.memory.allocate(this.store.dtype, rows * this.widths[name]);
    }
  }

  /** The first `rows` rows of buffer `name`. */
  view(name: Name, rows: number): FloatArray {
    return this.buffers[name].subarray(0, rows * this.widths[name]);
  }
}

/**
 * The ROAF cell, h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b), run over a whole sequence.
 * W ~ N(0, recurrentScale²/N), U ~ N(0, inputScale²/D), b = biasInit (0 by default; see BIAS_SIGNS).
 */
/**
 * How `biasInit` is laid out over a ROAF cell's units: b_i = c, or b_i = (-1)^i c. With a large |c| the
 * alternating form starts half the units saturated at +1 and half at -1, so that under a cycle filter
 * (which moves unit i to unit i+1 each step) their constant outputs cancel in every unit's sum instead of
 * growing as T·c (docs/long-memory.md).
 */
export const BIAS_SIGNS = ['constant', 'alternating'] as const;
export type BiasSigns = (typeof BIAS_SIGNS)[number];

export class RoafCell implements SequenceCell {
  readonly W: Parameter;
  readonly U: Parameter;
  readonly b: Parameter;
  /** hs (T+1, B, N); as = tanh(z_t) and gzs (T, B, N). */
  private readonly buffers: SequenceBuffers<'hs' | 'as' | 'gzs'>;

  constructor(
    store: ParameterStore,
    name: string,
    readonly inputDim: number,
    readonly units: number,
    readonly alpha: number,
    readonly beta: number,
    readonly filter: FilterOperand,
    {
      inputScale = 1,
      recurrentScale = 1,
      biasInit = 0,
      biasSigns = 'constant',
    }: { inputScale?: number; recurrentScale?: number; biasInit?: number; biasSigns?: BiasSigns } = {},
  ) {
    this.W = store.declare(`${name}.W`, [units, units], normalInit(recurrentScale / Math.sqrt(units)));
    this.U = store.declare(`${name}.U`, [units, inputDim], normalInit(inputScale / Math.sqrt(inputDim)));
    this.b = store.declare(
      `${name}.b`,
      [units],
      biasInit === 0 ? zeroInit : biasSigns === 'constant' ? constantInit(biasInit) : alternatingInit(biasInit),
    );
    this.buffers = new SequenceBuffers(store, { hs: units, as: units, gzs: units });
  }

  reserve(T: number, B: number): void {
    this.buffers.reserve(T, B);
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const N = this.units;
    const hs = this.buffers.view('hs', (T + 1) * B);
    hs.fill(0, 0, B * N);
    backend.roafCellForward({
      T,
      B,
      D: this.inputDim,
      N,
      alpha: this.alpha,
      beta: this.beta,
      filter: this.filter,
      xs,
      W: this.W.value,
      U: this.U.value,
      b: this.b.value,
      hs,
      as: this.buffers.view('as', T * B),
    });
    return hs;
  }

  backward(
    backend: Backend,
    T: number,
    B: number,
    xs: FloatArray,
    ghs: FloatArray,
    lastStepOnly: boolean,
    gxs: FloatArray | null = null,
  ): FloatArray | null {
    const { buffers } = this;
    backend.roafCellBackward({
      T,
      B,
      D: this.inputDim,
      N: this.units,
      alpha: this.alpha,
      beta: this.beta,
      filter: this.filter,
      xs,
      W: this.W.value,
      U: this.U.value,
      hs: buffers.view('hs', (T + 1) * B),
      as: buffers.view('as', T * B),
      ghs,
      gzs: buffers.view('gzs', T * B),
      gW: this.W.grad,
      gU: this.U.grad,
      gb: this.b.grad,
      gh0: null,
      gxs,
      lastStepOnly,
    });
    return gxs;
  }
}

/** LSTM with PyTorch's equations, gate order [i, f, g, o] and initialisation uniform(±1/sqrt(N)); optionally b_f = forgetBias. */
export class LstmCell implements SequenceCell {
  readonly Wx: Parameter;
  readonly Wh: Parameter;
  readonly b: Parameter;
  /** hs, cs (T+1, B, N); gates and gGates (T, B, 4N). */
  private readonly buffers: SequenceBuffers<'hs' | 'cs' | 'gates' | 'gGates'>;

  constructor(
    store: ParameterStore,
    name: string,
    readonly inputDim: number,
    readonly units: number,
    { forgetBias }: { forgetBias?: number } = {},
  ) {
    const bound = 1 / Math.sqrt(units);
    this.Wx = store.declare(`${name}.Wx`, [4 * units, inputDim], uniformInit(bound));
    this.Wh = store.declare(`${name}.Wh`, [4 * units, units], uniformInit(bound));
    const uniformBias = uniformInit(bound);
    // The whole bias is drawn either way, so that a forget bias changes b_f and no other weight of the seed.
    this.b = store.declare(
      `${name}.b`,
      [4 * units],
      forgetBias === undefined
        ? uniformBias
        : (values, rng) => {
            uniformBias(values, rng);
            values.fill(forgetBias, units, 2 * units); // gate order [i, f, g, o]
          },
    );
    this.buffers = new SequenceBuffers(store, { hs: units, cs: units, gates: 4 * units, gGates: 4 * units });
  }

  reserve(T: number, B: number): void {
    this.buffers.reserve(T, B);
  }

  private saved(T: number, B: number): LstmSaved {
    return {
      hs: this.buffers.view('hs', (T + 1) * B),
      cs: this.buffers.view('cs', (T + 1) * B),
      gates: this.buffers.view('gates', T * B),
    };
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const saved = this.saved(T, B);
    saved.hs.fill(0, 0, B * this.units);
    saved.cs.fill(0, 0, B * this.units);
    backend.lstmForward({
      T,
      B,
      D: this.inputDim,
      N: this.units,
      xs,
      Wx: this.Wx.value,
      Wh: this.Wh.value,
      b: this.b.value,
      ...saved,
    });
    return saved.hs;
  }

  backward(
    backend: Backend,
    T: number,
    B: number,
    xs: FloatArray,
    ghs: FloatArray,
    lastStepOnly: boolean,
    gxs: FloatArray | null = null,
  ): FloatArray | null {
    backend.lstmBackward({
      T,
      B,
      D: this.inputDim,
      N: this.units,
      xs,
      Wx: this.Wx.value,
      Wh: this.Wh.value,
      ...this.saved(T, B),
      ghs,
      gGates: this.buffers.view('gGates', T * B),
      gWx: this.Wx.grad,
      gWh: this.Wh.grad,
      gb: this.b.grad,
      gxs,
      lastStepOnly,
    });
    return gxs;
  }
}

/** GRU with PyTorch's equations, gate order [r, z, n] and initialisation uniform(±1/sqrt(N)). */
export class GruCell implements SequenceCell {
  readonly Wx: Parameter;
  readonly Wh: Parameter;
  readonly bx: Parameter;
  readonly bh: Parameter;
  /** hs (T+1, B, N); gates, gGates (T, B, 3N); hn, gHn (T, B, N). */
  private readonly buffers: SequenceBuffers<'hs' | 'gates' | 'hn' | 'gGates' | 'gHn'>;

  constructor(
    store: ParameterStore,
    name: string,
    readonly inputDim: number,
    readonly units: number,
  ) {
    const bound = 1 / Math.sqrt(units);
    this.Wx = store.declare(`${name}.Wx`, [3 * units, inputDim], uniformInit(bound));
    this.Wh = store.declare(`${name}.Wh`, [3 * units, units], uniformInit(bound));
    this.bx = store.declare(`${name}.bx`, [3 * units], uniformInit(bound));
    this.bh = store.declare(`${name}.bh`, [3 * units], uniformInit(bound));
    this.buffers = new SequenceBuffers(store, {
      hs: units,
      gates: 3 * units,
      hn: units,
      gGates: 3 * units,
      gHn: units,
    });
  }

  reserve(T: number, B: number): void {
    this.buffers.reserve(T, B);
  }

  private saved(T: number, B: number): GruSaved {
    return {
      hs: this.buffers.view('hs', (T + 1) * B),
      gates: this.buffers.view('gates', T * B),
      hn: this.buffers.view('hn', T * B),
    };
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const saved = this.saved(T, B);
    saved.hs.fill(0, 0, B * this.units);
    backend.gruForward({
      T,
      B,
      D: this.inputDim,
      N: this.units,
      xs,
      Wx: this.Wx.value,
      Wh: this.Wh.value,
      bx: this.bx.value,
      bh: this.bh.value,
      ...saved,
    });
    return saved.hs;
  }

  backward(
    backend: Backend,
    T: number,
    B: number,
    xs: FloatArray,
    ghs: FloatArray,
    lastStepOnly: boolean,
    gxs: FloatArray | null = null,
  ): FloatArray | null {
    backend.gruBackward({
      T,
      B,
      D: this.inputDim,
      N: this.units,
      xs,
      Wx: this.Wx.value,
      Wh: this.Wh.value,
      ...this.saved(T, B),
      ghs,
      gGates: this.buffers.view('gGates', T * B),
      gHn: this.buffers.view('gHn', T * B),
      gWx: this.Wx.grad,
      gWh: this.Wh.grad,
      gbx: this.bx.grad,
      gbh: this.bh.grad,
      gxs,
      lastStepOnly,
    });
    return gxs;
  }
}
