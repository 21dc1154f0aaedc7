// The feed-forward kinds (roaf-mlp, mlp, resmlp): one RoafMLP class, three settings of it. What they
// share is declared here once; kinds.ts gives each its name, fixed settings and coefficients.
//
// Shapes: B batch, L depth, N width, D input dim, K outputs.

import type { Backend, FloatArray } from '../../backend/backend.js';
import type { ModelConfig, ModelKind } from '../config.js';
import { PowerOfTwoScale } from '../gradient-curve.js';
import type { GradientCurve, JacobianChain, ModelKindSpec, SizeDefaults } from '../kind.js';
import { RoafMLP } from '../roaf-mlp.js';
import { filterTensors, isDenseFilter, parameterTensor } from '../tensors.js';
import { denseFilters, linearForward, roafStep } from './jacobian-steps.js';

/**
 * Default beta of `roaf-mlp` at depth L (alpha = 1), capped at 0.5 for shallow nets. The product of L layer
 * Jacobians grows like exp(c·beta²·L/2), so beta = 1/sqrt(L) keeps it bounded at every depth (beta ≈ 0.03
 * at L = 1,000, between 0.01 (first/last gradient ratio 1.04) and 0.1 (ratio 15), docs/defaults.md); at
 * L = 100, beta = 0.1 reaches 96 % on MNIST in one epoch where 0.03 stays under 95 % (measured with roaf train).
 */
export function defaultMlpBeta(depth: number): number {
  return Math.min(0.5, 1 / Math.sqrt(depth));
}

/** Model sizes of the feed-forward kinds on every task: depth 100, width 64 (the unused `hidden` as the recurrent default). */
const SIZES: SizeDefaults = { depth: 100, width: 64, hidden: 128, inputScale: 1 };

export interface FeedForwardOptions {
  name: ModelKind;
  summary: string;
  fixed: Partial<ModelConfig>;
  /** A plain function (no `this`): the kind passes it on as its own. */
  defaultCoefficients: (depth: number) => { alpha: number; beta: number };
  /** Whether alpha and beta are the user's to choose, and so part of the model's description. */
  tunable: boolean;
}

export function feedForwardKind(options: FeedForwardOptions): ModelKindSpec<RoafMLP> {
  const { name, tunable } = options;
  return {
    name,
    summary: options.summary,
    recurrent: false,
    stackable: false,
    fixed: options.fixed,
    defaultCoefficients: options.defaultCoefficients,
    sizeDefaults: () => SIZES,
    create: (config: ModelConfig, backend: Backend) => new RoafMLP(config, backend),

    // input.W, input.b; every layer's W, then every layer's b (RoafMLP stacks them for its kernels); readout.
    tensors(config) {
      const { depth: L, width: N, inputDim: D, outputs: K, dtype } = config;
      const tensors = [parameterTensor('input.W', [N, D], dtype), parameterTensor('input.b', [N], dtype)];
      for (let l = 0; l < L; l++) tensors.push(parameterTensor(`layers.${l}.W`, [N, N], dtype));
      for (let l = 0; l < L; l++) tensors.push(parameterTensor(`layers.${l}.b`, [N], dtype));
      tensors.push(parameterTensor('readout.W', [K, N], dtype), parameterTensor('readout.b', [K], dtype));
      const filters = filterTensors(config, N, L);
      return { tensors: [...tensors, ...filters.tensors], filterNames: filters.filterNames };
    },

    // RoafMLP's buffers: xs (k+1, B, N), as (k, B, N), logits (B, K), grads (2, B, N), gz (B, N), with k = L
    // when every activation is kept; with checkpointing k is the segment length, plus the segment inputs
    // (S+1, B, N), S = ceil(L/k).
    activationBytes(config, B, _T, memory) {
      const { depth: L, width: N, outputs: K } = config;
      const bytes = config.dtype === 'float64' ? 8 : 4;
      const k = memory?.mode === 'checkpoint' ? Math.min(L, memory.segmentLength) : L;
      const checkpoints = memory?.mode === 'checkpoint' ? Math.ceil(L / k) + 1 : 0;
      return bytes * ((2 * k + 4 + checkpoints) * B * N + B * K);
    },

    flops(config, B) {
      const { inputDim: D, outputs: K, width: N, depth: L } = config;
      const filter = config.alpha !== 0 && isDenseFilter(config.filter) ? 1 : 0;
      const layerForward = 2 * B * N * N * (1 + filter); // W x, O x
      const layerBackward = 2 * B * N * N * (2 + filter); // Wᵀ gz, gW, Oᵀ gy
      const input = 2 * B * D * N; // forward P u; backward gP only (no gradient for the data)
      const readout = 2 * B * N * K;
      return {
        forward: input + L * layerForward + readout,
        train: 2 * input + L * (layerForward + layerBackward) + 3 * readout,
      };
    },

    labels: {
      curve: 'layer',
      size: (config, format) => `L=${format(config.depth)} N=${format(config.width)}`,
      describe: (config) =>
        `${name} L=${config.depth} N=${config.width}` +
        (tunable ? ` α=${config.alpha} β=${Number(config.beta.toPrecision(3))}` : ''),
      configRows: (config, format) => [['depth L × width N', `${format(config.depth)} × ${format(config.width)}`]],
      extent: (config) => `${config.depth.toLocaleString('en-US')} layers`,
    },

    jacobianChain: (model, input) => mlpChain(model, input),
    gradientCurve: (model, B, _T, _inputs, gOutputs) => scaledLayerBackward(model, B, gOutputs),

    boundFactors(model) {
      const { alpha, beta } = model.layers[0] ?? model.config;
      return { alpha, beta, n: model.config.width, weights: model.layers.map((layer) => layer.W.value), repeat: 1 };
    },
  };
}

/** ∂x_{l+1}/∂x_l = alpha O_l + beta D_l W_l for l = 0..L-1, along the sample's trajectory from x_0 = P u + p. */
function mlpChain(model: RoafMLP, input: ArrayLike<number>): JacobianChain {
  const N = model.config.width;
  return {
    size: N,
    count: model.layers.length,
    description: '∂x_L/∂x_0',
    run(visit) {
      const dense = denseFilters();
      const x = linearForward(model.input, input);
      const J = new Float64Array(N * N);
      const a = new Float64Array(N);
      model.layers.forEach((layer, l) => {
        const W = layer.W.value,
          b = layer.b.value;
        for (let i = 0; i < N; i++) {
          let z = b[i]!;
          for (let k = 0; k < N; k++) z += W[i * N + k]! * x[k]!;
          a[i] = Math.tanh(z);
        }
        roafStep(N, layer.alpha, layer.beta, layer.alpha === 0 ? null : dense(layer.filter), W, a, x, J);
        visit(l, J);
      });
    },
  };
}

/**
 * The model's own layer kernels run backwards through the layers with a power-of-two rescale after each:
 * the curve equals the one from `model.backward` wherever that one is representable, and goes on where
 * it under- or overflows. Accumulates into the parameter gradients, like a backward pass.
 */
function scaledLayerBackward(model: RoafMLP, B: number, gOutputs: FloatArray): GradientCurve {
  const { width: N, dtype } = model.config;
  const backend = model.backend;
  const L = model.layers.length;
  const size = B * N;
  let gy = backend.allocate(dtype, size);
  let gx = backend.allocate(dtype, size);
  const gz = backend.allocate(dtype, size);
  const a = backend.allocate(dtype, size);
  const y = backend.allocate(dtype, size);
  const log10Norms = new Float64Array(L + 1);
  const scale = new PowerOfTwoScale((values, factor) => backend.scale(values.length, values, factor));
  model.readout.backward(backend, B, model.savedLayerInput(L, B), gOutputs, gy);
  log10Norms[L] = scale.record(gy);
  for (let l = L - 1; l >= 0; l--) {
    const x = model.savedLayerInput(l, B);
    const layer = model.layers[l]!;
    // The forward kept the activations in a private buffer; the same kernel recomputes them bit for bit.
    layer.forward(backend, B, x, a, y);
    layer.backward(backend, B, x, a, gy, gx, gz);
    [gy, gx] = [gx, gy];
    log10Norms[l] = scale.record(gy);
  }
  return { index: 'layer', log10Norms };
}
