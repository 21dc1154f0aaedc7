// The model-kind registry: every kind's declarations agree with the models it builds (the tensor list with
// the model's parameters and filters, the activation memory with the buffers a training step allocates),
// its fixed settings are applied, names and layer counts are validated with errors that name the option,
// and a stack's FLOPs are its layers'.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { referenceBackend as backend } from '../src/backend/reference.js';
import type { ModelConfig } from '../src/models/config.js';
import { validateModelConfig } from '../src/models/config.js';
import { createModel, modelConfig, resolveBaseline } from '../src/models/factory.js';
import {
  MODEL_KINDS,
  findModelKind,
  isRecurrent,
  kindsWhere,
  modelKind,
  modelKindOf,
  type ModelKind,
} from '../src/models/kinds.js';
import type { Model } from '../src/models/model.js';
import { bindTensors } from '../src/models/tensors.js';
import { FILTER_KINDS } from '../src/nn/filter.js';
import { UsageError } from '../src/util/errors.js';
import { Random } from '../src/util/random.js';
import { randomArray } from './helpers.js';

function config(model: ModelKind, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    model,
    inputDim: 5,
    outputs: 3,
    readout: 'last',
    depth: 4,
    width: 6,
    hidden: 7,
    alpha: 0.8,
    beta: 0.3,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 1,
    dtype: 'float32',
    ...overrides,
  };
}

/** A spread of configurations of a kind: every filter, shared or not, both dtypes, stacks for recurrent kinds. */
function variants(kind: ModelKind): ModelConfig[] {
  const out: ModelConfig[] = [];
  for (const filter of FILTER_KINDS) {
    for (const sharedFilter of [false, true]) {
      out.push(config(kind, { filter, sharedFilter, dtype: sharedFilter ? 'float64' : 'float32' }));
    }
  }
  if (isRecurrent(kind)) {
    for (const layers of [1, 2, 3])
      out.push(config(kind, { layers, filter: layers === 3 ? 'cycle' : 'qr-uniform', readout: 'every' }));
  } else {
    out.push(config(kind, { depth: 1 }));
  }
  return out;
}

/** Bytes of every typed array reachable from the model's fields, except parameters and filters (each buffer once). */
function activationBuffersBytes(model: Model): number {
  const excluded = new Set<ArrayBufferLike>([model.params.values.buffer, model.params.grads.buffer]);
  for (const f of model.filters) {
    if (f.kind === 'dense') excluded.add(f.matrix.buffer);
    if (f.kind === 'permutation') excluded.add(f.perm.buffer).add(f.signs.buffer);
  }
  const buffers = new Set<ArrayBufferLike>();
  const seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) {
      if (!excluded.has(value.buffer)) buffers.add(value.buffer);
      return;
    }
    for (const [key, field] of Object.entries(value)) if (key !== 'backend' && key !== 'config') visit(field);
  };
  visit(model);
  let bytes = 0;
  for (const b of buffers) bytes += b.byteLength;
  return bytes;
}

describe('model kinds', () => {
  it('the registry has every kind, and the recurrent ones stack', () => {
    assert.deepEqual(
      MODEL_KINDS.map((name) => modelKind(name).name),
      [...MODEL_KINDS],
    );
    assert.deepEqual(
      kindsWhere((k) => k.recurrent),
      ['roaf-rnn', 'rnn', 'lstm', 'gru'],
    );
    assert.deepEqual(
      kindsWhere((k) => k.stackable),
      kindsWhere((k) => k.recurrent),
    );
    assert.equal(findModelKind('transformer'), undefined);
    assert.throws(
      () => modelKind('transformer'),
      (e: unknown) => e instanceof UsageError && /--model must be one of roaf-mlp, .*got 'transformer'/.test(e.message),
    );
  });

  it('baselines fix their settings over whatever was asked', () => {
    const asked = { alpha: 0.5, beta: 0.2, filter: 'haar' as const, sharedFilter: false };
    assert.deepEqual(pick(resolveBaseline(config('mlp', asked))), {
      alpha: 0,
      beta: 1,
      filter: 'haar',
      sharedFilter: false,
    });
    assert.deepEqual(pick(resolveBaseline(config('rnn', asked))), {
      alpha: 0,
      beta: 1,
      filter: 'haar',
      sharedFilter: false,
    });
    assert.deepEqual(pick(resolveBaseline(config('resmlp', asked))), {
      alpha: 1,
      beta: 1,
      filter: 'identity',
      sharedFilter: true,
    });
    for (const kind of ['roaf-mlp', 'roaf-rnn', 'lstm', 'gru'] as const)
      assert.deepEqual(pick(resolveBaseline(config(kind, asked))), asked);
    assert.deepEqual(modelConfig({ model: 'roaf-mlp', inputDim: 1, outputs: 1, depth: 400 }).beta, 0.05);

    function pick(c: ModelConfig) {
      return { alpha: c.alpha, beta: c.beta, filter: c.filter, sharedFilter: c.sharedFilter };
    }
  });

  for (const kind of MODEL_KINDS) {
    it(`${kind}: the declared tensor list is exactly the model's parameters and filters, in file order`, () => {
      for (const c of variants(kind)) {
        const model = createModel(c, backend);
        const spec = modelKindOf(model);
        const list = spec.tensors(model.config);
        const bound = bindTensors(model, list); // throws on any disagreement
        const parameters = list.tensors.filter((t) => t.source.kind === 'parameter').map((t) => t.name);
        assert.deepEqual(
          parameters,
          model.params.parameters.map((p) => p.name),
          `${kind} ${c.filter}: parameter order`,
        );
        assert.equal(bound.length, list.tensors.length);
        assert.equal(list.filterNames.length, model.filters.length, `${kind} ${c.filter}: one filter name per layer`);
      }
    });

    it(`${kind}: the declared activation memory is what a training step allocates`, () => {
      for (const c of variants(kind)) {
        const model = createModel(c, backend);
        const B = 3,
          T = model.recurrent ? 4 : 1;
        const inputs = randomArray(T * B * 5, new Random(1), 1, c.dtype);
        const out = model.forward(B, T, inputs);
        model.backward(B, T, inputs, randomArray(out.length, new Random(2), 1, c.dtype));
        assert.equal(
          modelKindOf(model).activationBytes(model.config, B, T),
          activationBuffersBytes(model),
          `${kind} ${c.filter} layers ${c.layers ?? 1} ${c.dtype}`,
        );
      }
    });
  }
});

describe('stacked layers: options and accounting', () => {
  it('--layers must be an integer 1..64, and only recurrent kinds stack', () => {
    for (const layers of [0, 65, 1.5, NaN]) {
      assert.throws(
        () => validateModelConfig(config('roaf-rnn', { layers })),
        (e: unknown) => e instanceof UsageError && /^--layers must be an integer >= 1 and <= 64, got/.test(e.message),
      );
    }
    for (const kind of ['roaf-mlp', 'mlp', 'resmlp'] as const) {
      assert.throws(
        () => createModel(config(kind, { layers: 2 }), backend),
        (e: unknown) =>
          e instanceof UsageError && /--layers must be 1 for --model .*roaf-rnn, rnn, lstm, gru/.test(e.message),
      );
      assert.doesNotThrow(() => createModel(config(kind, { layers: 1 }), backend));
    }
  });

  it('labels name a stack', () => {
    const describe = (c: ModelConfig) => modelKind(c.model).labels.describe(resolveBaseline(c));
    assert.equal(
      describe(config('roaf-rnn', { layers: 3, hidden: 128, alpha: 1, beta: 0.1 })),
      'roaf-rnn k=3 N=128 α=1 β=0.1',
    );
    assert.equal(describe(config('roaf-rnn', { hidden: 128, alpha: 1, beta: 0.1 })), 'roaf-rnn N=128 α=1 β=0.1');
    assert.equal(describe(config('lstm', { layers: 2, hidden: 64 })), 'lstm k=2 N=64');
    assert.equal(describe(config('resmlp', { depth: 1000, width: 64 })), 'resmlp L=1000 N=64');
  });

  for (const kind of ['roaf-rnn', 'rnn', 'lstm', 'gru'] as const) {
    it(`${kind}: with D = N, a stack's FLOPs are k layers' plus the k-1 input gradients passed down`, () => {
      const spec = modelKind(kind);
      const B = 8,
        T = 10;
      const one = spec.flops(resolveBaseline(config(kind, { inputDim: 7, layers: 1 })), B, T);
      const readout = 2 * B * 7 * 3;
      const layerForward = one.forward - readout;
      const layerBackward = one.train - one.forward - 2 * readout;
      // ∂loss/∂x_t = gz_t U (per gate): as many FLOPs as the forward's input product.
      const inputGradient = T * 2 * B * 7 * 7 * (kind === 'lstm' ? 4 : kind === 'gru' ? 3 : 1);
      for (const k of [2, 5]) {
        const stack = spec.flops(resolveBaseline(config(kind, { inputDim: 7, layers: k })), B, T);
        assert.equal(stack.forward, readout + k * layerForward);
        assert.equal(stack.train - stack.forward, 2 * readout + k * layerBackward + (k - 1) * inputGradient);
      }
    });
  }
});
