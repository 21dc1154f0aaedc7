// The `roaf` command end to end: checkpoints round-trip, a resumed run equals an uninterrupted one bit
// for bit (also after a kill -9 at a random moment), and every kind of bad input gets one clear line,
// exit code 2 and nothing half-written.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'roaf-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

function roaf(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A small, fast run on generated data (the adding problem, T = 12). */
const SMALL = [
  '--task',
  'adding',
  '--seq-len',
  '12',
  '--train-size',
  '96',
  '--test-size',
  '32',
  '--hidden',
  '8',
  '--batch',
  '16',
  '--quiet',
  '--backend',
  'reference',
];

function lastJson(stdout: string): Record<string, unknown> {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

describe('train, eval and checkpoints', () => {
  it('train --json ends stdout with the result object and writes metrics and a checkpoint', () => {
    const out = join(work, 'basic');
    const result = roaf(['train', ...SMALL, '--epochs', '2', '--out', out, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const json = lastJson(result.stdout);
    for (const key of ['model', 'task', 'params', 'epochs', 'test_mse', 'test_loss', 'seconds', 'backend']) {
      assert.ok(key in json, `missing ${key}`);
    }
    assert.equal(json.model, 'roaf-rnn');
    const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(records.length, 2);
    for (const key of ['epoch', 'step', 'train_loss', 'test_loss', 'test_mse', 'seconds'])
      assert.ok(key in records[0]!, `metrics lack ${key}`);
    assert.equal(records[1]!.step, 12);
    for (const file of ['model.safetensors', 'optimizer.safetensors', 'config.json'])
      assert.ok(existsSync(join(out, 'checkpoint', file)));

    const evaluated = roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--json', '--backend', 'reference']);
    assert.equal(evaluated.status, 0, evaluated.stderr);
    const evalJson = lastJson(evaluated.stdout);
    assert.equal(evalJson.test_mse, json.test_mse, 'eval of the saved model reproduces the final test MSE');
  });

  it('2 epochs equal 1 epoch plus a resumed epoch, bit for bit', () => {
    const straight = join(work, 'straight');
    const resumed = join(work, 'resumed');
    assert.equal(roaf(['train', ...SMALL, '--epochs', '2', '--out', straight]).status, 0);
    assert.equal(roaf(['train', ...SMALL, '--epochs', '1', '--out', resumed]).status, 0);
    const second = roaf(['train', '--resume', '--out', resumed, '--epochs', '2', '--quiet', '--backend', 'reference']);
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(
      readFileSync(join(resumed, 'checkpoint', 'model.safetensors')),
      readFileSync(join(straight, 'checkpoint', 'model.safetensors')),
    );
    assert.deepEqual(
      readFileSync(join(resumed, 'checkpoint', 'optimizer.safetensors')),
      readFileSync(join(straight, 'checkpoint', 'optimizer.safetensors')),
    );
  });

  it('a run killed with SIGKILL mid-training resumes from its last checkpoint to the same result', async () => {
    const straight = join(work, 'kill-straight');
    const killed = join(work, 'kill-resumed');
    const args = [...SMALL, '--epochs', '3', '--checkpoint-every', '1'];
    assert.equal(roaf(['train', ...args, '--out', straight]).status, 0);
    const child = spawn(process.execPath, [CLI, 'train', ...args, '--out', killed], { stdio: 'ignore' });
    // wait for a first checkpoint, then a little more so the kill lands at an arbitrary point
    const deadline = Date.now() + 30_000;
    while (!existsSync(join(killed, 'checkpoint', 'config.json')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const resume = roaf(['train', '--resume', '--out', killed, '--quiet', '--backend', 'reference']);
    assert.equal(resume.status, 0, resume.stderr);
    assert.deepEqual(
      readFileSync(join(killed, 'checkpoint', 'model.safetensors')),
      readFileSync(join(straight, 'checkpoint', 'model.safetensors')),
    );
  });

  it('an interrupted checkpoint swap falls back to the previous checkpoint', () => {
    const out = join(work, 'swap');
    assert.equal(roaf(['train', ...SMALL, '--epochs', '1', '--out', out]).status, 0);
    // the moment between the two renames: only checkpoint.old is complete, checkpoint.tmp is partial
    renameSync(join(out, 'checkpoint'), join(out, 'checkpoint.old'));
    mkdirSync(join(out, 'checkpoint.tmp'));
    writeFileSync(join(out, 'checkpoint.tmp', 'model.safetensors'), 'partial');
    const resumed = roaf([
      'train',
      '--resume',
      '--out',
      out,
      '--epochs',
      '2',
      '--quiet',
      '--json',
      '--backend',
      'reference',
    ]);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.equal(lastJson(resumed.stdout).step, 12);
  });

  it('a truncated or corrupted checkpoint gives a clear error naming the file', () => {
    const out = join(work, 'corrupt');
    assert.equal(roaf(['train', ...SMALL, '--epochs', '1', '--out', out]).status, 0);
    const model = join(out, 'checkpoint', 'model.safetensors');
    truncateSync(model, 200);
    const truncated = roaf(['eval', '--checkpoint', join(out, 'checkpoint')]);
    assert.equal(truncated.status, 2);
    assert.match(truncated.stderr, /model\.safetensors.*truncated/);
    writeFileSync(join(out, 'checkpoint', 'config.json'), '{"format": "roaf-checkpoint", ');
    const badConfig = roaf(['eval', '--checkpoint', join(out, 'checkpoint')]);
    assert.equal(badConfig.status, 2);
    assert.match(badConfig.stderr, /config\.json: not valid JSON/);
    writeFileSync(model, Buffer.from([0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 2]));
    writeFileSync(join(out, 'checkpoint', 'config.json'), '{}');
    const notOurs = roaf(['eval', '--checkpoint', join(out, 'checkpoint')]);
    assert.equal(notOurs.status, 2);
    assert.match(notOurs.stderr, /not a roaf checkpoint/);
  });
});

describe('bad input: one clear line, exit code 2, no stack trace, nothing written', () => {
  const badIdxDir = join(work, 'bad-idx');
  mkdirSync(badIdxDir, { recursive: true });
  // a labels file whose magic number is not IDX's
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0x12345678, 0);
  header.writeUInt32BE(2, 4);
  writeFileSync(
    join(badIdxDir, 'train-images-idx3-ubyte'),
    Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.alloc(2 * 784)]),
  );
  writeFileSync(join(badIdxDir, 'train-labels-idx1-ubyte'), Buffer.concat([header, Buffer.alloc(2)]));

  const cases: [string, string[], RegExp][] = [
    ['--alpha 1.5', ['train', '--alpha', '1.5'], /--alpha must be a number >= 0 and <= 1, got 1\.5/],
    ['--depth 0', ['train', '--depth', '0'], /--depth must be an integer >= 1.*got 0/],
    ['--lr -1', ['train', '--lr', '-1'], /--lr must be a number > 0.*got -1/],
    ['--lr abc', ['train', '--lr', 'abc'], /--lr must be a number, got 'abc'/],
    ['unknown model', ['train', '--model', 'transformer'], /--model must be one of roaf-mlp, .* got 'transformer'/],
    ['unknown task', ['train', '--task', 'cifar'], /--task must be one of mnist, .* got 'cifar'/],
    [
      'missing data directory',
      ['train', '--task', 'mnist', '--data-dir', join(work, 'nowhere')],
      /--data-dir.*nowhere/,
    ],
    [
      'IDX file with a wrong magic number',
      ['train', '--task', 'mnist', '--data-dir', badIdxDir],
      /train-labels-idx1-ubyte.*magic/,
    ],
    ['unknown option', ['train', '--depht', '3'], /unknown option '--depht'/],
    ['resume without a checkpoint', ['train', '--resume', '--out', join(work, 'empty-run')], /no checkpoint/],
  ];
  for (const [label, args, message] of cases) {
    it(label, () => {
      const out = join(work, `bad-${label.replace(/\W+/g, '-')}`);
      const result = roaf([...args, ...(args.includes('--out') ? [] : ['--out', out])]);
      assert.equal(result.status, 2, `exit code (stderr: ${result.stderr})`);
      const lines = result.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('roaf: using the reference backend'));
      assert.equal(lines.length, 1, `one line expected, got:\n${result.stderr}`);
      assert.match(lines[0] ?? '', message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
      if (!args.includes('--resume')) assert.ok(!existsSync(out), 'nothing written');
    });
  }
});
