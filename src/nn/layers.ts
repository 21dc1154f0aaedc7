// Layers and cells: small classes that declare their parameters, run a forward pass that saves exactly
// what the backward pass needs, and a hand-written backward pass (SPEC §2). All arithmetic goes through
// the Backend; the caller owns the activation buffers, so a model allocates them once per batch size.
//
// Shapes: B batch, T steps, N width/units, D input dim, K outputs.

import type { Backend, FilterOperand, FloatArray, GruSaved, LstmSaved } from '../backend/backend.js';
import { allocateFloats, normalInit, uniformInit, zeroInit, type Parameter, type ParameterStore } from './parameters.js';

/** y = x Wᵀ + b: W (out, in), b (out). Initialised like PyTorch's nn.Linear: uniform(±1/sqrt(in)). */
export class Linear {
  readonly W: Parameter;
  readonly b: Parameter;
  constructor(store: ParameterStore, name: string, readonly inputs: number, readonly outputs: number) {
    const bound = 1 / Math.sqrt(inputs);
    this.W = store.declare(`${name}.W`, [outputs, inputs], uniformInit(bound));
    this.b = store.declare(`${name}.b`, [outputs], uniformInit(bound));
  }

  /** x (rows, in) -> y (rows, out). */
  forward(backend: Backend, rows: number, x: FloatArray, y: FloatArray): void {
    backend.gemm(false, true, rows, this.outputs, this.inputs, 1, x, this.inputs, this.W.value, this.inputs, 0, y, this.outputs);
    backend.addRowVector(rows, this.outputs, y, this.b.value);
  }

  /** Accumulates gW += gyᵀ x, gb += Σ gy; writes gx = gy W unless null. */
  backward(backend: Backend, rows: number, x: FloatArray, gy: FloatArray, gx: FloatArray | null): void {
    backend.gemm(true, false, this.outputs, this.inputs, rows, 1, gy, this.outputs, x, this.inputs, 1, this.W.grad, this.inputs);
    backend.sumRows(rows, this.outputs, gy, this.b.grad);
    if (gx !== null) {
      backend.gemm(false, false, rows, this.inputs, this.outputs, 1, gy, this.outputs, this.W.value, this.inputs, 0, gx, this.inputs);
    }
  }
}

/**
 * One ROAF layer, x_{l+1} = alpha O x_l + beta tanh(W x_l + b).
 * W ~ N(0, 1/N) (the initialisation SPEC §8 measured), b = 0; O fixed, not trained.
 */
export class RoafLayer {
  readonly W: Parameter;
  readonly b: Parameter;
  constructor(
    store: ParameterStore, name: string, readonly width: number,
    readonly alpha: number, readonly beta: number, readonly filter: FilterOperand,
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
    backend.roafLayerForward(B, this.width, this.alpha, this.beta, this.filter, x, this.W.value, this.b.value, a, y);
  }

  /** gy (B, N) -> gx (B, N) unless null; accumulates gW, gb. gz (B, N) is scratch. */
  backward(
    backend: Backend, B: number, x: FloatArray, a: FloatArray, gy: FloatArray, gx: FloatArray | null, gz: FloatArray,
  ): void {
    backend.roafLayerBackward(
      B, this.width, this.alpha, this.beta, this.filter, x, a, this.W.value, gy, gx, this.W.grad, this.b.grad, gz,
    );
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
   * ghs (T, B, N): ∂loss/∂h_t from the loss on entry, the complete ∂loss/∂h_t on return.
   * Accumulates the parameter gradients.
   */
  backward(backend: Backend, T: number, B: number, xs: FloatArray, ghs: FloatArray): void;
}

/** Holds buffers that grow to the largest (T, B) seen and are reused after that. */
class Reserve {
  private capacity = 0;
  /** Returns true when buffers must be (re)allocated for `size` rows, (T + 1)·B: the largest buffer's. */
  needs(size: number): boolean {
    if (size <= this.capacity) return false;
    this.capacity = size;
    return true;
  }
}

/**
 * The ROAF cell, h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b), run over a whole sequence.
 * W ~ N(0, recurrentScale²/N), U ~ N(0, inputScale²/D), b = 0.
 */
export class RoafCell implements SequenceCell {
  readonly W: Parameter;
  readonly U: Parameter;
  readonly b: Parameter;
  private hs!: FloatArray; // (T+1, B, N)
  private as!: FloatArray; // (T, B, N)
  private gzs!: FloatArray; // (T, B, N)
  private readonly reserved = new Reserve();

  constructor(
    store: ParameterStore, name: string, readonly inputDim: number, readonly units: number,
    readonly alpha: number, readonly beta: number, readonly filter: FilterOperand,
    { inputScale = 1, recurrentScale = 1 }: { inputScale?: number; recurrentScale?: number } = {},
  ) {
    this.W = store.declare(`${name}.W`, [units, units], normalInit(recurrentScale / Math.sqrt(units)));
    this.U = store.declare(`${name}.U`, [units, inputDim], normalInit(inputScale / Math.sqrt(inputDim)));
    this.b = store.declare(`${name}.b`, [units], zeroInit);
  }

  reserve(T: number, B: number): void {
    if (!this.reserved.needs((T + 1) * B)) return;
    const dtype = this.W.value instanceof Float64Array ? 'float64' : 'float32';
    this.hs = allocateFloats(dtype, (T + 1) * B * this.units);
    this.as = allocateFloats(dtype, (T + 1) * B * this.units);
    this.gzs = allocateFloats(dtype, (T + 1) * B * this.units);
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const N = this.units;
    const hs = this.hs.subarray(0, (T + 1) * B * N);
    hs.fill(0, 0, B * N);
    backend.roafCellForward(
      T, B, this.inputDim, N, this.alpha, this.beta, this.filter,
      xs, this.W.value, this.U.value, this.b.value, hs, this.as.subarray(0, T * B * N),
    );
    return hs;
  }

  backward(backend: Backend, T: number, B: number, xs: FloatArray, ghs: FloatArray): void {
    const N = this.units;
    backend.roafCellBackward(
      T, B, this.inputDim, N, this.alpha, this.beta, this.filter,
      xs, this.W.value, this.U.value, this.hs.subarray(0, (T + 1) * B * N), this.as.subarray(0, T * B * N),
      ghs, this.gzs.subarray(0, T * B * N), this.W.grad, this.U.grad, this.b.grad, null, null,
    );
  }
}

/** LSTM with PyTorch's equations, gate order [i, f, g, o] and initialisation uniform(±1/sqrt(N)). */
export class LstmCell implements SequenceCell {
  readonly Wx: Parameter;
  readonly Wh: Parameter;
  readonly b: Parameter;
  private saved!: LstmSaved;
  private gGates!: FloatArray;
  private readonly reserved = new Reserve();

  constructor(store: ParameterStore, name: string, readonly inputDim: number, readonly units: number) {
    const bound = 1 / Math.sqrt(units);
    this.Wx = store.declare(`${name}.Wx`, [4 * units, inputDim], uniformInit(bound));
    this.Wh = store.declare(`${name}.Wh`, [4 * units, units], uniformInit(bound));
    this.b = store.declare(`${name}.b`, [4 * units], uniformInit(bound));
  }

  reserve(T: number, B: number): void {
    if (!this.reserved.needs((T + 1) * B)) return;
    const dtype = this.Wx.value instanceof Float64Array ? 'float64' : 'float32';
    const N = this.units;
    this.saved = {
      hs: allocateFloats(dtype, (T + 1) * B * N),
      cs: allocateFloats(dtype, (T + 1) * B * N),
      gates: allocateFloats(dtype, (T + 1) * B * 4 * N),
    };
    this.gGates = allocateFloats(dtype, (T + 1) * B * 4 * N);
  }

  private view(T: number, B: number): LstmSaved {
    const N = this.units;
    return {
      hs: this.saved.hs.subarray(0, (T + 1) * B * N),
      cs: this.saved.cs.subarray(0, (T + 1) * B * N),
      gates: this.saved.gates.subarray(0, T * B * 4 * N),
    };
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const saved = this.view(T, B);
    saved.hs.fill(0, 0, B * this.units);
    saved.cs.fill(0, 0, B * this.units);
    backend.lstmForward(T, B, this.inputDim, this.units, xs, this.Wx.value, this.Wh.value, this.b.value, saved);
    return saved.hs;
  }

  backward(backend: Backend, T: number, B: number, xs: FloatArray, ghs: FloatArray): void {
    backend.lstmBackward(
      T, B, this.inputDim, this.units, xs, this.Wx.value, this.Wh.value, this.view(T, B),
      ghs, this.gGates.subarray(0, T * B * 4 * this.units), this.Wx.grad, this.Wh.grad, this.b.grad, null,
    );
  }
}

/** GRU with PyTorch's equations, gate order [r, z, n] and initialisation uniform(±1/sqrt(N)). */
export class GruCell implements SequenceCell {
  readonly Wx: Parameter;
  readonly Wh: Parameter;
  readonly bx: Parameter;
  readonly bh: Parameter;
  private saved!: GruSaved;
  private gGates!: FloatArray;
  private gHn!: FloatArray;
  private readonly reserved = new Reserve();

  constructor(store: ParameterStore, name: string, readonly inputDim: number, readonly units: number) {
    const bound = 1 / Math.sqrt(units);
    this.Wx = store.declare(`${name}.Wx`, [3 * units, inputDim], uniformInit(bound));
    this.Wh = store.declare(`${name}.Wh`, [3 * units, units], uniformInit(bound));
    this.bx = store.declare(`${name}.bx`, [3 * units], uniformInit(bound));
    this.bh = store.declare(`${name}.bh`, [3 * units], uniformInit(bound));
  }

  reserve(T: number, B: number): void {
    if (!this.reserved.needs((T + 1) * B)) return;
    const dtype = this.Wx.value instanceof Float64Array ? 'float64' : 'float32';
    const N = this.units;
    this.saved = {
      hs: allocateFloats(dtype, (T + 1) * B * N),
      gates: allocateFloats(dtype, (T + 1) * B * 3 * N),
      hn: allocateFloats(dtype, (T + 1) * B * N),
    };
    this.gGates = allocateFloats(dtype, (T + 1) * B * 3 * N);
    this.gHn = allocateFloats(dtype, (T + 1) * B * N);
  }

  private view(T: number, B: number): GruSaved {
    const N = this.units;
    return {
      hs: this.saved.hs.subarray(0, (T + 1) * B * N),
      gates: this.saved.gates.subarray(0, T * B * 3 * N),
      hn: this.saved.hn.subarray(0, T * B * N),
    };
  }

  forward(backend: Backend, T: number, B: number, xs: FloatArray): FloatArray {
    this.reserve(T, B);
    const saved = this.view(T, B);
    saved.hs.fill(0, 0, B * this.units);
    backend.gruForward(T, B, this.inputDim, this.units, xs, this.Wx.value, this.Wh.value, this.bx.value, this.bh.value, saved);
    return saved.hs;
  }

  backward(backend: Backend, T: number, B: number, xs: FloatArray, ghs: FloatArray): void {
    const N = this.units;
    backend.gruBackward(
      T, B, this.inputDim, N, xs, this.Wx.value, this.Wh.value, this.view(T, B),
      ghs, this.gGates.subarray(0, T * B * 3 * N), this.gHn.subarray(0, T * B * N),
      this.Wx.grad, this.Wh.grad, this.bx.grad, this.bh.grad, null,
    );
  }
}
