// A 20-step training trajectory on every available backend matches the float32 reference's: the same
// data, initialisation and Adam updates, with losses equal to a relative 1e-3 at every step (float32
// rounding differs between kernels and grows slowly along a trajectory; 1e-3 leaves room for that but
// catches any real difference in what is computed). Also the learning-rate schedules.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { referenceBackend } from '../src/backend/reference.js';
import { loadTask } from '../src/data/tasks.js';
import type { Dataset } from '../src/data/dataset.js';
import { createModel, modelConfig } from '../src/models/factory.js';
import type { ModelKind } from '../src/models/config.js';
import { DEFAULT_OPTIMIZER, Optimizer, scheduledLr } from '../src/train/optimizer.js';
import { BatchBuffers, batchLoss, epochOrder } from '../src/train/trainer.js';
import { availableBackends } from './helpers.js';

const STEPS = 20;

function trajectory(backend: Backend, kind: ModelKind, data: Dataset, extra: object): number[] {
  const outputs = data.target.kind === 'regression' ? data.target.outputs : data.target.classes;
  const model = createModel(modelConfig({ model: kind, inputDim: data.inputDim, outputs, seed: 5, ...extra }), backend);
  const optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, lr: 3e-3 }, model.params, backend);
  const B = 16;
  const buffers = new BatchBuffers(data, model, B);
  const order = epochOrder(1, 0, data.count);
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const indices = order.subarray(step * B, (step + 1) * B);
    const { loss, rows, inputs, gOutputs } = batchLoss(model, buffers, indices, true);
    losses.push(loss.lossSum / rows);
    model.params.zeroGrad();
    model.backward(B, data.steps, inputs, gOutputs);
    optimizer.step();
  }
  return losses;
}

describe('20-step training trajectories match the reference on every backend', async () => {
  const backends = (await availableBackends()).filter((b) => b.name !== 'reference');
  const mnist = loadTask('mnist', { seed: 0, trainLimit: STEPS * 16 }).train;
  const adding = loadTask('adding', { seed: 0, seqLen: 30, trainSize: STEPS * 16, testSize: 16 }).train;
  const cases: [ModelKind, Dataset, object][] = [
    ['roaf-mlp', mnist, { depth: 30, width: 32 }],
    ['roaf-mlp', mnist, { depth: 30, width: 32, filter: 'permutation', sharedFilter: true }],
    ['roaf-rnn', adding, { hidden: 24, inputScale: 3 }],
    ['lstm', adding, { hidden: 12 }],
    ['gru', adding, { hidden: 12 }],
  ];
  if (backends.length === 0) {
    it('skipped: only the reference backend is available (the native addon is not built)', (t) =>
      t.skip('no native backend'));
  }
  for (const { name, backend } of backends) {
    for (const [kind, data, extra] of cases) {
      it(`${name}: ${kind} ${JSON.stringify(extra)}`, () => {
        const expected = trajectory(referenceBackend, kind, data, extra);
        const actual = trajectory(backend, kind, data, extra);
        assert.ok(expected[STEPS - 1]! < expected[0]!, 'the reference trajectory should make progress');
        expected.forEach((want, i) => {
          const got = actual[i]!;
          const relative = Math.abs(got - want) / Math.abs(want);
          assert.ok(
            relative < 1e-3,
            `step ${i + 1}: loss ${got} vs reference ${want} (relative ${relative.toExponential(2)})`,
          );
        });
      });
    }
  }
});

describe('learning-rate schedules', () => {
  it('constant keeps the rate; cosine starts at it and decays to near 0 on the last step', () => {
    assert.equal(scheduledLr('constant', 0.01, 7, 10), 0.01);
    assert.equal(scheduledLr('cosine', 0.01, 1, 10), 0.01);
    assert.ok(Math.abs(scheduledLr('cosine', 0.01, 6, 10) - 0.005) < 1e-12);
    assert.ok(scheduledLr('cosine', 0.01, 10, 10) < 0.01 * 0.03);
    assert.ok(scheduledLr('cosine', 0.01, 10, 10) > 0);
  });
});
