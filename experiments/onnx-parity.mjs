// The ONNX figures of docs/onnx.md: models trained with `roaf train`, exported with `roaf export`, run by
// onnxruntime-web (WebAssembly, one thread) against roaf's own forward pass on 1,000 test samples; and
// the size of a 50,000-layer MLP's ONNX file against its weights.
//
//   npm run build && node experiments/onnx-parity.mjs [--samples 1000] [--only mlp-1000,roaf-rnn,...] [--skip-deep]
//
// Each model is trained briefly (a slice of the training set: the figures are about agreement, not
// accuracy) in a temporary directory. "max relative difference": over samples, max_k |onnx - roaf| /
// max_k |roaf| of the sample's K logits; "same class": the share of samples whose largest logit agrees.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-web';
import {
  createModel,
  loadBackend,
  loadModelTensors,
  loadTask,
  modelConfig,
  readCheckpointConfig,
  saveOnnx,
} from '../dist/src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'dist', 'src', 'cli', 'main.js');
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const SAMPLES = Number(arg('--samples') ?? 1000);
const only = arg('--only')?.split(',');
ort.env.wasm.numThreads = 1;

const CASES = [
  {
    name: 'mlp-1000',
    task: 'mnist',
    train: ['--model', 'roaf-mlp', '--depth', '1000', '--width', '64', '--train-limit', '12800'],
  },
  { name: 'roaf-rnn', task: 'psmnist', train: ['--model', 'roaf-rnn', '--train-limit', '6400'] },
  { name: 'lstm', task: 'psmnist', train: ['--model', 'lstm', '--hidden', '128', '--train-limit', '6400'] },
  { name: 'gru', task: 'psmnist', train: ['--model', 'gru', '--hidden', '128', '--train-limit', '6400'] },
  { name: 'copy-roaf-rnn', task: 'copy', train: ['--model', 'roaf-rnn', '--epochs', '1'] },
];

function roaf(args) {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`roaf ${args.join(' ')} failed:\n${result.stderr}`);
  return result.stdout;
}

function compare(roafLogits, onnxLogits, K, stats) {
  const rows = roafLogits.length / K;
  for (let r = 0; r < rows; r++) {
    let scale = 0,
      diff = 0,
      bestA = 0,
      bestB = 0;
    for (let k = 0; k < K; k++) {
      const a = roafLogits[r * K + k],
        b = onnxLogits[r * K + k];
      scale = Math.max(scale, Math.abs(a));
      diff = Math.max(diff, Math.abs(a - b));
      if (a > roafLogits[r * K + bestA]) bestA = k;
      if (b > onnxLogits[r * K + bestB]) bestB = k;
    }
    stats.maxRelative = Math.max(stats.maxRelative, diff / scale);
    stats.same += bestA === bestB ? 1 : 0;
    stats.rows++;
  }
}

const work = mkdtempSync(join(tmpdir(), 'roaf-onnx-parity-'));
const rows = [];
try {
  for (const c of CASES) {
    if (only && !only.includes(c.name)) continue;
    const run = join(work, c.name);
    const trainCommand = ['train', '--task', c.task, ...c.train, '--quiet', '--out', run];
    const started = performance.now();
    roaf(trainCommand);
    const onnxPath = join(work, `${c.name}.onnx`);
    const exportCommand = ['export', '--checkpoint', join(run, 'checkpoint'), '--out', onnxPath];
    roaf(exportCommand);
    const saved = readCheckpointConfig(join(run, 'checkpoint'));
    const model = createModel(saved.model, loadBackend('auto', { quiet: true }));
    loadModelTensors(join(run, 'checkpoint'), model);
    const { test } = loadTask(saved.task.name, { ...saved.task, seed: saved.training.seed, testLimit: SAMPLES });
    const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(onnxPath)));
    const { inputDim: D, outputs: K } = model.config;
    const T = test.steps;
    const stats = { maxRelative: 0, same: 0, rows: 0 };
    const batch = 200;
    for (let start = 0; start < test.count; start += batch) {
      const B = Math.min(batch, test.count - start);
      const inputs = new Float32Array(T * B * D);
      const labels = new Int32Array(test.target.kind === 'class-per-step' ? T * B : B);
      test.fillBatch(
        Int32Array.from({ length: B }, (_, i) => start + i),
        inputs,
        { labels },
      );
      const roafLogits = Float64Array.from(model.forward(B, T, inputs));
      const dims = model.recurrent ? [T, B, D] : [B, D];
      const out = await session.run({ input: new ort.Tensor('float32', inputs, dims) });
      compare(roafLogits, out.logits.data, K, stats);
    }
    const row = {
      case: c.name,
      task: c.task,
      samples: test.count,
      rows: stats.rows,
      maxRelative: stats.maxRelative,
      sameClass: stats.same / stats.rows,
      commands: [
        `roaf ${trainCommand.join(' ').replace(run, 'RUN')}`,
        `roaf ${exportCommand.join(' ').replace(run, 'RUN').replace(onnxPath, `${c.name}.onnx`)}`,
      ],
      seconds: (performance.now() - started) / 1000,
    };
    rows.push(row);
    process.stderr.write(`${JSON.stringify(row)}\n`);
    rmSync(run, { recursive: true, force: true });
  }

  if (!process.argv.includes('--skip-deep')) {
    // 50,000 layers of width 64, one shared permutation filter (a per-layer haar filter changes only the weights' size)
    const started = performance.now();
    const model = createModel(
      modelConfig({
        model: 'roaf-mlp',
        inputDim: 784,
        outputs: 10,
        depth: 50_000,
        width: 64,
        filter: 'permutation',
        sharedFilter: true,
      }),
      loadBackend('auto', { quiet: true }),
    );
    const path = join(work, 'mlp-50000.onnx');
    const saved = saveOnnx(model, path);
    const parameterBytes = model.params.size * 4;
    const deep = {
      case: 'mlp-50000 (shared permutation filter)',
      fileBytes: saved.fileBytes,
      graphBytes: saved.graphBytes,
      weightBytes: saved.weightBytes,
      parameterBytes,
      seconds: (performance.now() - started) / 1000,
    };
    // and it runs: 16 MNIST test images through 50,000 layers in onnxruntime and in roaf
    try {
      const { test } = loadTask('mnist', { seed: 0, testLimit: 16 });
      const inputs = new Float32Array(16 * 784);
      test.fillBatch(
        Int32Array.from({ length: 16 }, (_, i) => i),
        inputs,
        { labels: new Int32Array(16) },
      );
      const session = await ort.InferenceSession.create(path);
      const out = await session.run({ input: new ort.Tensor('float32', inputs, [16, 784]) });
      const stats = { maxRelative: 0, same: 0, rows: 0 };
      compare(Float64Array.from(model.forward(16, 1, inputs)), out.logits.data, 10, stats);
      Object.assign(deep, { ranSamples: 16, maxRelative: stats.maxRelative, sameClass: stats.same / stats.rows });
    } catch (error) {
      Object.assign(deep, { runError: String(error).split('\n')[0] });
    }
    rows.push(deep);
    process.stderr.write(`${JSON.stringify(deep)}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log('| model | task | samples | max relative difference | same class |');
console.log('|---|---|---:|---:|---:|');
for (const row of rows.filter((r) => r.rows !== undefined)) {
  console.log(
    `| ${row.case} | ${row.task} | ${row.samples} (${row.rows} rows) | ${row.maxRelative.toExponential(2)} | ${(100 * row.sameClass).toFixed(1)} % |`,
  );
}
for (const row of rows.filter((r) => r.rows === undefined)) {
  console.log(
    `\n${row.case}: file ${row.fileBytes} B, graph ${row.graphBytes} B, weights ${row.weightBytes} B (parameters ${row.parameterBytes} B)` +
      (row.maxRelative !== undefined
        ? `; 16 images: max relative difference ${row.maxRelative.toExponential(2)}, same class ${(100 * row.sameClass).toFixed(1)} %`
        : `; run: ${row.runError}`),
  );
}
console.log(JSON.stringify(rows));
