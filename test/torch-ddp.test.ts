// python/train_ddp.py: two processes (gloo, 127.0.0.1) continue a roaf checkpoint for 20 steps with
// PyTorch DistributedDataParallel; the loss falls; roaf evaluates the checkpoint it writes (the same figures
// as the script's own evaluation), the result is the run roaf's own --resume makes, and roaf trains on.
//
// Runs Debian's python3-torch (/usr/bin/python3): skipped, saying why, where it or torch is missing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const script = join(root, 'python', 'train_ddp.py');
const PYTHON = '/usr/bin/python3';

/** Why the PyTorch tests cannot run here, or null when they can. */
function torchMissing(): string | null {
  const probe = spawnSync(
    PYTHON,
    ['-c', 'import torch.distributed as d; assert d.is_available() and d.is_gloo_available()'],
    { encoding: 'utf8' },
  );
  if (probe.error) return `${PYTHON} is not available (${probe.error.message}): apt-get install python3-torch`;
  if (probe.status !== 0) return `${PYTHON} cannot import torch with gloo: apt-get install python3-torch`;
  return null;
}

const missing = torchMissing();
const work = mkdtempSync(join(tmpdir(), 'roaf-ddp-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(command: string, args: string[]) {
  return spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

describe('PyTorch DDP (python/train_ddp.py) continues a roaf run', { skip: missing ?? false }, () => {
  it('two processes train 20 steps, the loss falls, and roaf evaluates and resumes the result', (t) => {
    // A roaf run of one epoch (4 steps of 64 on 256 MNIST images, cosine schedule over its 6 epochs).
    const start = join(work, 'start');
    const trained = run(process.execPath, [
      cli,
      'train',
      '--task',
      'mnist',
      '--depth',
      '4',
      '--width',
      '32',
      '--train-limit',
      '256',
      '--test-limit',
      '500',
      '--epochs',
      '1',
      '--quiet',
      '--out',
      start,
    ]);
    assert.equal(trained.status, 0, trained.stderr);

    const out = join(work, 'ddp');
    const ddpArgs = [
      script,
      '--checkpoint',
      join(start, 'checkpoint'),
      '--out',
      out,
      '--steps',
      '20',
      '--epochs',
      '6',
      '--nproc',
      '2',
    ];
    const ddp = run(PYTHON, ddpArgs);
    assert.equal(ddp.status, 0, ddp.stderr);
    const result = lastJson(ddp.stdout) as {
      losses: number[];
      world_size: number;
      backend: string;
      test_accuracy: number;
      test_loss: number;
      step: number;
    };
    assert.equal(result.world_size, 2);
    assert.equal(result.backend, 'gloo');
    assert.equal(result.losses.length, 20);
    assert.equal(result.step, 24);
    const first = mean(result.losses.slice(0, 5)),
      last = mean(result.losses.slice(-5));
    t.diagnostic(
      `DDP loss: first ${result.losses[0]!.toFixed(4)}, last ${result.losses[19]!.toFixed(4)} (means of 5: ${first.toFixed(4)} -> ${last.toFixed(4)}); ` +
        `test accuracy ${result.test_accuracy}, test loss ${result.test_loss.toFixed(6)}`,
    );
    assert.ok(last < 0.8 * first, `the loss falls: ${first} -> ${last}`);

    // roaf evaluates the written checkpoint as the script did.
    const evaluated = run(process.execPath, [cli, 'eval', '--checkpoint', join(out, 'checkpoint'), '--json']);
    assert.equal(evaluated.status, 0, evaluated.stderr);
    const figures = lastJson(evaluated.stdout) as { test_accuracy: number; test_loss: number; step: number };
    t.diagnostic(`roaf eval: test accuracy ${figures.test_accuracy}, test loss ${figures.test_loss.toFixed(6)}`);
    assert.equal(figures.step, 24);
    assert.ok(
      Math.abs(figures.test_accuracy - result.test_accuracy) <= 2 / 500,
      `${figures.test_accuracy} vs ${result.test_accuracy}`,
    );
    assert.ok(Math.abs(figures.test_loss - result.test_loss) <= 1e-4 * result.test_loss);

    // It is the run roaf's own --resume makes: same data order, batch, schedule and Adam state, over two processes.
    const alone = join(work, 'alone');
    cpSync(start, alone, { recursive: true });
    const resumed = run(process.execPath, [
      cli,
      'train',
      '--resume',
      '--out',
      alone,
      '--epochs',
      '6',
      '--quiet',
      '--json',
    ]);
    assert.equal(resumed.status, 0, resumed.stderr);
    const roafRun = lastJson(resumed.stdout) as { test_loss: number };
    t.diagnostic(`roaf --resume to the same step: test loss ${roafRun.test_loss.toFixed(6)}`);
    assert.ok(
      Math.abs(roafRun.test_loss - figures.test_loss) <= 1e-3 * figures.test_loss,
      `${roafRun.test_loss} vs ${figures.test_loss}`,
    );

    // roaf trains on from the DDP checkpoint, and the run directory's metrics hold the DDP record.
    const more = run(process.execPath, [cli, 'train', '--resume', '--out', out, '--epochs', '7', '--quiet', '--json']);
    assert.equal(more.status, 0, more.stderr);
    assert.equal(lastJson(more.stdout).step, 28);
    const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, number>);
    assert.deepEqual(
      records.map((r) => r.step),
      [24, 28],
    );
    assert.equal(records[0]!.world_size, 2);

    // Bad input: an existing output, a missing checkpoint.
    const again = run(PYTHON, ddpArgs);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /ddp\/checkpoint exists \(give --force to replace it\)/);
    const nowhere = run(PYTHON, [script, '--checkpoint', join(work, 'nowhere'), '--out', join(work, 'x')]);
    assert.notEqual(nowhere.status, 0);
    assert.match(nowhere.stderr, /nowhere: no checkpoint \(config.json\) there/);
  });
});
