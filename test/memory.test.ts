// Activation checkpointing of the feed-forward stack: a model that keeps only every k-th layer's input and
// recomputes the segments in the backward pass computes exactly what the full-memory model computes, bit
// for bit, on every backend, for any segment length (also one that does not divide the depth).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FloatArray } from '../src/backend/backend.js';
import { referenceBackend } from '../src/backend/reference.js';
import { createModel } from '../src/models/factory.js';
import type { ModelConfig } from '../src/models/config.js';
import { RoafMLP } from '../src/models/roaf-mlp.js';
import { defaultSegmentLength } from '../src/models/kind.js';
import { modelKind } from '../src/models/kinds.js';
import { measureGradientNorms } from '../src/diagnostics/gradients.js';
import { Random } from '../src/util/random.js';
import { availableBackends, randomArray } from './helpers.js';

const B = 5;

function mlpConfig(overrides: Partial<ModelConfig>): ModelConfig {
  return {
    model: 'roaf-mlp',
    inputDim: 6,
    outputs: 3,
    readout: 'last',
    depth: 10,
    width: 8,
    hidden: 8,
    alpha: 1,
    beta: 0.3,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 11,
    dtype: 'float32',
    ...overrides,
  };
}

/** Logits, parameter gradients and the hook's gradient curve of one forward/backward pass. */
function pass(model: RoafMLP, inputs: FloatArray, gOut: FloatArray, withHook: boolean) {
  model.params.grads.fill(0);
  const logits = Float64Array.from(model.forward(B, 1, inputs));
  const curve: number[] = [];
  model.backward(B, 1, inputs, gOut, withHook ? (_l, g) => curve.push(...g) : undefined);
  return { logits, grads: Float64Array.from(model.params.grads), curve };
}

function assertSameBits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}[${i}]: ${a[i]} (full) vs ${b[i]} (checkpoint)`);
  }
}

describe('activation checkpointing equals full memory, bit for bit', async () => {
  for (const { name, backend } of await availableBackends()) {
    const cases: Array<[Partial<ModelConfig>, number]> = [
      [{ depth: 10 }, 1],
      [{ depth: 10 }, 3],
      [{ depth: 10 }, 4],
      [{ depth: 10 }, 10],
      [{ depth: 7, filter: 'permutation' }, 2],
      [{ depth: 9, sharedFilter: true }, 3],
      [{ depth: 6, alpha: 0, beta: 1 }, 4],
    ];
    for (const [overrides, k] of cases) {
      it(`${name}: ${JSON.stringify(overrides)}, segments of ${k}`, () => {
        const config = mlpConfig(overrides);
        const full = createModel(config, backend) as RoafMLP;
        const checkpointed = createModel(config, backend) as RoafMLP;
        checkpointed.setMemoryMode('checkpoint', k);
        const rng = new Random(5);
        const inputs = randomArray(B * config.inputDim, rng, 1, 'float32');
        const gOut = randomArray(B * config.outputs, rng, 1, 'float32');
        for (const withHook of [false, true]) {
          const a = pass(full, inputs, gOut, withHook);
          const b = pass(checkpointed, inputs, gOut, withHook);
          assertSameBits(a.logits, b.logits, 'logits');
          assertSameBits(a.grads, b.grads, `gradients${withHook ? ' (with hook)' : ''}`);
          assertSameBits(a.curve, b.curve, 'hook curve');
        }
        // Diagnostics read the saved layer inputs: recomputed segments give the same curve.
        full.forward(B, 1, inputs);
        checkpointed.forward(B, 1, inputs);
        const curveFull = measureGradientNorms(full, B, 1, inputs, gOut).log10Norms;
        const curveCheckpointed = measureGradientNorms(checkpointed, B, 1, inputs, gOut).log10Norms;
        assertSameBits(curveFull, curveCheckpointed, 'diagnostic gradient curve');
      });
    }
  }

  it('stores fewer activations, and the default segment is about sqrt(L/2)', () => {
    assert.equal(defaultSegmentLength(50_000), 158);
    assert.equal(defaultSegmentLength(1), 1);
    const config = mlpConfig({ depth: 200 });
    const model = createModel(config, referenceBackend) as RoafMLP;
    const kind = modelKind('roaf-mlp');
    const full = kind.activationBytes(config, B, 1, model.memory);
    model.setMemoryMode('checkpoint');
    assert.equal(model.memory.segmentLength, 10);
    const checkpointed = kind.activationBytes(config, B, 1, model.memory);
    assert.ok(checkpointed * 8 < full, `checkpointed ${checkpointed} bytes, full ${full}`);
    // what the model really allocates: xs (k+1), as (k), the segment inputs (S+1), grads (2), gz, logits
    model.forward(B, 1, new Float32Array(B * config.inputDim));
    assert.equal(checkpointed, 4 * ((11 + 10 + 21 + 2 + 1) * B * 8 + B * 3));
    assert.throws(() => model.setMemoryMode('checkpoint', 0), /segment length/);
  });
});

describe('roaf train/bench/diagnose --memory', () => {
  const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
  const work = mkdtempSync(join(tmpdir(), 'roaf-memory-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const roaf = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  const SMALL = [
    '--task',
    'mnist',
    '--model',
    'roaf-mlp',
    '--depth',
    '23',
    '--width',
    '8',
    '--train-limit',
    '256',
    '--test-limit',
    '64',
    '--batch',
    '32',
    '--epochs',
    '1',
    '--quiet',
    '--json',
  ];

  it('train: a checkpointed run saves the same model, bit for bit, and says which mode it used', () => {
    const runs: Record<string, Buffer> = {};
    for (const mode of ['full', 'checkpoint'] as const) {
      const out = join(work, mode);
      const result = roaf(['train', ...SMALL, '--memory', mode, '--out', out]);
      assert.equal(result.status, 0, result.stderr);
      const json = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
      assert.equal(json.memory, mode);
      assert.ok(typeof json.peak_rss_bytes === 'number' && json.peak_rss_bytes > 0);
      runs[mode] = readFileSync(join(out, 'checkpoint', 'model.safetensors'));
    }
    assert.deepEqual(runs.checkpoint, runs.full);
  });

  it('auto keeps everything for a small model', () => {
    const result = roaf(['train', ...SMALL, '--out', join(work, 'auto')]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>).memory, 'full');
  });

  it('bench and diagnose take it too', () => {
    const bench = roaf([
      'bench',
      '--model',
      'roaf-mlp',
      '--depth',
      '30',
      '--width',
      '8',
      '--batch',
      '8',
      '--repeats',
      '1',
      '--warmup',
      '1',
      '--memory',
      'checkpoint',
      '--json',
    ]);
    assert.equal(bench.status, 0, bench.stderr);
    assert.equal(
      (JSON.parse(bench.stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>).memory,
      'checkpoint',
    );
    const diagnosed = roaf([
      'diagnose',
      '--model',
      'roaf-mlp',
      '--depth',
      '30',
      '--width',
      '8',
      '--batch',
      '4',
      '--no-spectrum',
      '--memory',
      'checkpoint',
      '--json',
      '--quiet',
    ]);
    assert.equal(diagnosed.status, 0, diagnosed.stderr);
  });

  it('bad values: one line naming the option, exit code 2', () => {
    const wrong = roaf(['train', ...SMALL, '--memory', 'sometimes', '--out', join(work, 'wrong')]);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /--memory must be one of auto, full, checkpoint, got 'sometimes'/);
    assert.equal(existsSync(join(work, 'wrong')), false, 'nothing written');
    const recurrent = roaf([
      'train',
      '--task',
      'adding',
      '--seq-len',
      '8',
      '--train-size',
      '32',
      '--test-size',
      '8',
      '--hidden',
      '4',
      '--memory',
      'checkpoint',
      '--quiet',
      '--out',
      join(work, 'recurrent'),
    ]);
    assert.equal(recurrent.status, 2);
    assert.match(recurrent.stderr, /--memory checkpoint: .*feed-forward/);
  });
});
