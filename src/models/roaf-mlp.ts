// RoafMLP (docs/math.md): a trained input projection x_0 = P u + p, L ROAF layers of width N, and a trained
// readout V x_L + c. With alpha = 0 it is the vanilla deep tanh MLP; with O = I and alpha = beta = 1 the
// un-normalised residual MLP: the baselines `mlp` and `resmlp` are this class with those settings.
//
// The L layers run as one stack (Backend.roafMlpForward/roafMlpBackward: two kernel calls per step instead of
// 2L). For that the layers' weights are declared all W's first, then all b's, so the flat parameter buffer
// holds them stacked, (L, N, N) and (L, N). A backward pass with a GradientHook runs layer by layer instead,
// so the hook sees every ∂loss/∂x_l while it is computed.
//
// Activation memory: `full` keeps every layer's input and activation, (2L+1)·B·N floats. `checkpoint` keeps
// only the input of every k-th layer ("segment" of k layers) and recomputes each segment's activations
// during the backward pass, one stack-kernel call per segment: (L/k + 2k + 1)·B·N floats, smallest near
// k = sqrt(L/2), for one extra forward pass. The kernels compute each layer the same way whatever the length
// of the stack they are given, so both modes give the same results bit for bit (tested).

import type { Backend, FilterOperand, FloatArray } from '../backend/backend.js';
import { makeFilters } from '../nn/filter.js';
import { Linear, RoafLayer } from '../nn/layers.js';
import { ParameterStore } from '../nn/parameters.js';
import { Random } from '../util/random.js';
import type { ModelConfig } from './config.js';
import type { GradientHook, Model } from './model.js';
import { defaultSegmentLength, type ActivationMemory, type MemoryMode } from './kind.js';

export class RoafMLP implements Model {
  readonly params: ParameterStore;
  readonly filters: readonly FilterOperand[];
  readonly recurrent = false;
  readonly input: Linear;
  readonly layers: RoafLayer[] = [];
  /** Each layer's filter (identity where alpha = 0 applies none), as the stack kernels take them. */
  private readonly layerFilters: readonly FilterOperand[];
  readonly readout: Linear;
  private capacity = 0;
  private memoryMode: MemoryMode = 'full';
  /** k: layers per segment; L in `full` mode (one segment). */
  private segmentLength: number;
  /** full: (L+1, B, N) layer inputs x_0..x_L. checkpoint: (k+1, B, N), the inputs of the current segment. */
  private xs!: FloatArray;
  /** full: (L, B, N) tanh activations. checkpoint: (k, B, N), those of the current segment. */
  private as!: FloatArray;
  /** checkpoint: (S+1, B, N), x at every segment start s·k and x_L (S = ceil(L/k) segments). */
  private checkpoints: FloatArray | null = null;
  /** checkpoint: which segment xs/as hold now (-1: none), so diagnostics walking the layers recompute each once. */
  private materialised = -1;
  /** checkpoint mode: each segment's slice of the filter list, made once. */
  private filterSegments: Array<readonly FilterOperand[] | undefined> = [];
  private logits!: FloatArray; // (B, K)
  private grads!: FloatArray; // (2, B, N): ∂loss/∂x_L, and ping-pong ∂loss/∂x_l on the per-layer path
  private gz!: FloatArray; // (B, N) scratch of the per-layer path

  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
  ) {
    const { depth: L, width: N, inputDim: D, outputs: K, dtype, seed } = config;
    this.params = new ParameterStore(dtype, backend);
    this.filters =
      config.alpha === 0 ? [] : makeFilters(config.filter, N, L, config.sharedFilter, seed, dtype, backend);
    const identity: FilterOperand = { kind: 'identity', n: N };
    this.input = new Linear(this.params, 'input', D, N);
    const Ws = Array.from({ length: L }, (_, l) => RoafLayer.declareWeight(this.params, `layers.${l}`, N));
    const bs = Array.from({ length: L }, (_, l) => RoafLayer.declareBias(this.params, `layers.${l}`, N));
    for (let l = 0; l < L; l++) {
      const filter = this.filters[l] ?? identity; // alpha = 0 never applies the filter
      this.layers.push(
        new RoafLayer(this.params, `layers.${l}`, N, config.alpha, config.beta, filter, { W: Ws[l]!, b: bs[l]! }),
      );
    }
    this.layerFilters = this.layers.map((layer) => layer.filter);
    this.readout = new Linear(this.params, 'readout', N, K);
    this.params.allocate(new Random(seed));
    this.segmentLength = L;
  }

  /**
   * Chooses how activations are kept: `full`, or `checkpoint` with segments of `segmentLength` layers
   * (default about sqrt(L/2)). Results are the same either way; buffers are reallocated at the next forward.
   */
  setMemoryMode(mode: MemoryMode, segmentLength?: number): void {
    const L = this.config.depth;
    const k = mode === 'full' ? L : Math.min(L, segmentLength ?? defaultSegmentLength(L));
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`segment length must be an integer >= 1, got ${k}`);
    this.memoryMode = mode;
    this.segmentLength = k;
    this.capacity = 0;
    this.materialised = -1;
    this.filterSegments = [];
  }

  get memory(): ActivationMemory {
    return { mode: this.memoryMode, segmentLength: this.segmentLength };
  }

  /** Layers [first, first + count)'s W and b in `buffer` (values or gradients) as stacked views: (count, N, N), (count, N). */
  private stacked(buffer: FloatArray, first: number, count: number): { Ws: FloatArray; bs: FloatArray } {
    const N = this.config.width;
    const W0 = this.layers[0]!.W.offset + first * N * N;
    const b0 = this.layers[0]!.b.offset + first * N;
    return { Ws: buffer.subarray(W0, W0 + count * N * N), bs: buffer.subarray(b0, b0 + count * N) };
  }

  outputRows(B: number): number {
    return B;
  }

  private reserve(B: number): void {
    if (B <= this.capacity) return;
    const { depth: L, width: N, outputs: K, dtype } = this.config;
    this.capacity = B;
    const k = this.segmentLength;
    const memory = this.backend;
    this.xs = memory.allocate(dtype, (k + 1) * B * N);
    this.as = memory.allocate(dtype, k * B * N);
    this.checkpoints = this.memoryMode === 'full' ? null : memory.allocate(dtype, (Math.ceil(L / k) + 1) * B * N);
    this.materialised = -1;
    this.logits = memory.allocate(dtype, B * K);
    this.grads = memory.allocate(dtype, 2 * B * N);
    this.gz = memory.allocate(dtype, B * N);
  }

  /** Layers [first, first + count) of segment s. */
  private segment(s: number): { first: number; count: number } {
    const k = this.segmentLength;
    return { first: s * k, count: Math.min(k, this.config.depth - s * k) };
  }

  /** Runs the stack kernel over `count` layers from `first`, reading x_first in xs[0] and writing xs[1..], as. */
  private stackForward(B: number, first: number, count: number): void {
    const { width: N, alpha, beta } = this.config;
    const { Ws, bs } = this.stacked(this.params.values, first, count);
    this.backend.roafMlpForward({
      L: count,
      B,
      N,
      alpha,
      beta,
      filters: this.segmentFilters(first, count),
      Ws,
      bs,
      xs: this.xs.subarray(0, (count + 1) * B * N),
      as: this.as.subarray(0, count * B * N),
    });
  }

  /**
   * The filters of layers [first, first + count): the same array object every step (the whole list in full
   * mode, one cached list per segment otherwise), so a backend may cache what it derives from the list.
   */
  private segmentFilters(first: number, count: number): readonly FilterOperand[] {
    if (first === 0 && count === this.layerFilters.length) return this.layerFilters;
    const s = first / this.segmentLength;
    let list = this.filterSegments[s];
    if (list === undefined) {
      list = this.layerFilters.slice(first, first + count);
      this.filterSegments[s] = list;
    }
    return list;
  }

  /** checkpoint mode: the view of segment row r (x at segment start r·k, or x_L for r = S). */
  private checkpointRow(r: number, B: number): FloatArray {
    const size = B * this.config.width;
    return (this.checkpoints as FloatArray).subarray(r * size, (r + 1) * size);
  }

  /** checkpoint mode: recomputes segment s's inputs and activations into xs, as from its stored input. */
  private materialise(s: number, B: number): { first: number; count: number } {
    const seg = this.segment(s);
    if (this.materialised !== s) {
      this.xs.set(this.checkpointRow(s, B), 0);
      this.stackForward(B, seg.first, seg.count);
      this.materialised = s;
    }
    return seg;
  }

  /** x_l (B, N) of the last forward (in checkpoint mode, recomputing its segment if need be). */
  private layerInput(l: number, B: number): FloatArray {
    const size = B * this.config.width;
    if (this.memoryMode === 'full') return this.xs.subarray(l * size, (l + 1) * size);
    const S = Math.ceil(this.config.depth / this.segmentLength);
    if (l === this.config.depth) return this.checkpointRow(S, B);
    const { first } = this.materialise(Math.floor(l / this.segmentLength), B);
    return this.xs.subarray((l - first) * size, (l - first + 1) * size);
  }

  /** a_l (B, N) of the last forward, likewise. */
  private activation(l: number, B: number): FloatArray {
    const size = B * this.config.width;
    const first = this.memoryMode === 'full' ? 0 : this.materialise(Math.floor(l / this.segmentLength), B).first;
    return this.as.subarray((l - first) * size, (l - first + 1) * size);
  }

  forward(B: number, _T: number, inputs: FloatArray): FloatArray {
    this.reserve(B);
    const backend = this.backend;
    const { depth: L, width: N } = this.config;
    const size = B * N;
    const x0 = this.xs.subarray(0, size);
    this.input.forward(backend, B, inputs, x0);
    if (this.memoryMode === 'full') {
      this.stackForward(B, 0, L);
    } else {
      const S = Math.ceil(L / this.segmentLength);
      this.checkpointRow(0, B).set(x0);
      for (let s = 0; s < S; s++) {
        const { first, count } = this.segment(s);
        if (s > 0) this.xs.set(this.checkpointRow(s, B), 0);
        this.stackForward(B, first, count);
        this.checkpointRow(s + 1, B).set(this.xs.subarray(count * size, (count + 1) * size));
      }
      this.materialised = S - 1;
    }
    const logits = this.logits.subarray(0, B * this.config.outputs);
    this.readout.forward(backend, B, this.layerInput(L, B), logits);
    return logits;
  }

  backward(B: number, _T: number, inputs: FloatArray, gOutputs: FloatArray, hook?: GradientHook): void {
    const backend = this.backend;
    const size = B * this.config.width;
    const L = this.layers.length;
    let gy = this.grads.subarray(0, size);
    let gx = this.grads.subarray(this.capacity * this.config.width, this.capacity * this.config.width + size);
    const gz = this.gz.subarray(0, size);
    this.readout.backward(backend, B, this.layerInput(L, B), gOutputs, gy);
    if (hook === undefined) {
      // Segments from the last to the first; in full mode the one segment is the whole stack, already computed.
      const S = Math.ceil(L / this.segmentLength);
      for (let s = S - 1; s >= 0; s--) {
        const { first, count } = this.memoryMode === 'full' ? { first: 0, count: L } : this.materialise(s, B);
        const { width: N, alpha, beta } = this.config;
        const { Ws } = this.stacked(this.params.values, first, count);
        const { Ws: gWs, bs: gbs } = this.stacked(this.params.grads, first, count);
        backend.roafMlpBackward({
          L: count,
          B,
          N,
          alpha,
          beta,
          filters: this.segmentFilters(first, count),
          Ws,
          xs: this.xs.subarray(0, (count + 1) * size),
          as: this.as.subarray(0, count * size),
          gy,
          gWs,
          gbs,
          gradSquares: null,
        });
      }
    } else {
      hook(L, gy);
      for (let l = L - 1; l >= 0; l--) {
        this.layers[l]!.backward(backend, B, this.layerInput(l, B), this.activation(l, B), gy, gx, gz);
        [gy, gx] = [gx, gy];
        hook(l, gy);
      }
    }
    this.input.backward(backend, B, inputs, gy, null);
  }

  /** The saved layer inputs x_l of the last forward, for diagnostics: (B, N) views. */
  savedLayerInput(l: number, B: number): FloatArray {
    return this.layerInput(l, B);
  }
}
