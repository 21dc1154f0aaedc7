// `roaf bench` and `roaf info --peak`: the JSON fields a benchmark harness reads, and clear errors for bad options.
// (Timing itself is never asserted: CI machines are noisy.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { loadNativeBackend, nativeLoadError } from '../src/backend/native.js';
import { PYTHON, torchMissing } from './helpers.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

function roaf(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

describe('roaf bench', () => {
  for (const [model, shape] of [
    ['roaf-rnn', ['--hidden', '8', '--seq-len', '5']],
    ['roaf-mlp', ['--depth', '4', '--width', '8']],
  ] as const) {
    it(`${model}: --json reports ms_per_batch and a finite loss`, () => {
      const result = roaf([
        'bench',
        '--model',
        model,
        ...shape,
        '--batch',
        '4',
        '--repeats',
        '2',
        '--warmup',
        '1',
        '--json',
      ]);
      assert.equal(result.status, 0, result.stderr);
      const lines = result.stdout.trim().split('\n');
      const json = JSON.parse(lines.at(-1) ?? '') as Record<string, number | string>;
      assert.equal(json.model, model);
      assert.ok(typeof json.ms_per_batch === 'number' && json.ms_per_batch > 0, `ms_per_batch ${json.ms_per_batch}`);
      assert.ok(Number.isFinite(Number(json.last_loss)), `last_loss ${json.last_loss}`);
      assert.ok(Number(json.flops_per_batch) > 0);
    });
  }

  it('a bad option is one line, exit code 2', () => {
    const result = roaf(['bench', '--model', 'roaf-rnn', '--hidden', '0']);
    assert.equal(result.status, 2);
    assert.match(result.stderr.trim(), /^roaf: --hidden .*got 0$/m);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
});

describe('roaf info --peak', () => {
  it('reports the backend, and the FMA peak per core exactly when the native backend is there to measure it', () => {
    const result = roaf(['info', '--peak', '--json']);
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    const info = JSON.parse(lines.at(-1) ?? '') as Record<string, unknown>;
    if (info.backend === 'native') {
      const peak = info.fma_peak_gflops as number;
      assert.ok(Number.isFinite(peak) && peak > 0.1, `fma_peak_gflops ${peak}`);
    } else {
      assert.equal(info.fma_peak_gflops, null);
    }
    const plain = roaf(['info']);
    assert.equal(plain.status, 0, plain.stderr);
    assert.doesNotMatch(plain.stdout, /FMA peak/); // measured only when asked: it takes a second
  });
});

describe('bench/gemm.js options', () => {
  const GEMM = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'gemm.js');
  const gemm = (args: string[]) => spawnSync(process.execPath, [GEMM, ...args], { encoding: 'utf8' });

  it('--help prints the options and exits 0 without timing anything', () => {
    const result = gemm(['--help']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /--repeats R/);
    assert.doesNotMatch(result.stdout, /GFLOPS/);
  });

  for (const [args, pattern] of [
    [['--repeats', '0'], /--repeats must be an integer >= 1 and <= 1000, got 0/],
    [['--isa', 'x86'], /--isa must be one of avx512, avx2, portable, got 'x86'/],
    [['--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    it(`${args.join(' ')}: names the option and the allowed values, exit code 2`, () => {
      const result = gemm([...args]);
      assert.equal(result.status, 2, result.stdout);
      assert.match(result.stderr, pattern);
    });
  }
});

// The PyTorch peer's formulations are what roaf's speed ratios are measured against: each must compute the
// same loss and gradients as the formula written literally, or its time means nothing. torch_bench.py checks
// that itself before timing; here it runs on small shapes and every formulation must pass, for both filters.
describe('bench/peers/torch_bench.py', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const SCRIPT = join(root, 'bench', 'peers', 'torch_bench.py');
  const missing = torchMissing();
  const torchBench = (configs: object[]) =>
    spawnSync(
      PYTHON,
      [SCRIPT, '--configs', JSON.stringify(configs), '--threads', '1', '--repeats', '1', '--warmup', '1'],
      { encoding: 'utf8' },
    );

  it(
    'every formulation of each model agrees with the literal formula (Haar and permutation filters)',
    { skip: missing ?? false },
    () => {
      const configs = [
        { model: 'roaf-rnn', batch: 3, hidden: 12, seq_len: 20 },
        { model: 'roaf-rnn', batch: 3, hidden: 12, seq_len: 20, filter: 'permutation' },
        { model: 'roaf-mlp', batch: 3, depth: 5, width: 12 },
      ];
      const result = torchBench(configs);
      assert.equal(result.status, 0, result.stderr);
      const lines = result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      assert.equal(lines.length, configs.length);
      for (const [i, line] of lines.entries()) {
        const formulations = line.formulations as {
          name: string;
          failed?: string;
          check?: { max_gradient_error: number };
        }[];
        const names = formulations.map((f) => f.name);
        // The permutation filter is timed in its gather form, never as the dense product the Haar rows use.
        if (configs[i]!.filter === 'permutation') assert.ok(names.includes('gather-manual-backward'), names.join());
        else assert.ok(!names.some((name) => name.startsWith('gather')), names.join());
        for (const f of formulations) {
          assert.equal(f.failed, undefined, `${JSON.stringify(configs[i])} ${f.name}: ${f.failed}`);
          assert.ok(
            f.check !== undefined && f.check.max_gradient_error <= 1e-4,
            `${f.name}: ${JSON.stringify(f.check)}`,
          );
        }
        assert.ok(names.includes(line.fastest as string));
      }
    },
  );

  it('a filter a model lacks is refused, naming the model and the filters it has', { skip: missing ?? false }, () => {
    const result = torchBench([{ model: 'roaf-mlp', batch: 3, depth: 2, width: 4, filter: 'permutation' }]);
    assert.notEqual(result.status, 0);
    assert.match(
      result.stderr,
      /roaf-mlp: filter 'permutation' is not available \(roaf-rnn: haar or permutation; roaf-mlp: haar\)/,
    );
  });
});

// The spectrum benchmark: its options, and one tiny run end to end, in which roaf's log singular values agree
// with the reference's and each PyTorch formulation's (where PyTorch is installed) or the run exits 1.
describe('bench/spectrum.js', () => {
  const nativeMissing = loadNativeBackend() === null ? `native backend not built: ${nativeLoadError()}` : false;
  const SPECTRUM = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'spectrum.js');
  const spectrum = (args: string[]) =>
    spawnSync(process.execPath, [SPECTRUM, '--python', PYTHON, ...args], { encoding: 'utf8' });

  for (const [args, pattern] of [
    [['--sizes', '0'], /--sizes must be an integer >= 1 and <= 4096, got 0/],
    [['--factors', '1'], /--factors must be an integer >= 2 and <= 1000, got 1/],
    [['--factors', '3', '--reference-factors', '3'], /--reference-factors must be an integer >= 0 and <= 2, got 3/],
    [['--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    it(`${args.join(' ')}: names the option and the allowed values, exit code 2`, () => {
      const result = spectrum([...args]);
      assert.equal(result.status, 2, result.stdout);
      assert.match(result.stderr, pattern);
    });
  }

  it('--sizes 24,40 --json: every engine timed, checked against each other', { skip: nativeMissing }, () => {
    const result = spectrum(['--sizes', '24,40', '--factors', '3', '--repeats', '1', '--json']);
    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as {
      sizes: { n: number; roaf_ms_1_thread: number; reference_ms: number; pytorch: unknown; pytorch_best?: unknown }[];
    };
    assert.deepEqual(
      report.sizes.map((s) => s.n),
      [24, 40],
    );
    for (const size of report.sizes) {
      assert.ok(size.roaf_ms_1_thread > 0 && size.reference_ms > 0);
      // PyTorch either ran, and then a formulation agreed with roaf, or was skipped with the reason.
      if (torchMissing() === null) assert.ok(size.pytorch_best !== undefined, JSON.stringify(size.pytorch));
      else assert.match(JSON.stringify(size.pytorch), /skipped/);
    }
  });
});
