// Gradient norms of the diagnostics against the model's own backward pass; the power-of-two rescaling
// that lets them continue where float32 underflows; the `--log-gradients` summaries in metrics.jsonl;
// and `roaf diagnose` on the command line (JSON, output files, one-line errors).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend, nativeLoadError } from '../src/backend/native.js';
import { referenceBackend as backend } from '../src/backend/reference.js';
import { AddingDataset } from '../src/data/adding.js';
import type { Dataset } from '../src/data/dataset.js';
import { loadTask } from '../src/data/tasks.js';
import { diagnose, type Diagnostics } from '../src/diagnostics/diagnose.js';
import {
  downsampleIndices,
  gradientSummaryCallback,
  measureGradientNorms,
  summarizeNorms,
} from '../src/diagnostics/gradients.js';
import type { ModelConfig } from '../src/models/config.js';
import { createModel } from '../src/models/factory.js';
import type { Model } from '../src/models/model.js';
import { defaultMlpBeta } from '../src/models/defaults.js';
import { readMetrics } from '../src/train/metrics.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import { BatchBuffers, batchLoss, runTraining } from '../src/train/trainer.js';

const mnist = loadTask('mnist', { seed: 0, trainLimit: 96, testLimit: 16 });
const adding = new AddingDataset({ name: 'adding/test', steps: 20, count: 8, seed: 3 });

function config(overrides: Partial<ModelConfig>): ModelConfig {
  return {
    model: 'roaf-mlp',
    inputDim: 784,
    outputs: 10,
    readout: 'last',
    depth: 12,
    width: 16,
    hidden: 12,
    alpha: 1,
    beta: 0.2,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 3,
    dtype: 'float64',
    ...overrides,
  };
}

/** ||∂loss/∂x_l|| (or h_t) from `model.backward`'s gradient hook, in layer/step order. */
function hookNorms(model: Model, dataset: Dataset, B: number): Float64Array {
  const buffers = new BatchBuffers(dataset, model, B);
  const { inputs, gOutputs } = batchLoss(
    model,
    buffers,
    Int32Array.from({ length: B }, (_, i) => i),
    true,
  );
  const norms: number[] = [];
  model.backward(B, dataset.steps, inputs, gOutputs, (index, grad) => {
    norms[model.recurrent ? index - 1 : index] = Math.sqrt(backend.sumSquares(grad.length, grad));
  });
  model.params.zeroGrad();
  return Float64Array.from(norms);
}

describe("gradient norms of diagnose equal those of the model's own backward pass", () => {
  const cases: Array<{ label: string; config: Partial<ModelConfig>; dataset: Dataset }> = [
    { label: 'roaf-mlp float64', config: {}, dataset: mnist.test },
    {
      label: 'roaf-mlp float32, permutation filters',
      config: { dtype: 'float32', filter: 'permutation' },
      dataset: mnist.test,
    },
    { label: 'mlp float32', config: { model: 'mlp', dtype: 'float32' }, dataset: mnist.test },
    { label: 'resmlp float64', config: { model: 'resmlp' }, dataset: mnist.test },
    {
      label: 'roaf-rnn float64',
      config: { model: 'roaf-rnn', inputDim: 2, outputs: 1, alpha: 1, beta: 0.3 },
      dataset: adding,
    },
    { label: 'lstm float32', config: { model: 'lstm', inputDim: 2, outputs: 1, dtype: 'float32' }, dataset: adding },
    { label: 'gru float64', config: { model: 'gru', inputDim: 2, outputs: 1 }, dataset: adding },
  ];
  for (const c of cases) {
    it(c.label, () => {
      const B = 8;
      const expected = hookNorms(createModel(config(c.config), backend), c.dataset, B);
      const result = diagnose(createModel(config(c.config), backend), c.dataset, { batch: B, samples: 0 });
      assert.equal(result.gradients.log10_norms.length, expected.length);
      assert.equal(result.gradients.index, c.dataset.steps > 1 ? 'step' : 'layer');
      result.gradients.log10_norms.forEach((log10, i) => {
        assert.ok(
          log10 !== null && Math.abs(log10 - Math.log10(expected[i]!)) < 1e-8,
          `${c.label}: entry ${i}: diagnose 10^${log10} vs backward ${expected[i]}`,
        );
      });
      const ratio = expected[0]! / expected[expected.length - 1]!;
      assert.ok(Math.abs((result.gradients.first_last_ratio as number) / ratio - 1) < 1e-7);
    });
  }

  it("goes on below float32's range where the model's backward underflows to 0 (plain MLP, depth 3000)", () => {
    const make = () => createModel(config({ model: 'mlp', depth: 3000, width: 8, dtype: 'float32' }), backend);
    const B = 4;
    const plain = hookNorms(make(), mnist.test, B);
    const model = make();
    const buffers = new BatchBuffers(mnist.test, model, B);
    const { inputs, gOutputs } = batchLoss(model, buffers, [0, 1, 2, 3], true);
    const curve = measureGradientNorms(model, B, 1, inputs, gOutputs);
    assert.equal(plain[0], 0, 'expected the plain backward to underflow at the first layer');
    assert.ok(
      Number.isFinite(curve.log10Norms[0]) && curve.log10Norms[0]! < -45,
      `log10 ||g_0|| = ${curve.log10Norms[0]}`,
    );
    // Where float32 still holds the plain norm to full precision (above its normal range), they agree.
    let compared = 0;
    for (let l = 0; l <= 3000; l++) {
      if (plain[l]! > 1e-30) {
        compared++;
        assert.ok(Math.abs(curve.log10Norms[l]! - Math.log10(plain[l]!)) < 1e-6, `layer ${l}`);
      }
    }
    assert.ok(compared > 10);
    // The curve decreases towards the input on the whole (vanishing gradients).
    assert.ok(curve.log10Norms[0]! < curve.log10Norms[1500]! && curve.log10Norms[1500]! < curve.log10Norms[3000]!);
  });

  for (const model of ['rnn', 'lstm', 'gru'] as const) {
    it(`goes on where float32 underflows through time too (${model}, T = 2000)`, () => {
      const long = new AddingDataset({ name: 'adding/test', steps: 2000, count: 4, seed: 5 });
      const make = () => createModel(config({ model, inputDim: 2, outputs: 1, hidden: 16, dtype: 'float32' }), backend);
      const plain = hookNorms(make(), long, 4);
      const result = diagnose(make(), long, { batch: 4, samples: 0 });
      const curve = result.gradients.log10_norms;
      // 1e-38: float32's smallest normal number; below it (subnormals, then 0) the plain norm loses digits.
      assert.ok(plain[0]! < 1e-38, `expected the plain backward through time to underflow at h_1: ${plain[0]}`);
      assert.ok(curve[0] !== null && curve[0]! < -100, `log10 ||∂loss/∂h_1|| = ${curve[0]}`);
      let compared = 0;
      plain.forEach((norm, t) => {
        if (norm > 1e-30) {
          compared++;
          assert.ok(Math.abs((curve[t] as number) - Math.log10(norm)) < 1e-6, `step ${t + 1}`);
        }
      });
      assert.ok(compared > 10);
      // Where the plain norm has gone, the curve goes on falling towards h_1 (vanishing gradients).
      assert.ok(curve[0]! < (curve[1000] as number) && (curve[1000] as number) < (curve[1999] as number));
    });
  }
});

const native = loadNativeBackend();

describe(
  "the gated cells' stepwise curves on the native backend",
  {
    skip: native ? false : `native backend not built: ${nativeLoadError() ?? 'unknown reason'}`,
  },
  () => {
    for (const model of ['lstm', 'gru'] as const) {
      it(`${model}: the curve equals the reference's below float32's range (T = 2000)`, () => {
        const long = new AddingDataset({ name: 'adding/test', steps: 2000, count: 4, seed: 5 });
        const cfg = config({ model, inputDim: 2, outputs: 1, hidden: 16, dtype: 'float32' });
        const want = diagnose(createModel(cfg, backend), long, { batch: 4, samples: 0 }).gradients.log10_norms;
        const got = diagnose(createModel(cfg, native!), long, { batch: 4, samples: 0 }).gradients.log10_norms;
        assert.ok((want[0] as number) < -100);
        // float32 products summed in another order: 1e-5 in log10 is 2e-5 relative, after 2,000 steps.
        want.forEach((w, t) =>
          assert.ok(Math.abs((got[t] as number) - (w as number)) < 1e-5, `step ${t + 1}: ${got[t]} vs ${w}`),
        );
      });
    }
  },
);

describe('--log-gradients summaries', () => {
  it('downsamples to at most 64 evenly spaced points including both ends', () => {
    assert.deepEqual(downsampleIndices(5), [0, 1, 2, 3, 4]);
    const picked = downsampleIndices(50_001);
    assert.equal(picked.length, 64);
    assert.equal(picked[0], 0);
    assert.equal(picked[63], 50_000);
    for (let i = 1; i < picked.length; i++) assert.ok(picked[i]! > picked[i - 1]!);
    const summary = summarizeNorms(
      'step',
      Float64Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.equal(summary.positions[0], 1);
    assert.equal(summary.positions[63], 100);
    assert.deepEqual(
      [summary.min, summary.max, summary.first, summary.last, summary.first_last_ratio],
      [1, 100, 1, 100, 0.01],
    );
  });

  it('runTraining writes one summary per evaluation into metrics.jsonl', () => {
    const outDir = mkdtempSync(join(tmpdir(), 'roaf-loggrad-'));
    const model = createModel(config({ depth: 100, width: 8, dtype: 'float32' }), backend);
    runTraining({
      model,
      train: mnist.train,
      test: mnist.test,
      outDir,
      task: { name: 'mnist', trainLimit: 96, testLimit: 16 },
      training: {
        epochs: 1,
        batch: 32,
        optimizer: { ...DEFAULT_OPTIMIZER, lr: 1e-3 },
        clip: 0,
        evalEvery: 1,
        checkpointEvery: 0,
        logGradients: true,
        seed: 0,
      },
      callbacks: { gradientSummary: gradientSummaryCallback },
    });
    const { records, skipped } = readMetrics(join(outDir, 'metrics.jsonl'));
    assert.deepEqual(skipped, []);
    assert.equal(records.length, 3); // steps 1, 2 and the end of the epoch
    for (const record of records) {
      const g = record.gradients as ReturnType<typeof summarizeNorms>;
      assert.equal(g.index, 'layer');
      assert.equal(g.count, 101);
      assert.ok(g.positions.length <= 64 && g.positions[0] === 0 && g.positions[g.positions.length - 1] === 100);
      assert.equal(g.norms.length, g.positions.length);
      assert.ok(g.min <= g.first && g.first <= g.max && g.min > 0);
      assert.ok(Math.abs((g.first_last_ratio as number) - g.first / g.last) < 1e-12);
    }
  });
});

describe('roaf diagnose (CLI)', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'diagnose', ...args], { encoding: 'utf8' });

  it('--json prints one JSON object with curves, spectrum and bound check; --out writes JSON, SVG and PNG', () => {
    const out = mkdtempSync(join(tmpdir(), 'roaf-diagnose-'));
    const result = run(
      '--model',
      'roaf-mlp',
      '--depth',
      '30',
      '--width',
      '16',
      '--batch',
      '8',
      '--json',
      '--quiet',
      '--out',
      out,
      '--backend',
      'reference',
    );
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const d = JSON.parse(lines[0]!) as Diagnostics;
    assert.equal(d.gradients.log10_norms.length, 31);
    assert.ok(d.spectrum !== null, 'no spectrum');
    assert.equal(d.spectrum.log10_singular_values.length, 16);
    const { min, median, max, condition } = d.spectrum.log10;
    assert.ok(
      min !== null && median !== null && max !== null && condition !== null,
      'a log10 spectrum summary is null',
    );
    assert.ok(min <= median && median <= max);
    assert.ok(Math.abs(condition - (max - min)) < 1e-8);
    assert.equal(d.bounds.applicable, true);
    assert.equal(d.bounds.inside, true);
    assert.equal(d.config.beta, defaultMlpBeta(30)); // the depth-dependent default
    for (const file of ['diagnose.json', 'gradient-norms.svg', 'gradient-norms.png', 'spectrum.svg', 'spectrum.png']) {
      assert.ok(existsSync(join(out, file)), `missing ${file}`);
    }
    assert.match(readFileSync(join(out, 'spectrum.svg'), 'utf8'), /^<svg[^>]*>.*<path/s);
    assert.deepEqual([...readFileSync(join(out, 'spectrum.png')).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });

  it('an unknown model, a flat model on a sequence task, or no model give one-line errors with exit code 2', () => {
    for (const [args, pattern] of [
      [['--model', 'transformer'], /--model must be one of roaf-mlp, .*got 'transformer'/],
      [['--model', 'roaf-mlp', '--task', 'adding'], /feed-forward: it needs a flat task/],
      [[], /needs --model KIND .* or --checkpoint DIR/],
      [['--checkpoint', '/nonexistent/run/checkpoint'], /no such checkpoint directory/],
    ] as const) {
      const result = run(...args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      const lines = result.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.includes('using the reference backend'));
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});
