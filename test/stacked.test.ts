// Stacked recurrent models (k layers: layer 1 reads the inputs, layer j the hidden states of layer j-1):
// every parameter's gradient against float64 finite differences for each recurrent kind at k = 2 and 3,
// with per-step losses and with a loss on the last state; the forward equals the cells composed by hand;
// k = 1 is bit for bit the single-layer model; each layer draws its own filter; every backend agrees with
// the reference; a checkpoint round trip restores the stack; the diagnostics of a stack.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FloatArray } from '../src/backend/backend.js';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { AddingDataset } from '../src/data/adding.js';
import { diagnose } from '../src/diagnostics/diagnose.js';
import type { ModelConfig, ModelKind } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import { RecurrentModel } from '../src/models/recurrent.js';
import { filterMatrix, makeFilters } from '../src/nn/filter.js';
import { crossEntropyLoss } from '../src/nn/losses.js';
import { loadModelTensors, modelTensors, saveCheckpoint } from '../src/train/checkpoint.js';
import { DEFAULT_OPTIMIZER, Optimizer } from '../src/train/optimizer.js';
import { BatchBuffers, batchLoss } from '../src/train/trainer.js';
import { Random } from '../src/util/random.js';
import { availableBackends, checkGradient, randomArray } from './helpers.js';

const RECURRENT: ModelKind[] = ['roaf-rnn', 'rnn', 'lstm', 'gru'];

function config(model: ModelKind, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    model,
    inputDim: 3,
    outputs: 2,
    readout: 'last',
    depth: 1,
    width: 1,
    hidden: 3,
    layers: 2,
    alpha: 0.9,
    beta: 0.5,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 7,
    dtype: 'float64',
    ...overrides,
  };
}

/** Mean cross-entropy of the model's outputs against fixed labels, and its gradient into gOut unless null. */
function lossOf(
  model: ReturnType<typeof createModel>,
  B: number,
  T: number,
  inputs: FloatArray,
  labels: Int32Array,
  gOut: FloatArray | null,
): number {
  const rows = model.outputRows(B, T);
  const out = model.forward(B, T, inputs);
  return (
    crossEntropyLoss(model.backend, rows, model.config.outputs, out, labels, gOut, new Uint8Array(rows)).lossSum / rows
  );
}

describe('stacked recurrent models: every parameter gradient against finite differences (float64)', () => {
  for (const kind of RECURRENT) {
    for (const layers of [2, 3]) {
      for (const readout of ['every', 'last'] as const) {
        const placement = readout === 'every' ? 'per-step losses' : 'a loss on the last state';
        it(`${kind}, k = ${layers}, ${placement}`, () => {
          const filter = kind === 'roaf-rnn' && layers === 3 ? 'permutation' : 'haar';
          const model = createModel(config(kind, { layers, readout, filter }), backend);
          const B = 2,
            T = 4;
          const rng = new Random(layers * 10 + (readout === 'every' ? 1 : 0));
          const inputs = randomArray(T * B * 3, rng);
          const rows = model.outputRows(B, T);
          const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7 + layers) % 2);
          const gOut = new Float64Array(rows * 2);
          lossOf(model, B, T, inputs, labels, gOut);
          model.params.zeroGrad();
          model.backward(B, T, inputs, gOut);
          const names = model.params.parameters.map((p) => p.name);
          assert.ok(
            names.includes(`cells.${layers - 1}.${kind === 'lstm' || kind === 'gru' ? 'Wx' : 'U'}`),
            names.join(),
          );
          checkGradient(`${kind} k=${layers} ${readout}`, model.params.values, model.params.grads, () =>
            lossOf(model, B, T, inputs, labels, null),
          );
        });
      }
    }
  }
});

describe('a stack is its cells composed', () => {
  for (const kind of RECURRENT) {
    it(`${kind}, k = 3: the forward equals each layer's cell run on the states of the one below, bit for bit`, () => {
      const model = createModel(config(kind, { layers: 3, dtype: 'float32' }), backend) as RecurrentModel;
      const B = 2,
        T = 5,
        N = 3;
      const inputs = randomArray(T * B * 3, new Random(4), 1, 'float32');
      const out = Float32Array.from(model.forward(B, T, inputs));
      let xs: FloatArray = inputs;
      for (const cell of model.cells) xs = Float32Array.from(cell.forward(backend, T, B, xs).subarray(B * N));
      const expected = new Float32Array(B * 2);
      model.readout.forward(backend, B, xs.subarray((T - 1) * B * N), expected);
      assert.deepEqual(Array.from(out), Array.from(expected));
    });
  }
});

describe('k = 1 is the single-layer model, bit for bit', () => {
  for (const kind of RECURRENT) {
    for (const dtype of ['float32', 'float64'] as const) {
      it(`${kind} ${dtype}: layers 1 and no layers field give the same tensors, outputs and gradients`, () => {
        const plain = config(kind, { dtype, filter: 'permutation' });
        delete plain.layers;
        const single = createModel(plain, backend);
        const one = createModel({ ...plain, layers: 1 }, backend);
        const names = (m: typeof one) => modelTensors(m).tensors.map((t) => t.name);
        assert.deepEqual(names(one), names(single));
        assert.ok(
          names(one).every((n) => !n.startsWith('cells.')),
          'k = 1 keeps the names cell.*',
        );
        assert.deepEqual(one.params.values, single.params.values);
        assert.deepEqual(one.filters, single.filters);
        const B = 3,
          T = 6;
        const inputs = randomArray(T * B * 3, new Random(2), 1, dtype);
        const g = randomArray(B * 2, new Random(3), 1, dtype);
        assert.deepEqual(one.forward(B, T, inputs), single.forward(B, T, inputs));
        one.params.zeroGrad();
        single.params.zeroGrad();
        one.backward(B, T, inputs, g);
        single.backward(B, T, inputs, g);
        assert.deepEqual(one.params.grads, single.params.grads);
      });
    }
  }

  it("layer j of a ROAF stack draws its filter from (seed, j): layer 0 is the single-layer model's filter", () => {
    for (const filter of ['haar', 'permutation'] as const) {
      const stack = createModel(config('roaf-rnn', { layers: 3, filter }), backend);
      const single = createModel(config('roaf-rnn', { layers: 1, filter }), backend);
      const drawn = makeFilters(filter, 3, 3, false, 7, 'float64');
      assert.equal(stack.filters.length, 3);
      stack.filters.forEach((f, j) =>
        assert.deepEqual(filterMatrix(f), filterMatrix(drawn[j]!), `${filter}: layer ${j}`),
      );
      assert.deepEqual(filterMatrix(stack.filters[0]!), filterMatrix(single.filters[0]!));
      assert.notDeepEqual(filterMatrix(stack.filters[1]!), filterMatrix(stack.filters[0]!));
    }
  });
});

describe('every backend computes what the reference computes, for stacks', async () => {
  for (const { name, backend: tested } of await availableBackends()) {
    for (const kind of RECURRENT) {
      it(`${name}: ${kind}, k = 2, forward and gradients match the float64 reference`, () => {
        const c32 = config(kind, {
          dtype: 'float32',
          hidden: 6,
          filter: kind === 'roaf-rnn' ? 'permutation' : 'haar',
          readout: 'every',
        });
        const model = createModel(c32, tested);
        const exact = createModel({ ...c32, dtype: 'float64' }, backend);
        exact.params.values.set(model.params.values);
        const B = 3,
          T = 7;
        const x = randomArray(T * B * 3, new Random(2), 1, 'float32');
        const out = model.forward(B, T, x);
        const outExact = exact.forward(B, T, Float64Array.from(x));
        for (let i = 0; i < out.length; i++)
          assert.ok(Math.abs(out[i]! - outExact[i]!) < 1e-5, `output ${i}: ${out[i]} vs ${outExact[i]}`);
        const g = randomArray(out.length, new Random(3), 1, 'float32');
        model.params.zeroGrad();
        exact.params.zeroGrad();
        model.backward(B, T, x, g);
        exact.backward(B, T, Float64Array.from(x), Float64Array.from(g));
        let scale = 0;
        for (const v of exact.params.grads) scale = Math.max(scale, Math.abs(v));
        exact.params.grads.forEach((v, i) => {
          assert.ok(
            Math.abs(model.params.grads[i]! - v) <= 1e-4 * scale,
            `gradient ${i}: ${model.params.grads[i]} vs ${v}`,
          );
        });
      });
    }
  }
});

describe("a stacked model's checkpoint", () => {
  for (const [kind, filter] of [
    ['roaf-rnn', 'haar'],
    ['roaf-rnn', 'permutation'],
    ['gru', 'haar'],
  ] as const) {
    it(`${kind} (${filter}), k = 3: save and load restore every tensor, named cells.{j}.* and filters.{j}`, () => {
      const c = config(kind, { layers: 3, filter, dtype: 'float32', hidden: 5 });
      const model = createModel(c, backend);
      // Train one step so the parameters are not the initialisation a fresh model would draw anyway.
      const optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, lr: 1e-2 }, model.params, backend);
      const B = 2,
        T = 4;
      const inputs = randomArray(T * B * 3, new Random(8), 1, 'float32');
      const gOut = new Float32Array(B * 2);
      lossOf(model, B, T, inputs, Int32Array.of(0, 1), gOut);
      model.params.zeroGrad();
      model.backward(B, T, inputs, gOut);
      optimizer.step();
      const dir = join(mkdtempSync(join(tmpdir(), 'roaf-stack-')), 'checkpoint');
      saveCheckpoint(dir, {
        model,
        optimizer,
        task: { name: 'adding' },
        training: {
          epochs: 1,
          batch: B,
          optimizer: optimizer.options,
          clip: 0,
          evalEvery: 0,
          checkpointEvery: 0,
          logGradients: false,
          seed: 0,
        },
        progress: { epoch: 1, batchInEpoch: 0, step: 1, seconds: 0 },
      });
      const { tensors, filterNames } = modelTensors(model);
      const names = tensors.map((t) => t.name);
      for (let j = 0; j < 3; j++) assert.ok(names.includes(`cells.${j}.${kind === 'gru' ? 'Wh' : 'W'}`), names.join());
      if (kind === 'roaf-rnn') {
        assert.deepEqual(filterNames, ['filters.0', 'filters.1', 'filters.2']);
        assert.ok(names.includes(filter === 'haar' ? 'filters.2' : 'filters.2.perm'), names.join());
      } else {
        assert.deepEqual(filterNames, []);
      }
      const restored = createModel({ ...c, seed: 99 }, backend);
      assert.notDeepEqual(restored.params.values, model.params.values);
      loadModelTensors(dir, restored);
      assert.deepEqual(restored.params.values, model.params.values);
      restored.filters.forEach((f, j) => assert.deepEqual(filterMatrix(f), filterMatrix(model.filters[j]!)));
      assert.deepEqual(restored.forward(B, T, inputs), model.forward(B, T, inputs));
    });
  }
});

describe('diagnostics of a stack', () => {
  const data = new AddingDataset({ name: 'adding/test', steps: 12, count: 6, seed: 2 });

  it('the gradient curve is ∂loss/∂h_t of the top layer at every step; spectrum and bounds say why they do not apply', () => {
    const c = config('roaf-rnn', { layers: 2, inputDim: 2, outputs: 1, hidden: 6, alpha: 1, beta: 0.3 });
    const d = diagnose(createModel(c, backend), data, { batch: 6, samples: 1 });
    assert.equal(d.gradients.index, 'step');
    assert.equal(d.gradients.count, 12);
    assert.equal(d.spectrum, null);
    assert.match(d.spectrum_note ?? '', /k > 1 stacked layers/);
    assert.equal(d.bounds.applicable, false);
    assert.match(d.bounds.note ?? '', /single layer/);
    // The same curve from the model's own backward, read at the top layer by its gradient hook.
    const model = createModel(c, backend);
    const B = 6;
    const { inputs, gOutputs } = batchLoss(
      model,
      new BatchBuffers(data, model, B),
      Int32Array.from({ length: B }, (_, i) => i),
      true,
    );
    const norms: number[] = [];
    model.backward(B, data.steps, inputs, gOutputs, (t, grad) => {
      norms[t - 1] = Math.hypot(...grad);
    });
    d.gradients.log10_norms.forEach((log10, i) => {
      assert.ok(
        log10 !== null && Math.abs(log10 - Math.log10(norms[i]!)) < 1e-9,
        `step ${i + 1}: 10^${log10} vs ${norms[i]}`,
      );
    });
  });
});
