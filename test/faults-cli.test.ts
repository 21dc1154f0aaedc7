// Faults end to end through the `roaf` command (docs/guarantees.md): the writer killed (SIGKILL) at every
// step of a save, and twice in a row, after which `roaf eval` loads a complete checkpoint and
// `train --resume` ends with the same final loss as an uninterrupted run, bit for bit; SIGINT and SIGTERM
// save the current step and exit 130/143, a second SIGINT during that save exits at once; an existing run
// is refused and a run directory is locked; divergence stops with exit code 3 and writes no non-finite
// checkpoint; and every error a user causes is one line with exit code 2.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  cpSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readCheckpointConfig } from '../src/train/checkpoint.js';
import { readMetrics } from '../src/train/metrics.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'roaf-faults-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `during` gets the child (to signal it) and a way to wait for a line on its stderr. */
function roaf(
  args: string[],
  env: Record<string, string> = {},
  during?: (child: ReturnType<typeof spawn>, stderrMatch: (re: RegExp) => Promise<void>) => Promise<void>,
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    const waiters: { re: RegExp; done: () => void }[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const w of waiters.splice(0)) {
        if (w.re.test(stderr)) w.done();
        else waiters.push(w);
      }
    });
    const stderrMatch = (re: RegExp) =>
      new Promise<void>((done) => (re.test(stderr) ? done() : waiters.push({ re, done })));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
    if (during) during(child, stderrMatch).catch(reject);
  });
}

/** Runs `jobs` with at most `limit` at a time (each spawns a process; the machine may have few cores). */
async function pool<T>(jobs: (() => Promise<T>)[], limit = 3): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, jobs.length) }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]!();
      }
    }),
  );
  return results;
}

/** A small, fast run on generated data: 6 steps per epoch. */
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
const EPOCHS = ['--epochs', '2'];

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
}

function resume(out: string, env: Record<string, string> = {}): Promise<Outcome> {
  return roaf(['train', '--resume', '--out', out, '--quiet', '--backend', 'reference', '--json'], env);
}

/** The uninterrupted run every interrupted one must end like. */
let straight: Promise<{ loss: unknown; model: Buffer; points: string[] }> | null = null;
function straightRun() {
  straight ??= (async () => {
    const out = join(work, 'straight');
    const result = await roaf(['train', ...SMALL, ...EPOCHS, '--checkpoint-every', '2', '--out', out, '--json'], {
      ROAF_TEST_FAULT: 'trace',
    });
    assert.equal(result.status, 0, result.stderr);
    const points = result.stderr
      .split('\n')
      .filter((l) => l.startsWith('fault point 2:'))
      .map((l) => l.split(' ')[3]!);
    return {
      loss: lastJson(result.stdout).test_loss,
      model: readFileSync(join(out, 'checkpoint', 'model.safetensors')),
      points,
    };
  })();
  return straight;
}

async function assertSameEnd(out: string, label: string): Promise<void> {
  const { loss, model } = await straightRun();
  const resumed = await resume(out);
  assert.equal(resumed.status, 0, `${label}: resume: ${resumed.stderr}`);
  assert.equal(lastJson(resumed.stdout).test_loss, loss, `${label}: the final loss of the uninterrupted run`);
  assert.deepEqual(readFileSync(join(out, 'checkpoint', 'model.safetensors')), model, `${label}: the same weights`);
}

describe('the writer killed during a save', () => {
  it('killed at every step k of a save: eval loads a complete checkpoint, --resume ends with the same loss', async () => {
    const { points } = await straightRun();
    assert.equal(points.length, 15, `the steps of a save: ${points.join(', ')}`);
    await pool(
      points.map((step, i) => async () => {
        const k = i + 1;
        const out = join(work, `kill-${k}`);
        const killed = await roaf(['train', ...SMALL, ...EPOCHS, '--checkpoint-every', '2', '--out', out], {
          ROAF_TEST_FAULT: `kill:2:${k}`,
        });
        assert.equal(killed.signal, 'SIGKILL', `killed at ${k} (${step}): ${killed.stderr}`);
        const step2 = readCheckpointConfig(join(out, 'checkpoint')).step;
        assert.ok(step2 === 2 || step2 === 4, `kill at ${k}: checkpoint of step ${step2}`);
        if ([1, 3, 12, 13, 15].includes(k)) {
          const evaluated = await roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--backend', 'reference']);
          assert.equal(evaluated.status, 0, `eval after a kill at ${k}: ${evaluated.stderr}`);
          assert.match(evaluated.stdout, /test MSE \d/);
        }
        await assertSameEnd(out, `kill at ${k} (${step})`);
      }),
    );
  });

  it('killed twice in a row (at k during one save, at j during the first save of the resumed run)', async () => {
    await straightRun();
    const pairs: [number, number][] = [
      [13, 1], // between the renames, then during the recovery that renames checkpoint.old back
      [3, 2], // a partial checkpoint.tmp, then during its removal's aftermath
      [12, 14], // checkpoint.old and a complete checkpoint.tmp, then between the next save's renames
      [15, 5],
    ];
    await pool(
      pairs.map(([k, j]) => async () => {
        const out = join(work, `kill-${k}-${j}`);
        const first = await roaf(['train', ...SMALL, ...EPOCHS, '--checkpoint-every', '2', '--out', out], {
          ROAF_TEST_FAULT: `kill:2:${k}`,
        });
        assert.equal(first.signal, 'SIGKILL');
        const second = await resume(out, { ROAF_TEST_FAULT: `kill:1:${j}` });
        assert.equal(second.signal, 'SIGKILL', `second kill at ${j}: ${second.stderr}`);
        const evaluated = await roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--backend', 'reference']);
        assert.equal(evaluated.status, 0, `eval after kills at ${k} and ${j}: ${evaluated.stderr}`);
        await assertSameEnd(out, `kills at ${k} then ${j}`);
      }),
      2,
    );
  });
});

describe('interrupts', () => {
  const slow = { ROAF_TEST_STEP_MS: '150' };
  /** Sends `signal` once the run's first checkpoint (end of epoch 1, step 6) exists. */
  const afterFirstCheckpoint = (out: string, signal: NodeJS.Signals) => async (child: ReturnType<typeof spawn>) => {
    while (!existsSync(join(out, 'checkpoint', 'config.json'))) await new Promise((r) => setTimeout(r, 10));
    child.kill(signal);
  };

  it('SIGINT saves the current step and exits 130; --resume then ends like the uninterrupted run', async () => {
    const out = join(work, 'sigint');
    const result = await roaf(['train', ...SMALL, ...EPOCHS, '--out', out], slow, afterFirstCheckpoint(out, 'SIGINT'));
    assert.equal(result.status, 130, result.stderr);
    // The signal is sent once the end-of-epoch checkpoint (step 6) exists; it may land before step 7 starts,
    // and then the current step is 6.
    const saved = readCheckpointConfig(join(out, 'checkpoint')).step;
    assert.ok(saved >= 6 && saved < 12, `saved at step ${saved}, within epoch 2`);
    assert.match(result.stderr, new RegExp(`SIGINT: stopped at step ${saved}; checkpoint in`));
    assert.ok(!existsSync(join(out, 'roaf.lock')), 'the lock is released');
    await assertSameEnd(out, 'after SIGINT');
  });

  it('SIGTERM saves the current step and exits 143', async () => {
    const out = join(work, 'sigterm');
    const result = await roaf(['train', ...SMALL, ...EPOCHS, '--out', out], slow, afterFirstCheckpoint(out, 'SIGTERM'));
    assert.equal(result.status, 143, result.stderr);
    const saved = readCheckpointConfig(join(out, 'checkpoint')).step;
    assert.ok(saved >= 6 && saved < 12, `saved at step ${saved}, within epoch 2`);
    assert.match(result.stderr, new RegExp(`SIGTERM: stopped at step ${saved}; checkpoint in`));
  });

  it('a second SIGINT during the save exits at once; the previous checkpoint is complete', async () => {
    const out = join(work, 'sigint-twice');
    let sent = 0;
    const result = await roaf(
      ['train', ...SMALL, ...EPOCHS, '--out', out],
      { ...slow, ROAF_TEST_FAULT: 'pause:2:3' }, // the interrupt's save pauses 5 s half-way through model.safetensors
      async (child, stderrMatch) => {
        await afterFirstCheckpoint(out, 'SIGINT')(child);
        await stderrMatch(/fault point paused/);
        sent = Date.now();
        child.kill('SIGINT');
      },
    );
    assert.equal(result.signal, 'SIGINT', `ended by the second SIGINT: ${result.status} ${result.stderr}`);
    assert.ok(Date.now() - sent < 4000, 'at once, not after the paused save');
    assert.equal(readCheckpointConfig(join(out, 'checkpoint')).step, 6);
    await assertSameEnd(out, 'after two SIGINTs');
  });
});

describe('runs: refusal and lock', () => {
  it('an existing run is refused without --resume or --force; a live lock refuses, a stale one is taken over', async () => {
    const out = join(work, 'existing');
    assert.equal((await roaf(['train', ...SMALL, '--epochs', '1', '--out', out])).status, 0);
    const metrics = readFileSync(join(out, 'metrics.jsonl'));
    const again = await roaf(['train', ...SMALL, '--epochs', '1', '--out', out]);
    assert.equal(again.status, 2);
    assert.equal(
      again.stderr.trim(),
      `roaf: --out ${out}: already holds a run; --resume continues it, --force replaces it (or choose another directory)`,
    );
    assert.deepEqual(readFileSync(join(out, 'metrics.jsonl')), metrics, 'the run is untouched');

    // a live process's lock (this test's own pid) refuses, naming it
    const lock = join(out, 'roaf.lock');
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: 'now' }));
    const locked = await resume(out);
    assert.equal(locked.status, 2);
    assert.match(locked.stderr, new RegExp(`^roaf: --out ${out}: the run is locked by process ${process.pid} on `));
    assert.equal(locked.stderr.trim().split('\n').length, 1);
    // a dead process's lock is taken over with a message
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), started: 'then' }));
    const forced = await roaf(['train', ...SMALL, '--epochs', '1', '--out', out, '--force', '--json']);
    assert.equal(forced.status, 0, forced.stderr);
    assert.match(forced.stderr, /taking over the stale lock of process 4206649/);
    assert.equal(readMetrics(join(out, 'metrics.jsonl')).records.length, 1, '--force replaced the run');
    assert.ok(!existsSync(lock));
  });

  it('two runs on one directory at once: the second is refused while the first trains', async () => {
    const out = join(work, 'concurrent');
    let refused: Outcome | null = null;
    // The first run's steps take 5 s each (a minute for the run), so it is still training however slowly
    // the second process starts on a loaded machine; once the second has been refused, SIGINT ends the
    // first with a checkpoint, and resuming it must end like the uninterrupted run.
    const first = await roaf(
      ['train', ...SMALL, ...EPOCHS, '--out', out],
      { ROAF_TEST_STEP_MS: '5000' },
      async (child) => {
        while (!existsSync(join(out, 'roaf.lock'))) await new Promise((r) => setTimeout(r, 10));
        refused = await roaf(['train', ...SMALL, ...EPOCHS, '--out', out, '--force']);
        child.kill('SIGINT');
      },
    );
    assert.equal(first.status, 130, `the first run was still training when the second ended: ${first.stderr}`);
    assert.ok(refused, 'the second run ran');
    const second = refused as Outcome;
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, /the run is locked by process \d+/);
    assert.ok(!existsSync(join(out, 'roaf.lock')), 'the first run released its lock');
    await assertSameEnd(out, 'the first run, undisturbed by the second');
  });
});

describe('divergence', () => {
  it('a diverging run stops with exit code 3, names the step, logs it, and writes no non-finite checkpoint', async () => {
    const out = join(work, 'diverge');
    const args = ['--model', 'rnn', '--optimizer', 'sgd', '--lr', '10', '--checkpoint-every', '1'];
    const result = await roaf(['train', ...SMALL, ...args, '--epochs', '3', '--out', out]);
    assert.equal(result.status, 3, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, result.stderr);
    const match = /^roaf: training diverged at step (\d+): the (loss|gradient norm) is (NaN|-?Infinity)/.exec(
      lines[0]!,
    );
    assert.ok(match, lines[0]);
    const step = Number(match[1]);
    const records = readMetrics(join(out, 'metrics.jsonl')).records;
    const last = records.at(-1)!;
    assert.deepEqual((last.diverged as { step: number }).step, step, 'the metrics record the divergence');
    if (existsSync(join(out, 'checkpoint'))) {
      assert.ok(readCheckpointConfig(join(out, 'checkpoint')).step < step, 'the checkpoint is from before');
      const evaluated = await roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--backend', 'reference']);
      assert.equal(evaluated.status, 0, 'the last checkpoint is finite and evaluates');
      assert.doesNotMatch(evaluated.stdout, /NaN/);
    }
  });

  it('eval of a checkpoint whose outputs are NaN exits 2 and prints no NaN', async () => {
    const out = join(work, 'nan-weights');
    assert.equal((await roaf(['train', ...SMALL, '--epochs', '1', '--out', out])).status, 0);
    const model = join(out, 'checkpoint', 'model.safetensors');
    const headerLength = Number(readFileSync(model).readBigUInt64LE(0));
    const fd = openSync(model, 'r+');
    writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, 8 + headerLength); // NaN in the first weights
    closeSync(fd);
    const result = await roaf(['eval', '--checkpoint', join(out, 'checkpoint'), '--backend', 'reference']);
    assert.equal(result.status, 2, result.stderr);
    assert.doesNotMatch(result.stdout, /NaN/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
});

describe('errors a user causes: one line, exit code 2, no stack trace, nothing written', () => {
  const base = join(work, 'errors');
  mkdirSync(base, { recursive: true });
  const good = join(base, 'good');
  const prepared = roaf(['train', ...SMALL, '--epochs', '1', '--out', good]);

  /** A copy of a good run whose checkpoint's config.json is `config` (text). */
  async function runWithConfig(name: string, edit: (config: Record<string, unknown>) => unknown): Promise<string> {
    assert.equal((await prepared).status, 0);
    const dir = join(base, name);
    cpSync(good, dir, { recursive: true });
    const path = join(dir, 'checkpoint', 'config.json');
    writeFileSync(path, JSON.stringify(edit(JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>)));
    return dir;
  }

  const cases: [string, () => Promise<string[]> | string[], RegExp][] = [
    [
      'a null JSON document as config.json',
      async () => ['eval', '--checkpoint', join(await runWithConfig('null', () => null), 'checkpoint')],
      /config\.json: the document is null; allowed: a JSON object/,
    ],
    [
      'a value of the wrong type in config.json',
      async () => [
        'eval',
        '--checkpoint',
        join(
          await runWithConfig('wrong-type', (c) => ({ ...c, model: { ...(c.model as object), hidden: '8' } })),
          'checkpoint',
        ),
      ],
      /config\.json: field 'model\.hidden' is a string; allowed: a number/,
    ],
    [
      'an out-of-range value in config.json names the field, not an option',
      async () => [
        'train',
        '--resume',
        '--out',
        await runWithConfig('range', (c) => ({ ...c, model: { ...(c.model as object), hidden: -3 } })),
      ],
      /config\.json: field 'model\.hidden' must be an integer >= 1/,
    ],
    [
      'a directory where config.json should be',
      () => {
        const dir = join(base, 'config-dir');
        mkdirSync(join(dir, 'config.json'), { recursive: true });
        return ['eval', '--checkpoint', dir];
      },
      /config\.json: is a directory; allowed: a regular file/,
    ],
    [
      'an existing file as --out',
      () => {
        const file = join(base, 'a-file');
        writeFileSync(file, 'x');
        return ['train', ...SMALL, '--out', file];
      },
      /--out .*a-file: is a file; allowed: a new or existing directory/,
    ],
    [
      '--out under a file (ENOTDIR)',
      () => {
        const file = join(base, 'b-file');
        writeFileSync(file, 'x');
        return ['train', ...SMALL, '--out', join(file, 'run')];
      },
      /--out .*b-file\/run: a parent of this path is a file/,
    ],
  ];
  for (const [label, args, message] of cases) {
    it(label, async () => {
      const argv = await args();
      const before = readdirSync(base).length;
      const result = await roaf(argv);
      assert.equal(result.status, 2, `exit code (stderr: ${result.stderr})`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line expected, got:\n${result.stderr}`);
      assert.match(lines[0]!, /^roaf: /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(readdirSync(base).length, before, 'nothing written');
    });
  }

  it('a full disk (ENOSPC) during a save: exit 2, the path named, the previous checkpoint kept', async () => {
    const out = join(base, 'enospc');
    const result = await roaf(['train', ...SMALL, '--epochs', '2', '--checkpoint-every', '2', '--out', out], {
      ROAF_TEST_FAULT: 'enospc:2:3',
    });
    assert.equal(result.status, 2, result.stderr);
    assert.equal(
      result.stderr.trim(),
      `roaf: ${out}/checkpoint.tmp/model.safetensors: no space left on the device; free some space (the previous checkpoint is kept) (write)`,
    );
    assert.equal(readCheckpointConfig(join(out, 'checkpoint')).step, 2);
    assert.ok(!existsSync(join(out, 'checkpoint.tmp')), 'the partial checkpoint is removed');
    assert.ok(!existsSync(join(out, 'roaf.lock')), 'the lock is released');
    await assertSameEnd(out, 'after ENOSPC');
  });

  it(
    'a directory it may not write (EACCES)',
    { skip: process.getuid?.() === 0 && 'root may write anywhere' },
    async () => {
      const dir = join(base, 'read-only');
      mkdirSync(dir, { mode: 0o500 });
      const result = await roaf(['train', ...SMALL, '--out', join(dir, 'run')]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /^roaf: .*read-only.*: permission denied/);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    },
  );
});
