// roaf and its PyTorch twin (python/roaf_torch.py) agree: logits of every kind on real data (float64:
// ≤ 1e-5 relative), every parameter's gradient on one batch (PyTorch autograd against roaf's hand-written
// backward, float32: ≤ 1e-4 relative, on each backend), the round trip roaf → PyTorch → roaf (roaf eval
// gives the same figures; --resume continues, bit for bit when the optimiser state is carried over), modules
// PyTorch builds fresh (roaf's initialisation rules; saved, roaf loads and computes them alike), and the
// data roaf_torch rebuilds (psMNIST permutation, epoch order, adding and copy samples).
//
// Runs Debian's python3-torch (/usr/bin/python3): skipped, saying why, where it or torch is missing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/backend.js';
import { loadBackend } from '../src/backend/index.js';
import { referenceBackend } from '../src/backend/reference.js';
import { limitDataset, type Dataset, type TaskData } from '../src/data/dataset.js';
import { psmnistPermutation } from '../src/data/sequential.js';
import { loadTask, type TaskName, type TaskOptions } from '../src/data/tasks.js';
import type { ModelConfig, ModelKind } from '../src/models/config.js';
import { createModel, modelConfig, resolveBaseline } from '../src/models/factory.js';
import { loadCheckpoint } from '../src/serve/checkpoint.js';
import type { Model } from '../src/models/model.js';
import { predict } from '../src/serve/predict.js';
import type { TaskConfig } from '../src/train/checkpoint.js';
import { trainingConfig } from '../src/train/run-options.js';
import { SafetensorsFile, writeSafetensors, type NamedTensor } from '../src/train/safetensors.js';
import { BatchBuffers, batchLoss, epochOrder, runTraining } from '../src/train/trainer.js';
import { PYTHON, torchMissing } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const missing = torchMissing();
const work = mkdtempSync(join(tmpdir(), 'roaf-torch-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Case {
  name: string;
  model: ModelKind;
  task: TaskName;
  config: Partial<ModelConfig>;
  /** Test samples whose logits are compared. */
  samples: number;
}

const IMAGE_CASES: Case[] = [
  { name: 'roaf-mlp', model: 'roaf-mlp', task: 'mnist', config: { depth: 4, width: 16 }, samples: 200 },
  { name: 'mlp', model: 'mlp', task: 'mnist', config: { depth: 4, width: 16 }, samples: 200 },
  { name: 'resmlp', model: 'resmlp', task: 'mnist', config: { depth: 4, width: 16 }, samples: 200 },
  { name: 'roaf-rnn', model: 'roaf-rnn', task: 'psmnist', config: { hidden: 12 }, samples: 24 },
  { name: 'rnn', model: 'rnn', task: 'psmnist', config: { hidden: 12 }, samples: 24 },
  { name: 'lstm', model: 'lstm', task: 'psmnist', config: { hidden: 8 }, samples: 24 },
  { name: 'gru', model: 'gru', task: 'psmnist', config: { hidden: 8 }, samples: 24 },
];
/** Other filters, stacks, a per-step readout and a regression loss. */
const MORE_CASES: Case[] = [
  {
    name: 'roaf-mlp, permutation filters',
    model: 'roaf-mlp',
    task: 'mnist',
    config: { depth: 3, width: 16, filter: 'permutation' },
    samples: 100,
  },
  {
    name: 'roaf-rnn, 2 layers, cycle filter, copy (per-step readout)',
    model: 'roaf-rnn',
    task: 'copy',
    config: { hidden: 8, layers: 2, filter: 'cycle' },
    samples: 16,
  },
  {
    name: 'lstm, 2 layers, adding (MSE)',
    model: 'lstm',
    task: 'adding',
    config: { hidden: 6, layers: 2 },
    samples: 16,
  },
  { name: 'gru, 2 layers, smnist', model: 'gru', task: 'smnist', config: { hidden: 5, layers: 2 }, samples: 8 },
];
const CASES = [...IMAGE_CASES, ...MORE_CASES];
const GRADIENT_BATCH = 16;

/** The task of a case: 32 training samples (two steps of 16), 16 for the 784-step sequences (one step). */
function taskOf(c: Case): TaskConfig & TaskOptions {
  const generated = c.task === 'adding' || c.task === 'copy';
  const train = c.task === 'psmnist' || c.task === 'smnist' ? GRADIENT_BATCH : 2 * GRADIENT_BATCH;
  const sizes = generated
    ? { seqLen: c.task === 'adding' ? 30 : 5, trainSize: train, testSize: c.samples }
    : { trainLimit: train, testLimit: c.samples };
  return { name: c.task, seed: 0, ...sizes };
}

const images = new Map<string, TaskData>();

/** The data of a case; each image task is read once (the file's first samples are the limited splits). */
function dataOf(c: Case): TaskData {
  const task = taskOf(c);
  if (c.task === 'adding' || c.task === 'copy') return loadTask(c.task, task);
  if (!images.has(c.task)) images.set(c.task, loadTask(c.task, { seed: 0 }));
  const all = images.get(c.task)!;
  return { train: limitDataset(all.train, task.trainLimit!), test: limitDataset(all.test, task.testLimit!) };
}

function slug(name: string): string {
  return name.replace(/[^a-z0-9]+/gi, '-');
}

/** The gradients of roaf's backward on the first GRADIENT_BATCH training samples, in a float32 or float64 copy of `model`. */
function roafGradients(model: Model, train: Dataset, dtype: 'float32' | 'float64', backend: Backend): NamedTensor[] {
  const copy = createModel({ ...model.config, dtype }, backend);
  copy.params.values.set(model.params.values); // the trained weights (cast to float32: round to nearest, as torch does)
  const indices = Int32Array.from({ length: GRADIENT_BATCH }, (_, i) => i);
  const buffers = new BatchBuffers(train, copy, GRADIENT_BATCH);
  const { loss, rows, inputs, gOutputs } = batchLoss(copy, buffers, indices, true);
  copy.params.zeroGrad();
  copy.backward(GRADIENT_BATCH, train.steps, inputs, gOutputs);
  const perValue = train.target.kind === 'regression' ? rows * train.target.outputs : rows;
  const lossValue =
    dtype === 'float64' ? Float64Array.of(loss.lossSum / perValue) : Float32Array.of(loss.lossSum / perValue);
  return [
    ...copy.params.parameters.map((p) => ({ name: p.name, shape: [...p.shape], data: p.grad })),
    { name: 'loss', shape: [1], data: lossValue },
  ];
}

function roaf(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

function lastJson(stdout: string): Record<string, number> {
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
}

interface Results {
  logits: Record<string, { relative: number; shape: number[] }>;
  gradients: Record<
    string,
    { loss: number; parameters: Record<string, number>; worst: number; worst_parameter: string }
  >;
  roundtrip: Record<string, { out: string }>;
  fresh: Record<string, { std_over_rule: Record<string, number>; orthogonality: number; permutations: boolean[] }>;
  data: {
    permutation: number[];
    epochOrder: number[];
    adding: { inputs: number[]; targets: number[] };
    copy: { inputs: number[]; labels: number[] };
  };
}

describe('PyTorch (python/roaf_torch.py) against roaf', { skip: missing ?? false }, () => {
  let results: Results;
  const backends: Array<{ name: string; backend: Backend }> = [{ name: 'reference', backend: referenceBackend }];
  const native = loadBackend('native', { quiet: true });
  if (native !== null) backends.push({ name: 'native', backend: native });
  const runDir = (c: Case) => join(work, slug(c.name));
  /** Parameter names of each case's model, in roaf's order. */
  const parameterNames = new Map<string, string[]>();
  const ROUNDTRIP = [CASES[0]!, MORE_CASES[2]!];
  const DATA = { seed: 7, indices: [0, 3, 11], addingSteps: 9, copyBlanks: 4 };
  /** Modules PyTorch builds fresh and saves for roaf. */
  const FRESH: Case[] = [
    { name: 'fresh roaf-mlp', model: 'roaf-mlp', task: 'mnist', config: { depth: 4, width: 16 }, samples: 50 },
    {
      name: 'fresh roaf-rnn, 2 layers, permutation filters',
      model: 'roaf-rnn',
      task: 'psmnist',
      config: { hidden: 16, layers: 2, filter: 'permutation' },
      samples: 6,
    },
    { name: 'fresh lstm', model: 'lstm', task: 'adding', config: { hidden: 32 }, samples: 12 },
  ];
  const freshDir = (c: Case) => join(work, slug(c.name));
  const freshLogits = (c: Case) => join(work, `${slug(c.name)}-logits.safetensors`);

  before(() => {
    const manifest: Record<string, Record<string, unknown>> = { logits: {}, gradients: {}, roundtrip: {}, data: DATA };
    for (const c of CASES) {
      // A float64 model trained for two steps on the task's real data, on the reference backend.
      const task = taskOf(c);
      const data = dataOf(c);
      const model = createModel({ model: c.model, data, dtype: 'float64', ...c.config }, referenceBackend);
      const { seed: _seed, ...taskConfig } = task;
      runTraining({ model, ...data, task: taskConfig, epochs: 1, batch: GRADIENT_BATCH, outDir: runDir(c) });
      parameterNames.set(
        c.name,
        model.params.parameters.map((p) => p.name),
      );
      const checkpoint = join(runDir(c), 'checkpoint');
      const { logits, shape } = predict(model, data.test);
      const logitsFile = join(work, `${slug(c.name)}-logits.safetensors`);
      writeSafetensors(logitsFile, [{ name: 'logits', shape, data: logits }]);
      manifest.logits![c.name] = {
        checkpoint,
        split: 'test',
        indices: Array.from({ length: c.samples }, (_, i) => i),
        file: logitsFile,
      };
      const gradientRuns: Array<[string, 'float32' | 'float64', Backend]> = [
        ['float64 reference', 'float64', referenceBackend],
        ...backends.map(({ name, backend }): [string, 'float32', Backend] => [`float32 ${name}`, 'float32', backend]),
      ];
      for (const [label, dtype, backend] of gradientRuns) {
        const file = join(work, `${slug(c.name)}-${slug(label)}-gradients.safetensors`);
        writeSafetensors(file, roafGradients(model, data.train, dtype, backend));
        manifest.gradients![`${c.name} | ${label}`] = {
          checkpoint,
          dtype,
          file,
          indices: Array.from({ length: GRADIENT_BATCH }, (_, i) => i),
        };
      }
    }
    for (const [i, c] of ROUNDTRIP.entries()) {
      for (const optimizer of i === 0 ? ['roaf', 'fresh'] : ['roaf']) {
        manifest.roundtrip![`${c.name} | ${optimizer}`] = {
          checkpoint: join(runDir(c), 'checkpoint'),
          optimizer,
          out: join(work, `${slug(c.name)}-torch-${optimizer}`, 'checkpoint'),
        };
      }
    }
    manifest.fresh = Object.fromEntries(
      FRESH.map((c) => {
        const { seed: _seed, ...task } = taskOf(c);
        const config = modelConfig({ model: c.model, data: dataOf(c), dtype: 'float64', ...c.config });
        return [
          c.name,
          {
            config: resolveBaseline(config),
            task,
            training: trainingConfig(c.task, c.model, { epochs: 1 }),
            out: join(freshDir(c), 'checkpoint'),
            indices: Array.from({ length: c.samples }, (_, i) => i),
            logits: freshLogits(c),
          },
        ];
      }),
    );
    const manifestPath = join(work, 'manifest.json');
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const python = spawnSync(PYTHON, [join(root, 'python', 'parity_check.py'), manifestPath], {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    assert.equal(python.status, 0, python.stderr);
    results = JSON.parse(python.stdout) as Results;
  });

  for (const c of CASES) {
    it(`${c.name}: logits (float64) and every parameter's gradient (float32 on each backend, and float64)`, (t) => {
      const logits = results.logits[c.name]!;
      t.diagnostic(`logits max relative difference ${logits.relative.toExponential(2)} over ${logits.shape.join('x')}`);
      assert.ok(logits.relative <= 1e-5, `logits differ by ${logits.relative}`);
      for (const [key, gradients] of Object.entries(results.gradients).filter(([key]) =>
        key.startsWith(`${c.name} |`),
      )) {
        const float32 = key.includes('float32');
        const tolerance = float32 ? 1e-4 : 1e-10;
        t.diagnostic(
          `${key}: worst gradient relative difference ${gradients.worst.toExponential(2)} (${gradients.worst_parameter}), loss ${gradients.loss.toExponential(2)}`,
        );
        assert.deepEqual(
          Object.keys(gradients.parameters).sort(),
          [...parameterNames.get(c.name)!].sort(),
          'every parameter compared',
        );
        for (const [name, relative] of Object.entries(gradients.parameters)) {
          assert.ok(
            relative <= tolerance,
            `${key}: gradient of ${name} differs by ${relative} (tolerance ${tolerance})`,
          );
        }
        assert.ok(gradients.loss <= (float32 ? 1e-5 : 1e-12), `${key}: loss differs by ${gradients.loss}`);
      }
    });
  }

  for (const [i, c] of ROUNDTRIP.entries()) {
    it(`${c.name}: roaf → PyTorch → roaf evaluates the same and resumes (bit for bit with the optimiser state)`, () => {
      const carried = join(work, `${slug(c.name)}-torch-roaf`);
      const fresh = join(work, `${slug(c.name)}-torch-fresh`);
      // What the run itself measured at its end (roaf eval of the original reproduces it: test/cli.test.ts).
      const metrics = readFileSync(join(runDir(c), 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n');
      const { test_loss, test_accuracy, test_mse } = JSON.parse(metrics[metrics.length - 1]!) as Record<string, number>;
      for (const dir of i === 0 ? [carried, fresh] : [carried]) {
        const result = roaf(['eval', '--checkpoint', join(dir, 'checkpoint'), '--json', '--backend', 'reference']);
        assert.equal(result.status, 0, result.stderr);
        const figures = lastJson(result.stdout);
        assert.deepEqual(
          [figures.test_loss, figures.test_accuracy, figures.test_mse],
          [test_loss, test_accuracy, test_mse],
          `roaf eval of ${dir}`,
        );
      }

      // Resuming the original and the round-tripped checkpoint for one more epoch: the same run.
      const copy = join(work, `${slug(c.name)}-copy`);
      cpSync(runDir(c), copy, { recursive: true });
      for (const dir of i === 0 ? [copy, carried, fresh] : [copy, carried]) {
        const resumed = roaf([
          'train',
          '--resume',
          '--out',
          dir,
          '--epochs',
          '2',
          '--backend',
          'reference',
          '--quiet',
          '--json',
        ]);
        assert.equal(resumed.status, 0, resumed.stderr);
        assert.equal(lastJson(resumed.stdout).step, 4, 'two more steps after the two of the first epoch');
      }
      for (const file of ['model.safetensors', 'optimizer.safetensors']) {
        assert.deepEqual(
          readFileSync(join(carried, 'checkpoint', file)),
          readFileSync(join(copy, 'checkpoint', file)),
          file,
        );
      }
      if (i === 0) {
        assert.notDeepEqual(
          readFileSync(join(fresh, 'checkpoint', 'model.safetensors')),
          readFileSync(join(copy, 'checkpoint', 'model.safetensors')),
          'a fresh optimiser state restarts Adam',
        );
      }
    });
  }

  for (const c of FRESH) {
    it(`${c.name}: built by PyTorch with roaf's initialisation rules, saved, and computed alike by roaf`, (t) => {
      const fresh = results.fresh[c.name]!;
      assert.ok(Object.keys(fresh.std_over_rule).length >= 2, 'weights large enough to measure');
      for (const [name, ratio] of Object.entries(fresh.std_over_rule)) {
        assert.ok(ratio > 0.85 && ratio < 1.15, `${name}: standard deviation ${ratio} times its rule's`);
      }
      assert.ok(fresh.orthogonality < 1e-12, `filters orthogonal to ${fresh.orthogonality}`);
      if (c.config.filter === 'permutation')
        assert.deepEqual(fresh.permutations, [true, true, true, true], 'two signed permutations');
      const net = loadCheckpoint(join(freshDir(c), 'checkpoint'), { backend: 'reference' });
      const { logits } = net.predict(net.taskData().test);
      const expected = new SafetensorsFile(freshLogits(c));
      const torchLogits = new Float64Array(logits.length);
      expected.readInto('logits', torchLogits, expected.entries.get('logits')!.shape);
      let worst = 0,
        scale = 0;
      for (let i = 0; i < logits.length; i++) {
        worst = Math.max(worst, Math.abs(logits[i]! - torchLogits[i]!));
        scale = Math.max(scale, Math.abs(torchLogits[i]!));
      }
      t.diagnostic(
        `roaf's logits of the PyTorch-built model: max relative difference ${(worst / scale).toExponential(2)}`,
      );
      assert.ok(worst <= 1e-10 * scale, `logits differ by ${worst / scale}`);
    });
  }

  it("roaf_torch rebuilds roaf's data: the psMNIST permutation, the epoch order, adding and copy samples", () => {
    assert.deepEqual(results.data.permutation, Array.from(psmnistPermutation()));
    assert.deepEqual(results.data.epochOrder, Array.from(epochOrder(DATA.seed, 1, 50)));
    const B = DATA.indices.length;
    const adding = loadTask('adding', { seed: DATA.seed, seqLen: DATA.addingSteps, testSize: 20 }).test;
    const addingInputs = new Float64Array(DATA.addingSteps * B * 2);
    const addingTargets = new Float64Array(B);
    adding.fillBatch(DATA.indices, addingInputs, { values: addingTargets });
    assert.deepEqual(results.data.adding.inputs, Array.from(addingInputs));
    assert.deepEqual(results.data.adding.targets, Array.from(addingTargets));
    const copy = loadTask('copy', { seed: DATA.seed, seqLen: DATA.copyBlanks, trainSize: 20 }).train;
    const copyInputs = new Float64Array(copy.steps * B * 10);
    const copyLabels = new Int32Array(copy.steps * B);
    copy.fillBatch(DATA.indices, copyInputs, { labels: copyLabels });
    assert.deepEqual(results.data.copy.inputs, Array.from(copyInputs));
    assert.deepEqual(results.data.copy.labels, Array.from(copyLabels));
  });
});
