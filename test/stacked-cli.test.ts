// `--layers k` on the command line: train, eval, diagnose and bench a stacked recurrent model, and the
// one-line errors for a bad value or a model that does not stack.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

function roaf(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

describe('--layers on the command line', () => {
  it('train --layers 2 writes a stacked checkpoint that eval reads back to the same test loss', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'roaf-layers-')), 'run');
    const train = roaf([
      'train',
      '--model',
      'gru',
      '--task',
      'adding',
      '--layers',
      '2',
      '--hidden',
      '8',
      '--seq-len',
      '12',
      '--train-size',
      '64',
      '--test-size',
      '16',
      '--epochs',
      '1',
      '--batch',
      '16',
      '--out',
      out,
      '--json',
      '--quiet',
    ]);
    assert.equal(train.status, 0, train.stderr);
    const trained = lastJson(train.stdout);
    const config = JSON.parse(readFileSync(join(out, 'checkpoint', 'config.json'), 'utf8')) as {
      model: { layers: number };
    };
    assert.equal(config.model.layers, 2);
    const evaluated = roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--json']);
    assert.equal(evaluated.status, 0, evaluated.stderr);
    assert.equal(lastJson(evaluated.stdout).test_loss, trained.test_loss);
  });

  it("diagnose --layers 2 gives the top layer's gradient curve and says why spectrum and bounds do not apply", () => {
    const result = roaf([
      'diagnose',
      '--model',
      'roaf-rnn',
      '--layers',
      '2',
      '--hidden',
      '8',
      '--seq-len',
      '20',
      '--batch',
      '4',
      '--json',
      '--quiet',
    ]);
    assert.equal(result.status, 0, result.stderr);
    const d = lastJson(result.stdout) as {
      gradients: { count: number };
      spectrum: unknown;
      spectrum_note: string;
      bounds: { applicable: boolean };
    };
    assert.equal(d.gradients.count, 20);
    assert.equal(d.spectrum, null);
    assert.match(d.spectrum_note, /not implemented for k > 1 stacked layers/);
    assert.equal(d.bounds.applicable, false);
    const human = roaf([
      'diagnose',
      '--model',
      'roaf-rnn',
      '--layers',
      '2',
      '--hidden',
      '8',
      '--seq-len',
      '20',
      '--batch',
      '4',
      '--quiet',
    ]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /^roaf-rnn k=2 N=8 /);
    assert.match(human.stdout, /Jacobian spectrum: no Jacobian spectrum for roaf-rnn/);
  });

  it('bench --layers 3 reports the layers and counts their FLOPs', () => {
    const args = [
      'bench',
      '--model',
      'lstm',
      '--hidden',
      '8',
      '--seq-len',
      '5',
      '--batch',
      '4',
      '--repeats',
      '1',
      '--warmup',
      '1',
      '--json',
    ];
    const one = roaf(args);
    const three = roaf([...args, '--layers', '3']);
    assert.equal(one.status, 0, one.stderr);
    assert.equal(three.status, 0, three.stderr);
    assert.equal(lastJson(one.stdout).layers, 1);
    assert.equal(lastJson(three.stdout).layers, 3);
    assert.ok(Number(lastJson(three.stdout).flops_per_batch) > 2 * Number(lastJson(one.stdout).flops_per_batch));
  });

  it('a bad --layers, or --layers on a feed-forward model, is one line naming the option, exit code 2', () => {
    for (const [args, pattern] of [
      [
        ['train', '--model', 'roaf-rnn', '--task', 'adding', '--layers', '0'],
        /^roaf: --layers must be an integer >= 1 and <= 64, got 0$/,
      ],
      [
        ['train', '--model', 'lstm', '--task', 'adding', '--layers', '65'],
        /^roaf: --layers must be an integer >= 1 and <= 64, got 65$/,
      ],
      [
        ['diagnose', '--model', 'gru', '--layers', '2.5'],
        /^roaf: --layers must be an integer >= 1 and <= 64, got 2.5$/,
      ],
      [
        ['bench', '--model', 'roaf-mlp', '--layers', '2'],
        /^roaf: --layers does not apply to --model roaf-mlp; it stacks recurrent models/,
      ],
      [
        ['train', '--model', 'roaf-mlp', '--layers', '2', '--train-limit', '8'],
        /^roaf: --layers must be 1 for --model roaf-mlp, got 2/,
      ],
    ] as const) {
      const result = roaf([...args]);
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
