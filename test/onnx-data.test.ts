// ONNX export on real test data: the exported model run by onnxruntime-web against roaf's reference forward
// pass on MNIST test images (the three feed-forward kinds, 64 and 100 layers), on psMNIST test sequences at
// their real length T = 784 (the four recurrent kinds) and on the copy task (per-step readout). Figures: the
// largest relative difference of logits (per sample, relative to its largest logit) at most 1e-4 in float32,
// and the same predicted class for every sample.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { referenceBackend } from '../src/backend/reference.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadTask } from '../src/data/tasks.js';
import { exportOnnx } from '../src/export/onnx.js';
import { createModel, modelConfig, type ModelOptions } from '../src/models/factory.js';
import { onnxSession, parity } from './onnx-helpers.js';

/** The first B samples of `dataset` as one (T, B, D) batch. */
function firstSamples(dataset: Dataset, B: number): Float32Array {
  const inputs = new Float32Array(dataset.steps * B * dataset.inputDim);
  const labels = new Int32Array(dataset.target.kind === 'class-per-step' ? dataset.steps * B : B);
  dataset.fillBatch(
    Int32Array.from({ length: B }, (_, i) => i),
    inputs,
    { labels },
  );
  return inputs;
}

async function checkParity(
  dataset: Dataset,
  B: number,
  options: Omit<ModelOptions, 'inputDim' | 'outputs'>,
): Promise<void> {
  const outputs = dataset.target.kind === 'regression' ? dataset.target.outputs : dataset.target.classes;
  const readout = dataset.target.kind === 'class-per-step' ? 'every' : 'last';
  const model = createModel(
    modelConfig({ inputDim: dataset.inputDim, outputs, readout, ...options }),
    referenceBackend,
  );
  const session = await onnxSession(exportOnnx(model));
  const T = dataset.steps;
  const result = await parity(model, session, B, T, firstSamples(dataset, B));
  assert.equal(result.rows, model.outputRows(B, T));
  assert.ok(
    result.maxRelative <= 1e-4,
    `${options.model}: max relative difference of logits ${result.maxRelative.toExponential(2)}`,
  );
  assert.equal(result.sameClass, 1, `${options.model}: the same predicted class for every sample`);
}

describe('ONNX export on MNIST test images (feed-forward kinds)', () => {
  const { test } = loadTask('mnist', { seed: 0, testLimit: 100 });
  for (const model of ['roaf-mlp', 'mlp', 'resmlp'] as const) {
    it(`${model}, 64 layers of width 32, 100 images`, async () => {
      await checkParity(test, 100, { model, depth: 64, width: 32, seed: 1 });
    });
  }
  it('roaf-mlp, 100 layers with per-layer permutation filters, 100 images', async () => {
    await checkParity(test, 100, { model: 'roaf-mlp', depth: 100, width: 32, filter: 'permutation', seed: 2 });
  });
});

describe('ONNX export on psMNIST test sequences, T = 784 (recurrent kinds)', () => {
  const { test } = loadTask('psmnist', { seed: 0, testLimit: 8 });
  it('the sequences have their real length', () => {
    assert.equal(test.steps, 784);
    assert.equal(test.inputDim, 1);
  });
  for (const model of ['roaf-rnn', 'rnn', 'lstm', 'gru'] as const) {
    it(`${model}, 32 units, 8 sequences`, async () => {
      // psMNIST's usual input scale 3 for the ROAF/Elman cell
      await checkParity(test, 8, { model, hidden: 32, inputScale: 3, seed: 1 });
    });
  }
  it('roaf-rnn with a permutation filter, 2 stacked layers, 4 sequences', async () => {
    await checkParity(test, 4, {
      model: 'roaf-rnn',
      hidden: 16,
      filter: 'permutation',
      layers: 2,
      inputScale: 3,
      seed: 3,
    });
  });
});

describe('ONNX export on the copy task (per-step readout)', () => {
  const { test } = loadTask('copy', { seed: 0, testSize: 16 });
  for (const model of ['roaf-rnn', 'lstm', 'gru'] as const) {
    it(`${model}, 32 units, 16 sequences of ${test.steps} steps, logits at every step`, async () => {
      await checkParity(test, 16, { model, hidden: 32, seed: 1 });
    });
  }
});
