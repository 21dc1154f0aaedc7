// Every hand-written backward pass against float64 central finite differences (relative error < 1e-6):
// the ROAF layer (every filter kind), the ROAF cell, LSTM, GRU, linear layer, both losses, and whole
// models of every kind. Runs on the reference backend in float64, which is the specification.

import { describe, it } from 'node:test';
import type { FilterOperand, FloatArray } from '../src/backend/backend.js';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { makeFilter, type FilterKind } from '../src/nn/filter.js';
import { crossEntropyLoss, meanSquaredErrorLoss } from '../src/nn/losses.js';
import { createModel } from '../src/models/factory.js';
import type { ModelConfig, ModelKind } from '../src/models/config.js';
import { Random } from '../src/util/random.js';
import { checkGradient, randomArray, weightedSum } from './helpers.js';

const FILTERS: FilterKind[] = ['haar', 'qr-uniform', 'permutation', 'cycle', 'identity'];

function filterOf(kind: FilterKind, n: number, seed: number): FilterOperand {
  return makeFilter(kind, n, new Random(seed), 'float64');
}

/**
 * Loss weights on the hidden states h_1..h_T (T, B, N) and the ghs a backward starts from: per-step losses, or
 * with `lastStepOnly` a loss on h_T alone, the earlier entries of ghs NaN (the backward must not read them).
 */
function stateLoss(
  T: number,
  B: number,
  N: number,
  rng: Random,
  lastStepOnly: boolean,
): { c: FloatArray; ghs: Float64Array } {
  const c = randomArray(T * B * N, rng);
  if (!lastStepOnly) return { c, ghs: Float64Array.from(c) };
  c.fill(0, 0, (T - 1) * B * N);
  const ghs = Float64Array.from(c).fill(NaN, 0, (T - 1) * B * N);
  return { c, ghs };
}

const LOSS_PLACEMENTS = [
  ['per-step losses', false],
  ['a loss on the last state only', true],
] as const;

describe('ROAF layer backward', () => {
  for (const kind of FILTERS) {
    it(`matches finite differences with a ${kind} filter`, () => {
      const rng = new Random(1);
      const B = 3,
        N = 6,
        alpha = 0.8,
        beta = 0.7;
      const filter = filterOf(kind, N, 2);
      const x = randomArray(B * N, rng),
        W = randomArray(N * N, rng, 0.5),
        b = randomArray(N, rng, 0.3);
      const c = randomArray(B * N, rng);
      const a = new Float64Array(B * N),
        y = new Float64Array(B * N);
      const loss = () => {
        backend.roafLayerForward({ B, N, alpha, beta, filter, x, W, b, a, y });
        return weightedSum(y, c);
      };
      loss();
      const gx = new Float64Array(B * N),
        gW = new Float64Array(N * N),
        gb = new Float64Array(N),
        gz = new Float64Array(B * N);
      backend.roafLayerBackward({ B, N, alpha, beta, filter, x, a, W, gy: c, gx, gW, gb, gz });
      checkGradient('gx', x, gx, loss);
      checkGradient('gW', W, gW, loss);
      checkGradient('gb', b, gb, loss);
    });
  }
});

describe('ROAF cell backward through time', () => {
  for (const kind of ['haar', 'permutation', 'identity'] as FilterKind[]) {
    for (const [placement, lastStepOnly] of LOSS_PLACEMENTS) {
      it(`matches finite differences with a ${kind} filter and ${placement}`, () => {
        const rng = new Random(3);
        const T = 5,
          B = 2,
          D = 3,
          N = 4,
          alpha = 0.9,
          beta = 0.6;
        const filter = filterOf(kind, N, 4);
        const xs = randomArray(T * B * D, rng),
          W = randomArray(N * N, rng, 0.5),
          U = randomArray(N * D, rng, 0.5);
        const b = randomArray(N, rng, 0.2),
          h0 = randomArray(B * N, rng, 0.5);
        const { c, ghs } = stateLoss(T, B, N, rng, lastStepOnly);
        const hs = new Float64Array((T + 1) * B * N),
          as = new Float64Array(T * B * N);
        const loss = () => {
          hs.set(h0);
          backend.roafCellForward({ T, B, D, N, alpha, beta, filter, xs, W, U, b, hs, as });
          return weightedSum(hs.subarray(B * N), c);
        };
        loss();
        const gzs = new Float64Array(T * B * N);
        const gW = new Float64Array(N * N),
          gU = new Float64Array(N * D),
          gb = new Float64Array(N);
        const gh0 = new Float64Array(B * N),
          gxs = new Float64Array(T * B * D);
        backend.roafCellBackward({
          T,
          B,
          D,
          N,
          alpha,
          beta,
          filter,
          xs,
          W,
          U,
          hs,
          as,
          ghs,
          gzs,
          gW,
          gU,
          gb,
          gh0,
          gxs,
          lastStepOnly,
        });
        checkGradient('gW', W, gW, loss);
        checkGradient('gU', U, gU, loss);
        checkGradient('gb', b, gb, loss);
        checkGradient('gh0', h0, gh0, loss);
        checkGradient('gxs', xs, gxs, loss);
      });
    }
  }
});

describe('LSTM and GRU backward through time', () => {
  for (const [placement, lastStepOnly] of LOSS_PLACEMENTS) {
    it(`LSTM matches finite differences with ${placement}`, () => {
      const rng = new Random(5);
      const T = 4,
        B = 2,
        D = 3,
        N = 3;
      const xs = randomArray(T * B * D, rng),
        Wx = randomArray(4 * N * D, rng, 0.5),
        Wh = randomArray(4 * N * N, rng, 0.5);
      const b = randomArray(4 * N, rng, 0.3);
      const { c, ghs } = stateLoss(T, B, N, rng, lastStepOnly);
      const saved = {
        hs: new Float64Array((T + 1) * B * N),
        cs: new Float64Array((T + 1) * B * N),
        gates: new Float64Array(T * B * 4 * N),
      };
      const loss = () => {
        backend.lstmForward({ T, B, D, N, xs, Wx, Wh, b, ...saved });
        return weightedSum(saved.hs.subarray(B * N), c);
      };
      loss();
      const gGates = new Float64Array(T * B * 4 * N);
      const gWx = new Float64Array(4 * N * D),
        gWh = new Float64Array(4 * N * N),
        gb = new Float64Array(4 * N),
        gxs = new Float64Array(T * B * D);
      backend.lstmBackward({ T, B, D, N, xs, Wx, Wh, ...saved, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly });
      checkGradient('gWx', Wx, gWx, loss);
      checkGradient('gWh', Wh, gWh, loss);
      checkGradient('gb', b, gb, loss);
      checkGradient('gxs', xs, gxs, loss);
    });

    it(`GRU matches finite differences with ${placement}`, () => {
      const rng = new Random(6);
      const T = 4,
        B = 2,
        D = 3,
        N = 3;
      const xs = randomArray(T * B * D, rng),
        Wx = randomArray(3 * N * D, rng, 0.5),
        Wh = randomArray(3 * N * N, rng, 0.5);
      const bx = randomArray(3 * N, rng, 0.3),
        bh = randomArray(3 * N, rng, 0.3);
      const { c, ghs } = stateLoss(T, B, N, rng, lastStepOnly);
      const saved = {
        hs: new Float64Array((T + 1) * B * N),
        gates: new Float64Array(T * B * 3 * N),
        hn: new Float64Array(T * B * N),
      };
      const loss = () => {
        backend.gruForward({ T, B, D, N, xs, Wx, Wh, bx, bh, ...saved });
        return weightedSum(saved.hs.subarray(B * N), c);
      };
      loss();
      const gGates = new Float64Array(T * B * 3 * N),
        gHn = new Float64Array(T * B * N);
      const gWx = new Float64Array(3 * N * D),
        gWh = new Float64Array(3 * N * N);
      const gbx = new Float64Array(3 * N),
        gbh = new Float64Array(3 * N),
        gxs = new Float64Array(T * B * D);
      backend.gruBackward({
        T,
        B,
        D,
        N,
        xs,
        Wx,
        Wh,
        ...saved,
        ghs,
        gGates,
        gHn,
        gWx,
        gWh,
        gbx,
        gbh,
        gxs,
        lastStepOnly,
      });
      checkGradient('gWx', Wx, gWx, loss);
      checkGradient('gWh', Wh, gWh, loss);
      checkGradient('gbx', bx, gbx, loss);
      checkGradient('gbh', bh, gbh, loss);
      checkGradient('gxs', xs, gxs, loss);
    });
  }
});

describe('losses', () => {
  it('softmax cross-entropy gradient matches finite differences', () => {
    const rng = new Random(7);
    const B = 4,
      K = 5;
    const logits = randomArray(B * K, rng, 2);
    const labels = Int32Array.from([0, 3, 4, 1]);
    const scratch = new Uint8Array(B);
    const grad = new Float64Array(B * K);
    const loss = () => crossEntropyLoss(backend, B, K, logits, labels, null, scratch).lossSum / B;
    crossEntropyLoss(backend, B, K, logits, labels, grad, scratch);
    checkGradient('glogits', logits, grad, loss);
  });

  it('mean squared error gradient matches finite differences', () => {
    const rng = new Random(8);
    const B = 4,
      K = 2;
    const pred = randomArray(B * K, rng),
      target = randomArray(B * K, rng);
    const grad = new Float64Array(B * K);
    const loss = () => meanSquaredErrorLoss(backend, B, K, pred, target, null).lossSum / (B * K);
    meanSquaredErrorLoss(backend, B, K, pred, target, grad);
    checkGradient('gpred', pred, grad, loss);
  });
});

function smallConfig(model: ModelKind, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    model,
    inputDim: 3,
    outputs: 4,
    readout: 'last',
    depth: 4,
    width: 5,
    hidden: 4,
    alpha: 0.9,
    beta: 0.5,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 11,
    dtype: 'float64',
    ...overrides,
  };
}

describe('whole models: every parameter gradient against finite differences', () => {
  const cases: [string, ModelConfig, number][] = [
    ['roaf-mlp', smallConfig('roaf-mlp'), 1],
    ['roaf-mlp, shared permutation filter', smallConfig('roaf-mlp', { filter: 'permutation', sharedFilter: true }), 1],
    ['mlp', smallConfig('mlp'), 1],
    ['resmlp', smallConfig('resmlp', { depth: 3 }), 1],
    ['roaf-rnn', smallConfig('roaf-rnn'), 5],
    ['roaf-rnn, per-step readout', smallConfig('roaf-rnn', { readout: 'every' }), 5],
    ['rnn', smallConfig('rnn'), 5],
    ['lstm', smallConfig('lstm'), 4],
    ['gru', smallConfig('gru'), 4],
  ];
  for (const [label, config, T] of cases) {
    it(label, () => {
      const model = createModel(config, backend);
      const rng = new Random(12);
      const B = 3;
      const inputs = randomArray(T * B * config.inputDim, rng);
      const rows = model.outputRows(B, T);
      const labels = Int32Array.from({ length: rows }, (_, i) => i % config.outputs);
      const scratch = new Uint8Array(rows);
      const gOut = new Float64Array(rows * config.outputs);
      const loss = () => {
        const out = model.forward(B, T, inputs);
        return crossEntropyLoss(backend, rows, config.outputs, out, labels, null, scratch).lossSum / rows;
      };
      const out = model.forward(B, T, inputs);
      crossEntropyLoss(backend, rows, config.outputs, out, labels, gOut, scratch);
      model.params.zeroGrad();
      model.backward(B, T, inputs, gOut);
      checkGradient(`${label} parameters`, model.params.values, model.params.grads, loss);
    });
  }

  it('roaf-rnn regression head (MSE) matches finite differences', () => {
    const config = smallConfig('roaf-rnn', { outputs: 1 });
    const model = createModel(config, backend);
    const rng = new Random(13);
    const B = 3,
      T = 6;
    const inputs = randomArray(T * B * config.inputDim, rng);
    const target = randomArray(B, rng);
    const gOut = new Float64Array(B);
    const loss = () => meanSquaredErrorLoss(backend, B, 1, model.forward(B, T, inputs), target, null).lossSum / B;
    meanSquaredErrorLoss(backend, B, 1, model.forward(B, T, inputs), target, gOut);
    model.params.zeroGrad();
    model.backward(B, T, inputs, gOut);
    checkGradient('mse parameters', model.params.values, model.params.grads, loss);
  });
});
