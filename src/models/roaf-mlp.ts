// RoafMLP (SPEC §5): a trained input projection x_0 = P u + p, L ROAF layers of width N, and a trained
// readout V x_L + c. With alpha = 0 it is the vanilla deep tanh MLP; with O = I and alpha = beta = 1 the
// un-normalised residual MLP: the baselines `mlp` and `resmlp` are this class with those settings.
//
// The L layers run as one stack (Backend.roafMlpForward/roafMlpBackward: two kernel calls per step instead of
// 2L). For that the layers' weights are declared all W's first, then all b's, so the flat parameter buffer
// holds them stacked, (L, N, N) and (L, N). A backward pass with a GradientHook runs layer by layer instead,
// so the hook sees every ∂loss/∂x_l while it is computed.

import type { Backend, FilterOperand, FloatArray } from '../backend/backend.js';
import { makeFilters } from '../nn/filter.js';
import { Linear, RoafLayer } from '../nn/layers.js';
import { ParameterStore } from '../nn/parameters.js';
import { Random } from '../util/random.js';
import type { ModelConfig } from './config.js';
import type { GradientHook, Model } from './model.js';

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
  private xs!: FloatArray; // (L+1, B, N): layer inputs x_0..x_L
  private as!: FloatArray; // (L, B, N): tanh activations
  private logits!: FloatArray; // (B, K)
  private grads!: FloatArray; // (2, B, N): ∂loss/∂x_L, and ping-pong ∂loss/∂x_l on the per-layer path
  private gz!: FloatArray; // (B, N) scratch of the per-layer path

  constructor(readonly config: ModelConfig, readonly backend: Backend) {
    const { depth: L, width: N, inputDim: D, outputs: K, dtype, seed } = config;
    this.params = new ParameterStore(dtype, backend);
    this.filters = config.alpha === 0 ? [] : makeFilters(config.filter, N, L, config.sharedFilter, seed, dtype, backend);
    const identity: FilterOperand = { kind: 'identity', n: N };
    this.input = new Linear(this.params, 'input', D, N);
    const Ws = Array.from({ length: L }, (_, l) => RoafLayer.declareWeight(this.params, `layers.${l}`, N));
    const bs = Array.from({ length: L }, (_, l) => RoafLayer.declareBias(this.params, `layers.${l}`, N));
    for (let l = 0; l < L; l++) {
      const filter = this.filters[l] ?? identity; // alpha = 0 never applies the filter
      this.layers.push(new RoafLayer(this.params, `layers.${l}`, N, config.alpha, config.beta, filter, { W: Ws[l], b: bs[l] }));
    }
    this.layerFilters = this.layers.map((layer) => layer.filter);
    this.readout = new Linear(this.params, 'readout', N, K);
    this.params.allocate(new Random(seed));
  }

  /** Every layer's W and b in `buffer` (the values or the gradients) as stacked views: (L, N, N) and (L, N). */
  private stacked(buffer: FloatArray): { Ws: FloatArray; bs: FloatArray } {
    const { depth: L, width: N } = this.config;
    const W0 = this.layers[0].W.offset;
    const b0 = this.layers[0].b.offset;
    return { Ws: buffer.subarray(W0, W0 + L * N * N), bs: buffer.subarray(b0, b0 + L * N) };
  }

  outputRows(B: number): number {
    return B;
  }

  private reserve(B: number): void {
    if (B <= this.capacity) return;
    const { depth: L, width: N, outputs: K, dtype } = this.config;
    const memory = this.backend;
    this.capacity = B;
    this.xs = memory.allocate(dtype, (L + 1) * B * N);
    this.as = memory.allocate(dtype, L * B * N);
    this.logits = memory.allocate(dtype, B * K);
    this.grads = memory.allocate(dtype, 2 * B * N);
    this.gz = memory.allocate(dtype, B * N);
  }

  /** x_l (B, N) for the current batch size. */
  private layerInput(l: number, B: number): FloatArray {
    const size = B * this.config.width;
    return this.xs.subarray(l * size, (l + 1) * size);
  }

  private activation(l: number, B: number): FloatArray {
    const size = B * this.config.width;
    return this.as.subarray(l * size, (l + 1) * size);
  }

  forward(B: number, _T: number, inputs: FloatArray): FloatArray {
    this.reserve(B);
    const backend = this.backend;
    const { depth: L, width: N, alpha, beta } = this.config;
    this.input.forward(backend, B, inputs, this.layerInput(0, B));
    const { Ws, bs } = this.stacked(this.params.values);
    backend.roafMlpForward({
      L, B, N, alpha, beta, filters: this.layerFilters, Ws, bs, xs: this.xs.subarray(0, (L + 1) * B * N), as: this.as.subarray(0, L * B * N),
    });
    const logits = this.logits.subarray(0, B * this.config.outputs);
    this.readout.forward(backend, B, this.layerInput(this.layers.length, B), logits);
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
      const { width: N, alpha, beta } = this.config;
      const { Ws } = this.stacked(this.params.values);
      const { Ws: gWs, bs: gbs } = this.stacked(this.params.grads);
      backend.roafMlpBackward({
        L, B, N, alpha, beta, filters: this.layerFilters, Ws, xs: this.xs.subarray(0, (L + 1) * size),
        as: this.as.subarray(0, L * size), gy, gWs, gbs, gradSquares: null,
      });
    } else {
      hook(L, gy);
      for (let l = L - 1; l >= 0; l--) {
        this.layers[l].backward(backend, B, this.layerInput(l, B), this.activation(l, B), gy, gx, gz);
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
