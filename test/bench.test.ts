// `roaf bench` and `roaf info --peak`: the JSON fields a benchmark harness reads, and clear errors for bad options.
// (Timing itself is never asserted: CI machines are noisy.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

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
