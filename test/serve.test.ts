// The library as a user drives it: training from partial options (the CLI's defaults for the task, the
// same run as `roaf train` bit for bit), loading a checkpoint and predicting for any batch size from
// arrays or datasets, the psMNIST permutation written where others can rebuild the data, and the README's
// two library examples run as written (the training one shrunk).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { referenceBackend } from '../src/backend/reference.js';
import type { Dataset } from '../src/data/dataset.js';
import { psmnistPermutation } from '../src/data/sequential.js';
import { loadTask } from '../src/data/tasks.js';
import { runDefaults } from '../src/models/defaults.js';
import { createModel, modelConfig } from '../src/models/factory.js';
import type { Model } from '../src/models/model.js';
import { configDifferences } from '../src/repro/resolve.js';
import { loadCheckpoint } from '../src/serve/checkpoint.js';
import { classify, predict } from '../src/serve/predict.js';
import { BatchBuffers, evaluate, runTraining } from '../src/train/trainer.js';
import type { CheckpointConfig } from '../src/train/checkpoint.js';
import { trainingConfig } from '../src/train/run-options.js';
import { UsageError } from '../src/util/errors.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'roaf-serve-'));
after(() => rmSync(work, { recursive: true, force: true }));

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function roaf(args: string[], cwd = root) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd });
}

/** The samples of a dataset as arrays, (T, D) row-major each: what a user serving a model holds. */
function samplesOf(dataset: Dataset, model: Model): Float64Array[] {
  const buffers = new BatchBuffers(dataset, model, dataset.count);
  const { inputs } = buffers.fill(Int32Array.from({ length: dataset.count }, (_, i) => i));
  const { steps: T, inputDim: D, count: B } = dataset;
  return Array.from({ length: B }, (_, b) => {
    const sample = new Float64Array(T * D);
    for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) sample[t * D + d] = inputs[(t * B + b) * D + d]!;
    return sample;
  });
}

describe('training from partial options', () => {
  it('runTraining({ model, train, test, epochs: 1 }) is the run roaf train makes with its defaults, bit for bit', () => {
    const cliRun = join(work, 'cli-mlp');
    const result = roaf([
      'train',
      '--task',
      'mnist',
      '--model',
      'roaf-mlp',
      '--depth',
      '3',
      '--width',
      '8',
      '--train-limit',
      '160',
      '--test-limit',
      '64',
      '--epochs',
      '1',
      '--backend',
      'reference',
      '--quiet',
      '--out',
      cliRun,
    ]);
    assert.equal(result.status, 0, result.stderr);

    const data = loadTask('mnist', { seed: 0, trainLimit: 160, testLimit: 64 });
    const model = createModel({ model: 'roaf-mlp', data, depth: 3, width: 8 }, referenceBackend);
    const outDir = join(work, 'library-mlp');
    const run = runTraining({
      model,
      train: data.train,
      test: data.test,
      epochs: 1,
      outDir,
      task: { name: 'mnist', trainLimit: 160, testLimit: 64 },
    });

    const saved = (dir: string) => readJson<CheckpointConfig>(join(dir, 'checkpoint', 'config.json'));
    assert.deepEqual(saved(outDir).training, saved(cliRun).training, 'the same training configuration');
    assert.deepEqual(saved(outDir).model, saved(cliRun).model, 'the same model configuration');
    assert.deepEqual(saved(outDir).training, trainingConfig('mnist', 'roaf-mlp', { epochs: 1 }));
    assert.equal(saved(outDir).training.batch, runDefaults('mnist').batch);
    assert.deepEqual(
      readFileSync(join(outDir, 'checkpoint', 'model.safetensors')),
      readFileSync(join(cliRun, 'checkpoint', 'model.safetensors')),
    );
    assert.equal(run.progress.step, Math.ceil(160 / runDefaults('mnist').batch));
  });

  it('the task comes from the data, the run directory from the model and task, the seed from the model', () => {
    const data = loadTask('adding', { seed: 3, seqLen: 6, trainSize: 20, testSize: 10 });
    const model = createModel({ data, hidden: 4, seed: 3 }, referenceBackend);
    assert.equal(model.config.model, runDefaults('adding').model);
    assert.equal(model.config.inputScale, runDefaults('adding', 'roaf-rnn').inputScale);
    assert.equal(model.config.inputDim, 2);
    assert.equal(model.config.outputs, 1);
    const previous = process.cwd();
    process.chdir(work);
    try {
      const run = runTraining({ model, ...data, epochs: 1, batch: 10 });
      assert.equal(run.progress.step, 2);
      const runs = readdirSync(join(work, 'runs'));
      assert.equal(runs.length, 1);
      assert.match(runs[0]!, /^roaf-rnn-adding-\d{8}-\d{6}$/);
      const config = readJson<CheckpointConfig>(join(work, 'runs', runs[0]!, 'checkpoint', 'config.json'));
      assert.deepEqual(
        config.task,
        { name: 'adding', seqLen: 6, trainSize: 20, testSize: 10 },
        'the task config the data tells',
      );
      assert.equal(config.training.seed, 3);
      assert.equal(config.training.optimizer.lr, runDefaults('adding').lr);
    } finally {
      process.chdir(previous);
    }
  });

  it("model creation fills the task's sizes and the kind's coefficients", () => {
    const psmnist = modelConfig({ task: 'psmnist', inputDim: 1, outputs: 10 });
    assert.equal(psmnist.model, 'roaf-rnn');
    assert.equal(psmnist.hidden, 256);
    assert.equal(psmnist.inputScale, 3);
    assert.deepEqual([psmnist.alpha, psmnist.beta], [1, 0.1]);
    const deep = modelConfig({ model: 'roaf-mlp', inputDim: 784, outputs: 10, depth: 400, width: undefined });
    assert.equal(deep.beta, 1 / 20);
    assert.equal(deep.width, 64, 'a field given as undefined takes its default');
    const complete = modelConfig(deep);
    assert.deepEqual(
      Object.entries(complete),
      Object.entries(deep),
      'a complete config comes back unchanged, in its key order',
    );
  });

  it('contradictory or missing options are UsageErrors naming the field', () => {
    const data = loadTask('mnist', { seed: 0, trainLimit: 8, testLimit: 8 });
    const model = createModel({ model: 'roaf-mlp', data, depth: 1, width: 4 }, referenceBackend);
    assert.throws(
      () => runTraining({ model, ...data, epochs: 1, training: { epochs: 2 }, outDir: join(work, 'x') }),
      (e: Error) => e instanceof UsageError && /epochs is given twice/.test(e.message),
    );
    const custom: Dataset = { ...data.train, name: 'my-data', fillBatch: data.train.fillBatch.bind(data.train) };
    assert.throws(
      () => runTraining({ model, train: custom, test: data.test, outDir: join(work, 'y') }),
      (e: Error) => e instanceof UsageError && /give options.task/.test(e.message),
    );
    assert.throws(
      () => runTraining({ model, train: custom, test: data.test, task: { name: 'mine' }, outDir: join(work, 'z') }),
      (e: Error) => e instanceof UsageError && /is needed: task 'mine' has no default recipe/.test(e.message),
    );
    assert.throws(() => runTraining({ model, ...data, lr: -1, outDir: join(work, 'w') }), /--lr must be a number > 0/);
    assert.throws(() => modelConfig({ inputDim: 3, outputs: 2 }), /give the model kind/);
    assert.throws(() => modelConfig({ model: 'gru' }), /give inputDim/);
  });
});

describe('serving: loadCheckpoint and predict', () => {
  const cases = [
    {
      name: 'roaf-mlp on mnist',
      args: ['--task', 'mnist', '--depth', '2', '--width', '8', '--train-limit', '64', '--test-limit', '40'],
    },
    {
      name: 'gru on adding',
      args: [
        '--task',
        'adding',
        '--model',
        'gru',
        '--seq-len',
        '9',
        '--hidden',
        '5',
        '--train-size',
        '32',
        '--test-size',
        '21',
      ],
    },
    {
      name: 'roaf-rnn on copy (a per-step readout)',
      args: ['--task', 'copy', '--seq-len', '3', '--hidden', '6', '--train-size', '32', '--test-size', '13'],
    },
  ];
  for (const { name, args } of cases) {
    it(`${name}: the same logits for any batch size, from arrays or the dataset, and roaf eval's figure`, () => {
      const out = join(work, name.split(' ')[0]! + '-' + name.split(' ')[2]!);
      const trained = roaf([
        'train',
        ...args,
        '--epochs',
        '1',
        '--batch',
        '16',
        '--backend',
        'reference',
        '--quiet',
        '--out',
        out,
        '--json',
      ]);
      assert.equal(trained.status, 0, trained.stderr);
      const net = loadCheckpoint(join(out, 'checkpoint'), { backend: 'reference' });
      const { test } = net.taskData();
      const whole = net.predict(test, { batch: 1000 });
      const T = test.steps,
        K = net.model.config.outputs;
      assert.deepEqual(whole.shape, net.model.config.readout === 'every' ? [test.count, T, K] : [test.count, K]);
      for (const batch of [1, 7]) assert.deepEqual(net.predict(test, { batch }).logits, whole.logits, `batch ${batch}`);
      const samples = samplesOf(test, net.model);
      assert.deepEqual(
        predict(net.model, samples, { batch: 6 }).logits,
        whole.logits,
        "arrays (sample-major) give the dataset's logits",
      );

      const evaluation = evaluate(net.model, test, 16);
      const json = JSON.parse(trained.stdout.trim().split('\n').pop()!) as {
        test_accuracy?: number;
        test_mse?: number;
      };
      if (evaluation.accuracy !== undefined) {
        // The classes reproduce the accuracy the trainer reported: predict is the trainer's forward pass.
        const classes = classify(net.model, test);
        const labels = new Int32Array(test.steps * test.count);
        const buffers = new BatchBuffers(test, net.model, test.count);
        labels.set(buffers.fill(Int32Array.from({ length: test.count }, (_, i) => i)).targets.labels!);
        // labels are (T, B) time-major for a per-step task, classes (B, T)
        let correct = 0;
        for (let b = 0; b < test.count; b++) {
          for (let t = 0; t < classes.length / test.count; t++) {
            const label = net.model.config.readout === 'every' ? labels[t * test.count + b] : labels[b];
            if (classes[b * (classes.length / test.count) + t] === label) correct += 1;
          }
        }
        assert.equal(correct / classes.length, json.test_accuracy);
      } else {
        assert.equal(evaluation.mse, json.test_mse);
      }
    });
  }

  it('wrong input sizes and a missing checkpoint are clear errors', () => {
    const net = loadCheckpoint(join(work, 'roaf-mlp-mnist', 'checkpoint'), { backend: 'reference' });
    assert.throws(
      () => net.predict([new Float32Array(784), new Float32Array(783)]),
      /sample 1 has 783 values; the model \(roaf-mlp\) reads D = 784/,
    );
    assert.deepEqual(net.predict([]).shape, [0, 10]);
    assert.throws(
      () => loadCheckpoint(join(work, 'nowhere')),
      (e: Error) => e instanceof UsageError && /no such checkpoint directory/.test(e.message),
    );
  });
});

describe('psMNIST: the permutation travels with the run', () => {
  it("roaf train writes permutation.json and the checkpoint's task.permutation; a different one is refused", () => {
    const out = join(work, 'psmnist');
    const result = roaf([
      'train',
      '--task',
      'psmnist',
      '--hidden',
      '3',
      '--train-limit',
      '4',
      '--test-limit',
      '4',
      '--batch',
      '4',
      '--backend',
      'reference',
      '--quiet',
      '--out',
      out,
    ]);
    assert.equal(result.status, 0, result.stderr);
    const expected = Array.from(psmnistPermutation());
    const file = readJson<{ permutation: number[]; generator: string }>(join(out, 'permutation.json'));
    assert.deepEqual(file.permutation, expected);
    assert.match(file.generator, /new Random\(20251\)\.permutation\(784\)/);
    const configPath = join(out, 'checkpoint', 'config.json');
    const config = readJson<CheckpointConfig>(configPath);
    assert.deepEqual(config.task.permutation, expected);
    // predict on the task's data uses the permuted sequences the model was trained on
    const net = loadCheckpoint(join(out, 'checkpoint'), { backend: 'reference' });
    assert.equal(net.predict(net.taskData().test).shape[0], 4);

    // roaf repro compares a run directory with its claim: the recorded permutation is no difference.
    const { permutation: _permutation, ...claimTask } = config.task;
    assert.deepEqual(
      configDifferences({ model: config.model, task: claimTask, training: config.training }, config),
      [],
    );

    config.task.permutation = [...expected.slice(1), expected[0]!];
    writeFileSync(configPath, JSON.stringify(config));
    const resumed = roaf(['train', '--resume', '--out', out, '--epochs', '2', '--backend', 'reference', '--quiet']);
    assert.equal(resumed.status, 2);
    assert.match(resumed.stderr, /task.permutation differs from roaf's psMNIST permutation/);
  });
});

describe("the README's library examples", () => {
  it('train (shrunk) and serve as written', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## The library'));
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const trainExample = blocks.find((b) => b.includes('runTraining('));
    const serveExample = blocks.find((b) => b.includes('loadCheckpoint('));
    assert.ok(trainExample && serveExample, 'both examples are in the README');
    const shrink: Array<[string, string]> = [
      ["loadTask('mnist', { seed: 0 })", "loadTask('mnist', { seed: 0, trainLimit: 64, testLimit: 24 })"],
      ['depth: 1000', 'depth: 2, width: 8'],
    ];
    let shrunk = trainExample;
    for (const [from, to] of shrink) {
      assert.ok(shrunk.includes(from), `the training example contains ${from}`);
      shrunk = shrunk.replace(from, to);
    }
    const dir = join(work, 'readme');
    mkdirSync(dir);
    const api = join(root, 'dist', 'src', 'index.js');
    const run = (name: string, code: string) => {
      writeFileSync(join(dir, name), code.replace("from 'roaf'", `from '${api}'`));
      const result = spawnSync(process.execPath, [name], { cwd: dir, encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      return result.stdout;
    };
    const accuracy = Number(run('train.mjs', shrunk).trim());
    assert.ok(accuracy > 0 && accuracy <= 1, `accuracy printed: ${accuracy}`);
    const lines = run('serve.mjs', serveExample).trim().split('\n');
    assert.match(lines[0]!, /^[0-9]$/, 'a class for the blank image');
    assert.match(lines[1]!, /^\[ 24, 10 \] Float32Array\(10\)/, "the test set's logits, (24, 10)");
  });
});
