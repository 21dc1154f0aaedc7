// The browser entry's own pieces, run in Node on the reference backend: the step trainer trains exactly
// as `runTraining` does (same parameters after an epoch, bit for bit), in-memory safetensors are the
// very bytes the file writer writes, a model saved to bytes loads back with the same outputs, MNIST from
// IDX bytes, and the drawing pad's MNIST-style preprocessing.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ImageDataset,
  SafetensorsBytes,
  StepTrainer,
  buildModel,
  encodeIdx,
  encodeSafetensors,
  hiddenStateNorms,
  imagesFromIdx,
  loadModelBytes,
  mnistDigit,
  predict,
  referenceBackend,
  saveModelBytes,
  sequentialImages,
} from '../src/browser/index.js';
import { modelTensors } from '../src/train/model-tensors.js';
import { writeSafetensors } from '../src/train/safetensors.js';
import { runTraining } from '../src/train/trainer.js';
import { loadTask } from '../src/data/tasks.js';
import { UsageError } from '../src/util/errors.js';

const data = loadTask('mnist', { seed: 0, trainLimit: 40, testLimit: 16 });
const small = { model: 'roaf-mlp' as const, depth: 6, width: 8, data, dtype: 'float64' as const };

describe('browser entry: step trainer', () => {
  it('takes the same steps as runTraining: equal parameters after an epoch, bit for bit', () => {
    const a = buildModel(small, () => referenceBackend);
    const b = buildModel(small, () => referenceBackend);
    runTraining({
      model: a,
      ...data,
      epochs: 1,
      batch: 8,
      lr: 0.01,
      training: { lrSchedule: 'constant' },
      outDir: mkdtempSync(join(tmpdir(), 'roaf-step-')),
    });
    const trainer = new StepTrainer(b, data.train, data.test, { batch: 8, optimizer: { lr: 0.01 } });
    const losses = Array.from({ length: trainer.batchesPerEpoch }, () => trainer.trainStep());
    assert.equal(trainer.epoch, 1);
    assert.equal(trainer.batchInEpoch, 0);
    assert.ok(losses.every(Number.isFinite));
    assert.deepEqual(Array.from(b.params.values), Array.from(a.params.values));
    const evaluation = trainer.evaluate();
    assert.equal(evaluation.samples, 16);
    assert.ok(evaluation.accuracy! >= 0 && evaluation.accuracy! <= 1);
  });

  it('measures a gradient curve over every layer and a Jacobian spectrum', () => {
    const trainer = new StepTrainer(
      buildModel(small, () => referenceBackend),
      data.train,
      data.test,
      { batch: 8 },
    );
    const curve = trainer.gradientCurve(8);
    assert.equal(curve.index, 'layer');
    assert.equal(curve.log10Norms.length, 7);
    assert.ok(Array.from(curve.log10Norms).every(Number.isFinite));
    const diagnostics = trainer.diagnose(4, 1);
    assert.equal(diagnostics.spectrum?.log10_singular_values.length, 8);
  });

  it("measures a recurrent model's hidden-state norm at every step", () => {
    const pixels = Uint8Array.from({ length: 5 * 16 }, (_, i) => (i * 37) % 256);
    const images = new ImageDataset('mnist/test', pixels, Uint8Array.from([1, 2, 3, 4, 5]), 4, 4);
    const seq = sequentialImages('smnist/test', images, { permuted: false });
    const rnn = buildModel({ model: 'roaf-rnn', hidden: 6, data: { train: seq, test: seq } }, () => referenceBackend);
    const norms = hiddenStateNorms(rnn, seq, 3);
    assert.equal(norms.length, 17); // h_0..h_T, T = 16 pixels
    assert.equal(norms[0], 0);
    assert.ok(norms[16]! > 0 && Array.from(norms).every(Number.isFinite));
  });
});

describe('browser entry: checkpoints as bytes', () => {
  it('encodes the same bytes the file writer writes, and reads them back', () => {
    const tensors = [
      { name: 'a', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 'b', shape: [2], data: Int32Array.from([-7, 9]) },
    ];
    const path = join(mkdtempSync(join(tmpdir(), 'roaf-st-')), 'x.safetensors');
    writeSafetensors(path, tensors, { kind: 'test' });
    const bytes = encodeSafetensors(tensors, { kind: 'test' });
    assert.deepEqual(bytes, new Uint8Array(readFileSync(path)));
    const file = new SafetensorsBytes(bytes, 'x.safetensors');
    assert.equal(file.metadata.kind, 'test');
    const a = new Float32Array(6);
    file.readInto('a', a, [2, 3]);
    assert.deepEqual(Array.from(a), [1, 2, 3, 4, 5, 6]);
    assert.throws(() => file.readInto('a', a, [3, 2]), /x.safetensors: tensor a has shape \[2,3\], expected \[3,2\]/);
    assert.throws(() => new SafetensorsBytes(bytes.subarray(0, bytes.length - 4), 'cut.safetensors'), UsageError);
  });

  it('saves a model to bytes and loads it back with the same outputs', () => {
    const model = buildModel({ ...small, dtype: 'float32' }, () => referenceBackend);
    const bytes = saveModelBytes(model);
    const loaded = loadModelBytes(bytes, referenceBackend);
    assert.deepEqual(loaded.config, model.config);
    assert.deepEqual(
      modelTensors(loaded).tensors.map((t) => Array.from(t.data)),
      modelTensors(model).tensors.map((t) => Array.from(t.data)),
    );
    assert.deepEqual(Array.from(predict(loaded, data.test).logits), Array.from(predict(model, data.test).logits));
    const bare = encodeSafetensors(modelTensors(model).tensors);
    assert.throws(
      () => loadModelBytes(bare, referenceBackend, { source: 'm.safetensors' }),
      /m.safetensors: no 'config'/,
    );
    assert.ok(loadModelBytes(bare, referenceBackend, { config: model.config }));
  });
});

describe('browser entry: data and drawings', () => {
  it('builds MNIST from IDX bytes, and names the file of a bad label', () => {
    const pixels = Uint8Array.from({ length: 3 * 4 }, (_, i) => i * 20);
    const images = encodeIdx([3, 2, 2], pixels);
    const set = imagesFromIdx('test', { images, labels: encodeIdx([3], Uint8Array.from([0, 9, 4])) }, 'mem');
    assert.equal(set.count, 3);
    assert.equal(set.inputDim, 4);
    assert.deepEqual(Array.from(set.labels), [0, 9, 4]);
    assert.throws(
      () => imagesFromIdx('test', { images, labels: encodeIdx([3], Uint8Array.from([0, 10, 4])) }, 'mem'),
      /mem\/t10k-labels-idx1-ubyte: label 10 at index 1/,
    );
  });

  it('scales a drawing into a 20-pixel box and centres its mass, like MNIST', () => {
    const W = 100,
      H = 80;
    const ink = new Float32Array(W * H);
    for (let y = 5; y < 45; y++) for (let x = 60; x < 80; x++) ink[y * W + x] = 1; // a 20 x 40 bar, top right
    const digit = mnistDigit(ink, W, H)!;
    let mass = 0,
      cx = 0,
      cy = 0,
      rows = 0;
    for (let y = 0; y < 28; y++) {
      let inRow = 0;
      for (let x = 0; x < 28; x++) {
        const v = digit[y * 28 + x]!;
        mass += v;
        cx += v * (x + 0.5);
        cy += v * (y + 0.5);
        inRow += v;
      }
      if (inRow > 0) rows += 1;
    }
    assert.equal(rows, 20); // the long side is scaled to 20 pixels
    assert.ok(Math.abs(cx / mass - 14) <= 0.5 && Math.abs(cy / mass - 14) <= 0.5, `centre ${cx / mass}, ${cy / mass}`);
    assert.ok(Math.max(...digit) <= 1);
    assert.equal(mnistDigit(new Float32Array(W * H), W, H), null);
  });
});
