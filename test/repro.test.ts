// `roaf repro`: the claims table resolves to exactly what `roaf train` builds (and to the psMNIST run the
// lead started by hand), quick claims run end to end with result.json, plots, diagnostics and report,
// a killed session continues to the same result, a directory holding a different run is refused, the
// early-stop rule ends a stuck baseline, and the README's results tables match experiments/results.
// Also the trainer's hooks these need: onEvaluation 'stop', DivergedError and peak_rss_bytes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadBackend } from '../src/backend/index.js';
import type { FloatArray } from '../src/backend/backend.js';
import type { BatchTargets, Dataset } from '../src/data/dataset.js';
import { loadTask } from '../src/data/tasks.js';
import { createModel, modelConfig } from '../src/models/factory.js';
import { CLAIMS } from '../src/repro/claims.js';
import { CHANCE_MARGIN, stuckAtChance } from '../src/repro/early-stop.js';
import { MachineRecord, type MachineInfo } from '../src/repro/machine.js';
import { configDifferences, expectedConfig, runSettings, trainArguments } from '../src/repro/resolve.js';
import type { ReproResult } from '../src/repro/result.js';
import { planClaim } from '../src/repro/runs.js';
import type { WorkerJob, WorkerReport } from '../src/repro/worker.js';
import { claimBlock, staleClaims, updateReadme } from '../src/repro/tables.js';
import { readCheckpointConfig } from '../src/train/checkpoint.js';
import { readMetrics, type MetricsRecord } from '../src/train/metrics.js';
import { DEFAULT_OPTIMIZER } from '../src/train/optimizer.js';
import { DivergedError, runTraining, runTrainingAsync } from '../src/train/trainer.js';
import type { TrainingConfig } from '../src/train/checkpoint.js';
import { UsageError } from '../src/util/errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'roaf-repro-'));
after(() => rmSync(work, { recursive: true, force: true }));

function roaf(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const readResultFile = (dir: string) => JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as ReproResult;
/** A metrics record without what differs between sessions (timings, memory). */
const stable = (r: MetricsRecord) => ({ ...r, seconds: 0, peak_rss_bytes: 0 });

function claim(name: string) {
  const found = CLAIMS.find((c) => c.name === name);
  assert.ok(found, `claim ${name}`);
  return found;
}

function training(overrides: Partial<TrainingConfig>): TrainingConfig {
  return {
    epochs: 2,
    batch: 8,
    optimizer: { ...DEFAULT_OPTIMIZER, lr: 1e-2 },
    clip: 0,
    evalEvery: 0,
    checkpointEvery: 0,
    logGradients: false,
    seed: 0,
    ...overrides,
  };
}

describe('trainer hooks for repro', () => {
  const backend = loadBackend('reference')!;
  const data = loadTask('adding', { seed: 0, seqLen: 6, trainSize: 32, testSize: 8 });
  const model = () =>
    createModel(modelConfig({ model: 'roaf-rnn', inputDim: 2, outputs: 1, hidden: 4, dtype: 'float64' }), backend);

  it("onEvaluation returning 'stop' ends the run at that evaluation, after a checkpoint", () => {
    const outDir = join(work, 'hook-stop');
    let evaluations = 0;
    const result = runTraining({
      model: model(),
      train: data.train,
      test: data.test,
      task: { name: 'adding', seqLen: 6 },
      outDir,
      training: training({ evalEvery: 1 }),
      callbacks: { onEvaluation: () => (++evaluations === 3 ? 'stop' : 'continue') },
    });
    assert.equal(result.stopped, true);
    assert.equal(result.progress.step, 3);
    assert.equal(readCheckpointConfig(join(outDir, 'checkpoint')).step, 3, 'the checkpoint holds the stopping point');
    const records = readMetrics(join(outDir, 'metrics.jsonl')).records;
    assert.deepEqual(
      records.map((r) => r.step),
      [1, 2, 3],
    );
    for (const r of records)
      assert.ok(typeof r.peak_rss_bytes === 'number' && r.peak_rss_bytes > 1e6, 'peak_rss_bytes in every record');
  });

  it('stopRequested ends the run after a checkpoint at the current step, without a final test pass', async () => {
    const outDir = join(work, 'hook-interrupt');
    let evaluations = 0;
    let steps = 0;
    const result = await runTrainingAsync({
      model: model(),
      train: data.train,
      test: data.test,
      task: { name: 'adding', seqLen: 6 },
      outDir,
      training: training({ evalEvery: 2 }),
      stopRequested: () => steps === 3,
      callbacks: {
        onStep: () => {
          steps += 1;
        },
        onEvaluation: () => {
          evaluations += 1;
          return 'continue';
        },
      },
    });
    assert.equal(result.interrupted, true);
    assert.equal(result.final, null, 'no test pass for a run being stopped');
    assert.equal(result.progress.step, 3);
    assert.equal(readCheckpointConfig(join(outDir, 'checkpoint')).step, 3);
    assert.equal(evaluations, 1, 'only the evaluation at step 2');
  });

  it("'stop' at the last evaluation stops nothing; at an epoch's end it stops before the next epoch", () => {
    const last = runTraining({
      model: model(),
      train: data.train,
      test: data.test,
      task: { name: 'adding', seqLen: 6 },
      outDir: join(work, 'hook-last'),
      training: training({}),
      callbacks: { onEvaluation: (r) => (r.epoch === 2 ? 'stop' : 'continue') },
    });
    assert.equal(last.stopped, false);
    assert.equal(last.progress.epoch, 2);
    const first = runTraining({
      model: model(),
      train: data.train,
      test: data.test,
      task: { name: 'adding', seqLen: 6 },
      outDir: join(work, 'hook-epoch'),
      training: training({}),
      callbacks: { onEvaluation: () => 'stop' },
    });
    assert.equal(first.stopped, true);
    assert.deepEqual([first.progress.epoch, first.progress.step], [1, 4]);
  });

  it('a non-finite loss throws DivergedError with the step', () => {
    const nan: Dataset = {
      ...data.train,
      name: 'nan',
      count: data.train.count,
      steps: data.train.steps,
      inputDim: 2,
      target: data.train.target,
      fillBatch(indices: ArrayLike<number>, inputs: FloatArray, targets: BatchTargets) {
        data.train.fillBatch(indices, inputs, targets);
        inputs[0] = NaN;
      },
    };
    assert.throws(
      () =>
        runTraining({
          model: model(),
          train: nan,
          test: data.test,
          task: { name: 'adding' },
          outDir: join(work, 'hook-nan'),
          training: training({}),
        }),
      (error: unknown) =>
        error instanceof DivergedError && error.step === 1 && /diverged at step 1/.test(error.message),
    );
  });

  it('roaf train --json reports peak_rss_bytes', () => {
    const result = roaf([
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
      '--batch',
      '16',
      '--epochs',
      '1',
      '--quiet',
      '--json',
      '--out',
      join(work, 'train-json'),
    ]);
    assert.equal(result.status, 0, result.stderr);
    const json = lastJson(result.stdout);
    assert.ok(typeof json.peak_rss_bytes === 'number' && json.peak_rss_bytes > 1e6);
  });
});

describe('early-stop rule', () => {
  const rule = { budgetSteps: 100, classes: 10 };
  const rec = (step: number, accuracy: number): MetricsRecord => ({
    epoch: step / 50,
    step,
    train_loss: 2.3,
    test_loss: 2.3,
    test_accuracy: accuracy,
    seconds: step,
  });

  it('stops after two evaluations in a row within 2 points of chance, once a quarter of the budget is spent', () => {
    const decision = stuckAtChance([rec(10, 0.1), rec(25, 0.113), rec(50, 0.09)], rule);
    assert.ok(decision);
    assert.equal(decision.reason, 'chance');
    assert.equal(decision.step, 50);
    assert.match(decision.detail, /11\.30 % at step 25 and 9\.00 % at step 50 \(of 100\)/);
  });

  it('does not stop before a quarter of the budget, after one evaluation only, or away from chance', () => {
    assert.equal(stuckAtChance([rec(10, 0.1), rec(20, 0.1)], rule), null, 'step 10 and 20 < 25');
    assert.equal(stuckAtChance([rec(10, 0.5), rec(30, 0.1)], rule), null, 'only the last is at chance');
    assert.equal(stuckAtChance([rec(30, 0.1)], rule), null, 'one evaluation');
    assert.equal(
      stuckAtChance([rec(30, 0.1), rec(40, 0.1 + CHANCE_MARGIN + 0.001)], rule),
      null,
      'just beyond 2 points',
    );
    assert.ok(stuckAtChance([rec(30, 0.1), rec(40, 0.1 - CHANCE_MARGIN)], rule), 'exactly 2 points below');
  });
});

// config.json of the psMNIST study run that reached 98 % (`experiments/psmnist-study/run.sh n1024-wd1`: roaf train
// --model roaf-rnn --task psmnist --hidden 1024 --batch 64 --lr 3e-4 --lr-schedule cosine --epochs 10 --input-scale 3
// --alpha 1 --beta 0.1 --filter permutation --weight-decay 1 --seed 0 --threads 1 --checkpoint-every 100; model,
// task, training), which `roaf repro psmnist` must adopt.
const ADOPTED_PSMNIST_CONFIG = {
  model: {
    model: 'roaf-rnn',
    depth: 100,
    width: 64,
    hidden: 1024,
    alpha: 1,
    beta: 0.1,
    filter: 'permutation',
    sharedFilter: false,
    inputScale: 3,
    seed: 0,
    dtype: 'float32',
    inputDim: 1,
    outputs: 10,
    readout: 'last',
  },
  task: { name: 'psmnist' },
  training: {
    epochs: 10,
    batch: 64,
    optimizer: { kind: 'adam', lr: 0.0003, momentum: 0.9, weightDecay: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    lrSchedule: 'cosine',
    clip: 0,
    evalEvery: 0,
    checkpointEvery: 100,
    logGradients: false,
    seed: 0,
  },
};

describe('the claims table', () => {
  it('defines the five claims; run names are unique; every run and its quick variant resolve', () => {
    assert.deepEqual(
      CLAIMS.map((c) => c.name),
      ['deep-mlp', 'long-memory', 'psmnist', 'smnist', 'million-layer'],
    );
    for (const c of CLAIMS) {
      assert.equal(new Set(c.runs.map((r) => r.name)).size, c.runs.length, `${c.name}: unique run names`);
      assert.equal(c.runs.filter((r) => !r.baseline).length >= 1, true, `${c.name}: a ROAF run`);
      for (const run of c.runs) {
        for (const quick of [false, true]) {
          const expected = expectedConfig(runSettings(run, quick));
          assert.ok(expected.training.epochs >= 1 && expected.training.batch >= 1, `${c.name}/${run.name}`);
        }
        for (const quick of [false, true]) {
          const memory = runSettings(run, quick).memory;
          assert.ok(
            memory === undefined || memory === 'full' || memory === 'checkpoint',
            `${c.name}/${run.name}: memory ${memory}`,
          );
        }
      }
    }
  });

  it('psmnist/roaf-rnn is exactly the study run that reached 98 %, so repro adopts it', () => {
    const run = claim('psmnist').runs.find((r) => r.name === 'roaf-rnn')!;
    assert.deepEqual(configDifferences(expectedConfig(runSettings(run, false)), ADOPTED_PSMNIST_CONFIG), []);
    const root = join(work, 'adopt');
    mkdirSync(join(root, 'psmnist', 'roaf-rnn', 'checkpoint'), { recursive: true });
    writeFileSync(
      join(root, 'psmnist', 'roaf-rnn', 'checkpoint', 'config.json'),
      JSON.stringify({
        format: 'roaf-checkpoint',
        version: 1,
        ...ADOPTED_PSMNIST_CONFIG,
        seed: 0,
        epoch: 0,
        batch_in_epoch: 100,
        step: 100,
        seconds: 564.8,
      }),
    );
    const plan = planClaim({ claim: 'psmnist', quick: false, backend: 'auto', out: root, quiet: true });
    assert.deepEqual(
      plan.runs.map((r) => [r.definition.name, r.state, r.checkpointStep]),
      [
        ['roaf-rnn', 'unfinished', 100],
        ['lstm', 'new', undefined],
      ],
    );
  });

  it('a run and `roaf train` with its arguments save the same configuration', () => {
    // Quick runs (about a second each): the ROAF run with its init options, a baseline whose coefficients the
    // factory fixes, and a generated task.
    for (const [claimName, runName] of [
      ['long-memory', 'adding-roaf-rnn'],
      ['long-memory', 'adding-rnn'],
      ['deep-mlp', 'resmlp'],
    ] as const) {
      const settings = runSettings(
        claim(claimName).runs.find((r) => r.name === runName)!,
        true,
      );
      const out = join(work, `same-config-${runName}`);
      const result = roaf(['train', ...trainArguments(settings), '--threads', '1', '--quiet', '--out', out]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(
        configDifferences(expectedConfig(settings), readCheckpointConfig(join(out, 'checkpoint'))),
        [],
        `${claimName}/${runName}`,
      );
    }
  });

  it('a run directory holding a different run is refused, naming the run, the field and both values', () => {
    const root = join(work, 'mismatch');
    const dir = join(root, 'psmnist', 'lstm');
    mkdirSync(join(dir, 'checkpoint'), { recursive: true });
    const expected = expectedConfig(
      runSettings(
        claim('psmnist').runs.find((r) => r.name === 'lstm')!,
        true,
      ),
    );
    const config = {
      format: 'roaf-checkpoint',
      version: 1,
      ...expected,
      training: { ...expected.training, optimizer: { ...expected.training.optimizer, lr: 0.05 } },
      epoch: 0,
      batch_in_epoch: 3,
      step: 3,
      seconds: 1,
    };
    writeFileSync(join(dir, 'checkpoint', 'config.json'), JSON.stringify(config));
    assert.throws(
      () => planClaim({ claim: 'psmnist', quick: true, backend: 'auto', out: root, quiet: true }),
      (error: unknown) =>
        error instanceof UsageError &&
        /run psmnist\/lstm: .*config\.json disagrees .*training\.optimizer\.lr is 0\.05 there, 0\.003 in the claim/.test(
          error.message,
        ),
    );
    const cli = roaf(['repro', 'psmnist', '--quick', '--out', root, '--quiet']);
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, /^roaf: run psmnist\/lstm: .*training\.optimizer\.lr is 0\.05 there, 0\.003 in the claim/);
    assert.ok(!existsSync(join(root, 'psmnist', 'roaf-rnn')), 'nothing trained');
    assert.ok(!existsSync(join(dir, 'metrics.jsonl')), 'nothing written');
  });

  it('--quick never writes into experiments/results; unknown claims and runs are named', () => {
    assert.throws(
      () => planClaim({ claim: 'psmnist', quick: true, backend: 'auto', out: 'experiments/results', quiet: true }),
      /never into experiments\/results/,
    );
    assert.throws(
      () => planClaim({ claim: 'psmnist', quick: true, backend: 'auto', out: 'experiments/results/x', quiet: true }),
      /never into/,
    );
    assert.throws(
      () => planClaim({ claim: 'psmnist', quick: true, backend: 'auto', only: ['gru'], quiet: true }),
      /--only: claim psmnist has the runs roaf-rnn, lstm, got 'gru'/,
    );
    const cli = roaf(['repro', 'cifar']);
    assert.equal(cli.status, 2);
    assert.match(cli.stderr, /claim must be one of deep-mlp, long-memory, psmnist, smnist, million-layer, got 'cifar'/);
    const million = roaf(['repro', 'million-layer', '--dry-run', '--out', join(work, 'million')]);
    assert.equal(million.status, 0, million.stderr);
    assert.match(million.stdout + million.stderr, /--depth 1000000 .*--memory checkpoint/);
  });
});

describe('the run worker', () => {
  it('a run whose loss becomes non-finite is stopped, and result.json says so', () => {
    // SGD at the largest allowed learning rate multiplies a regression's error by ~100 per step: float32
    // overflows within a few steps and the trainer throws DivergedError.
    const settings = {
      model: 'rnn',
      task: 'adding',
      seqLen: 10,
      hidden: 8,
      trainSize: 200,
      testSize: 20,
      batch: 10,
      epochs: 1,
      optimizer: 'sgd',
      lr: 10,
      checkpointEvery: 1,
    } as const;
    const dir = join(work, 'diverge');
    const job: WorkerJob = {
      claim: 'test',
      run: 'diverge',
      dir,
      quick: true,
      baseline: true,
      expected: expectedConfig(settings),
      stopAtChance: true,
      goal: null,
      backend: 'auto',
      threads: 1,
      quiet: true,
      command: 'roaf repro test',
      trainCommand: 'roaf train',
      diagnose: { batch: 8, samples: 1 },
    };
    const worker = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'repro', 'worker.js'), JSON.stringify(job)], {
      encoding: 'utf8',
    });
    assert.equal(worker.status, 0, worker.stderr);
    const { result } = lastJson(worker.stdout) as unknown as WorkerReport;
    assert.deepEqual(result, readResultFile(dir));
    assert.equal(result.status, 'stopped-early');
    assert.equal(result.stopped_early?.reason, 'diverged');
    assert.match(
      result.stopped_early?.detail ?? '',
      /^training diverged at step \d+: the (loss|gradient norm) is (NaN|-?Infinity)/,
    );
    assert.ok(result.steps < result.steps_budget);
    assert.equal(
      result.steps,
      readCheckpointConfig(join(dir, 'checkpoint')).step,
      'the last checkpoint before the divergence',
    );
  });
});

describe('roaf repro --quick, end to end', () => {
  const root = join(work, 'quick');
  const args = (claimName: string, ...more: string[]) => [
    'repro',
    claimName,
    '--quick',
    '--out',
    root,
    '--threads',
    '1',
    '--quiet',
    ...more,
  ];

  function checkRun(dir: string, claimName: string, run: string): ReproResult {
    const result = readResultFile(dir);
    for (const key of [
      'model',
      'task',
      'config',
      'params',
      'epochs',
      'epochs_done',
      'per_epoch',
      'final',
      'wall_seconds',
      'peak_rss_bytes',
      'stopped_early',
      'machine',
      'git_commit',
      'command',
      'train_command',
      'diagnostics',
    ])
      assert.ok(key in result, `${run}: result.json lacks ${key}`);
    assert.equal(result.claim, claimName);
    assert.equal(result.quick, true);
    const records = readMetrics(join(dir, 'metrics.jsonl')).records;
    const saved = readCheckpointConfig(join(dir, 'checkpoint'));
    assert.deepEqual(result.config, { model: saved.model, task: saved.task, training: saved.training });
    assert.equal(result.evaluations, records.length);
    assert.deepEqual(
      result.per_epoch.map((f) => [f.epoch, f.step, f.test_accuracy ?? f.test_mse]),
      records.filter((r) => Number.isInteger(r.epoch)).map((r) => [r.epoch, r.step, r.test_accuracy ?? r.test_mse]),
    );
    const last = records[records.length - 1]!;
    assert.equal(result.final?.step, last.step);
    assert.equal(result.final?.test_accuracy, last.test_accuracy);
    assert.equal(result.steps, saved.step);
    assert.equal(result.epochs_done, saved.epoch);
    assert.equal(result.wall_seconds, Number(saved.seconds.toFixed(3)));
    assert.ok(result.wall_seconds >= last.seconds);
    assert.ok(
      result.peak_rss_bytes !== null && result.peak_rss_bytes >= Math.max(...records.map((r) => r.peak_rss_bytes ?? 0)),
    );
    assert.ok(result.params > 0);
    assert.ok(result.machine.cores >= 1 && result.machine.cpu.length > 0 && result.machine.node === process.version);
    assert.ok(result.git_commit === null || /^[0-9a-f]{40}$/.test(result.git_commit));
    assert.equal(result.command, `roaf repro ${claimName} --quick --only ${run} --out ${root}`);
    assert.match(result.train_command, new RegExp(`^roaf train --model ${result.model} --task ${result.task} `));
    for (const file of ['test-accuracy.svg', 'test-accuracy.png', 'loss.svg', 'loss.png'])
      assert.ok(existsSync(join(dir, file)), `${run}: ${file}`);
    for (const when of ['init', 'final']) {
      for (const file of ['diagnose.json', 'gradient-norms.svg', 'gradient-norms.png', 'spectrum.svg']) {
        assert.ok(existsSync(join(dir, `diagnose-${when}`, file)), `${run}: diagnose-${when}/${file}`);
      }
      assert.ok(result.diagnostics[when as 'init' | 'final'] !== null);
    }
    return result;
  }

  it('deep-mlp: every run with result.json, curves, diagnostics and report; the stuck mlp baseline stopped at chance', () => {
    const cli = roaf(args('deep-mlp', '--json'));
    assert.equal(cli.status, 0, cli.stderr);
    const summary = lastJson(cli.stdout) as { runs: Array<{ run: string; action: string }>; report: string };
    assert.deepEqual(
      summary.runs.map((r) => [r.run, r.action]),
      [
        ['roaf-mlp', 'trained'],
        ['mlp', 'trained'],
        ['resmlp', 'trained'],
      ],
    );
    const roafMlp = checkRun(join(root, 'deep-mlp', 'roaf-mlp'), 'deep-mlp', 'roaf-mlp');
    assert.equal(roafMlp.status, 'finished');
    assert.equal(roafMlp.stopped_early, null);
    assert.equal(roafMlp.epochs_done, 2);
    const mlp = checkRun(join(root, 'deep-mlp', 'mlp'), 'deep-mlp', 'mlp');
    assert.equal(mlp.status, 'stopped-early');
    assert.equal(mlp.stopped_early?.reason, 'chance');
    assert.ok(mlp.steps < mlp.steps_budget, 'stopped before its budget');
    assert.ok(mlp.steps >= mlp.steps_budget / 4, 'not before a quarter of it');
    assert.ok(Math.abs((mlp.final?.test_accuracy ?? 1) - 0.1) <= 0.02);
    assert.ok((roafMlp.final?.test_accuracy ?? 0) > 0.5, 'the ROAF MLP learns');
    const [D, N, L, K] = [784, 16, 300, 10];
    assert.equal(roafMlp.params, D * N + N + L * (N * N + N) + N * K + K);
    const html = readFileSync(summary.report, 'utf8');
    assert.equal(summary.report, join(root, 'deep-mlp', 'report.html'));
    for (const label of ['roaf-mlp', 'mlp', 'resmlp', 'roaf-mlp at init'])
      assert.ok(html.includes(`data-run="${label}"`), `report shows ${label}`);
    for (const plot of ['test-accuracy', 'gradient-norms-layer', 'spectrum'])
      assert.ok(html.includes(`data-plot="${plot}"`), `report plot ${plot}`);

    const again = roaf(args('deep-mlp', '--json'));
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(
      (lastJson(again.stdout) as typeof summary).runs.map((r) => r.action),
      ['skipped', 'skipped', 'skipped'],
    );
  });

  /** `roaf repro deep-mlp --quick --only roaf-mlp` under `resumedRoot`, with `env` and extra arguments. */
  const onlyRoafMlp = (resumedRoot: string, env: Record<string, string> = {}, ...extra: string[]) =>
    roaf(
      [
        'repro',
        'deep-mlp',
        '--quick',
        '--only',
        'roaf-mlp',
        '--out',
        resumedRoot,
        '--threads',
        '1',
        '--quiet',
        ...extra,
      ],
      env,
    );

  /** Continues the interrupted run under `resumedRoot` and checks it ends exactly as the uninterrupted one. */
  function resumeMatchesStraightRun(resumedRoot: string): void {
    const dir = join(resumedRoot, 'deep-mlp', 'roaf-mlp');
    const resumed = onlyRoafMlp(resumedRoot, {}, '--json');
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.equal((lastJson(resumed.stdout) as { runs: Array<{ action: string }> }).runs[0]!.action, 'continued');
    const straight = join(root, 'deep-mlp', 'roaf-mlp');
    for (const file of ['model.safetensors', 'optimizer.safetensors']) {
      assert.deepEqual(
        readFileSync(join(dir, 'checkpoint', file)),
        readFileSync(join(straight, 'checkpoint', file)),
        file,
      );
    }
    assert.deepEqual(
      readMetrics(join(dir, 'metrics.jsonl')).records.map(stable),
      readMetrics(join(straight, 'metrics.jsonl')).records.map(stable),
    );
    const a = readResultFile(dir),
      b = readResultFile(straight);
    assert.deepEqual(
      a.per_epoch.map((f) => ({ ...f, seconds: 0 })),
      b.per_epoch.map((f) => ({ ...f, seconds: 0 })),
    );
    assert.deepEqual(a.diagnostics, b.diagnostics);
  }

  it('a session killed mid-run continues from its checkpoint to the same result as an uninterrupted run', () => {
    const resumedRoot = join(work, 'killed');
    const killed = onlyRoafMlp(resumedRoot, { ROAF_REPRO_KILL_AT_STEP: '30' });
    assert.equal(killed.status, 1);
    assert.match(
      killed.stderr,
      /deep-mlp\/roaf-mlp: its process was killed by SIGKILL.*run the same command again to continue/,
    );
    const dir = join(resumedRoot, 'deep-mlp', 'roaf-mlp');
    assert.equal(readCheckpointConfig(join(dir, 'checkpoint')).step, 20, 'the last checkpoint before the kill');
    assert.ok(!existsSync(join(dir, 'result.json')));
    resumeMatchesStraightRun(resumedRoot);
  });

  it('SIGTERM to roaf repro: the run saves a checkpoint at the step it reached, exits 143, and continues exactly', () => {
    const resumedRoot = join(work, 'terminated');
    // the worker signals `roaf repro` after step 30, which passes SIGTERM back to the worker
    const stopped = onlyRoafMlp(resumedRoot, { ROAF_REPRO_SIGNAL_AT_STEP: '30' });
    assert.equal(stopped.status, 143, stopped.stderr);
    const said = /deep-mlp\/roaf-mlp: SIGTERM: stopped at step (\d+), checkpoint saved there/.exec(stopped.stderr);
    assert.ok(said, stopped.stderr);
    const dir = join(resumedRoot, 'deep-mlp', 'roaf-mlp');
    const step = readCheckpointConfig(join(dir, 'checkpoint')).step;
    assert.equal(step, Number(said[1]));
    // the last periodic checkpoint before the signal is at step 20 (the kill test above): this one is later
    assert.ok(step >= 30, `checkpoint at step ${step}`);
    assert.ok(!existsSync(join(dir, 'result.json')));
    // the claim's report of the run as far as it got, written before the command exits (--quiet: not said)
    const reportPath = join(resumedRoot, 'deep-mlp', 'report.html');
    assert.ok(readFileSync(reportPath, 'utf8').includes('data-plot="test-accuracy"'), 'the learning curve so far');
    assert.ok(existsSync(join(resumedRoot, 'deep-mlp', 'report-plots', 'test-accuracy.png')));
    // the figures so far, for the README while the run is under way
    const progress = readJson(join(dir, 'progress.json')) as unknown as ReproResult;
    assert.equal(progress.status, 'in-progress');
    const lastEvaluation = Math.floor(step / 10) * 10; // quick deep-mlp evaluates every 10 steps
    assert.equal(progress.steps, lastEvaluation);
    assert.equal(progress.final?.step, lastEvaluation);
    const tables = join(work, 'tables-in-progress', 'deep-mlp', 'roaf-mlp');
    mkdirSync(tables, { recursive: true });
    writeFileSync(join(tables, 'progress.json'), JSON.stringify({ ...progress, quick: false }));
    assert.match(
      claimBlock(claim('deep-mlp'), join(work, 'tables-in-progress')),
      new RegExp(
        `\\| roaf-mlp \\| roaf-mlp L=300 N=16 [^|]*\\| 94,330 \\| 0 of 2 \\(training: step ${lastEvaluation} of \\d+\\) \\|`,
      ),
    );
    // with a checkpoint saved after that evaluation (as at the end of a session), the row says how far
    // training got and for how long; the figures stay the evaluation's
    const later = { ...readJson(join(dir, 'checkpoint', 'config.json')), step: lastEvaluation + 7, seconds: 12345 };
    mkdirSync(join(tables, 'checkpoint'));
    writeFileSync(join(tables, 'checkpoint', 'config.json'), JSON.stringify(later));
    assert.match(
      claimBlock(claim('deep-mlp'), join(work, 'tables-in-progress')),
      new RegExp(`\\| 0 of 2 \\(training: step ${lastEvaluation + 7} of \\d+\\) \\| [^|]+ \\| 3\\.43 h \\|`),
    );
    resumeMatchesStraightRun(resumedRoot);
    assert.ok(!existsSync(join(dir, 'progress.json')), 'result.json replaces progress.json');
  });

  it('psmnist: the ROAF RNN and the LSTM baseline, with per-epoch figures and a report', () => {
    const cli = roaf(args('psmnist'));
    assert.equal(cli.status, 0, cli.stderr);
    for (const run of ['roaf-rnn', 'lstm']) {
      const result = checkRun(join(root, 'psmnist', run), 'psmnist', run);
      if (result.status === 'finished')
        assert.deepEqual(
          result.per_epoch.map((f) => f.epoch),
          [1, 2],
        );
      assert.equal(result.task, 'psmnist');
    }
    assert.match(cli.stdout, /^psmnist\/roaf-rnn: finished: epoch 1: [\d.]+ %; epoch 2: [\d.]+ %/m);
    const html = readFileSync(join(root, 'psmnist', 'report.html'), 'utf8');
    assert.ok(html.includes('data-plot="gradient-norms-step"'));
  });

  it('--rediagnose: finished runs diagnosed again from their checkpoints, nothing trained; a run without one is refused', () => {
    const dirOf = (run: string) => join(root, 'psmnist', run);
    const files = (run: string) =>
      ['metrics.jsonl', 'checkpoint/model.safetensors', 'checkpoint/config.json'].map((f) =>
        readFileSync(join(dirOf(run), f)),
      );
    const before = { result: readResultFile(dirOf('lstm')), files: files('lstm') };
    const initBefore = readFileSync(join(dirOf('lstm'), 'diagnose-init', 'diagnose.json'), 'utf8');
    rmSync(join(dirOf('lstm'), 'diagnose-final', 'diagnose.json')); // must be written again
    const again = roaf(args('psmnist', '--only', 'lstm', '--rediagnose'));
    assert.equal(again.status, 0, again.stderr);
    assert.match(
      again.stdout,
      /^psmnist\/lstm: (finished|stopped early) \(in an earlier session\), diagnosed again: /m,
    );
    const after = readResultFile(dirOf('lstm'));
    const { rediagnosed, ...rest } = after;
    assert.deepEqual(rest, before.result, 'figures, wall time, machine and diagnostics as they were (the same code)');
    assert.ok(rediagnosed && /^\d{4}-\d\d-\d\dT/.test(rediagnosed.at) && rediagnosed.machine.cores >= 1);
    assert.deepEqual(files('lstm'), before.files, 'metrics and checkpoint untouched: nothing trained');
    assert.ok(existsSync(join(dirOf('lstm'), 'diagnose-final', 'diagnose.json')));
    const initAfter = JSON.parse(readFileSync(join(dirOf('lstm'), 'diagnose-init', 'diagnose.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const { seconds: _s1, ...initNow } = initAfter;
    const { seconds: _s2, ...initThen } = JSON.parse(initBefore) as Record<string, unknown>;
    assert.deepEqual(initNow, initThen, 'the diagnosis at initialisation is the same model and data again');

    // A finished run whose checkpoint is gone cannot be diagnosed again: named, refused, nothing changed.
    rmSync(join(dirOf('lstm'), 'checkpoint'), { recursive: true });
    const refused = roaf(args('psmnist', '--only', 'lstm', '--rediagnose'));
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /--rediagnose: lstm kept no checkpoint \(.*checkpoint\), so its trained model cannot be diagnosed again/,
    );
    assert.deepEqual(readResultFile(dirOf('lstm')), after);
    // Without --only it is left alone, and the runs that can be are diagnosed again.
    const all = roaf(args('psmnist', '--rediagnose'));
    assert.equal(all.status, 0, all.stderr);
    assert.match(all.stdout, /^psmnist\/roaf-rnn: finished \(in an earlier session\), diagnosed again: /m);
    assert.match(all.stdout, /^psmnist\/lstm: (finished|stopped early) \(in an earlier session\): /m);
    assert.deepEqual(readResultFile(dirOf('lstm')), after);
  });
});

describe('the machine a result records', () => {
  it('keeps the best FMA peak measured, measuring again at most once per interval', () => {
    const peaks = [80.1, 114.8, 90.0, 70.0];
    let calls = 0;
    let clock = 0;
    const measure = (): MachineInfo => ({
      cpu: 'test',
      cores: 2,
      fma_peak_gflops: peaks[calls++]!,
      isa: 'avx512',
      total_memory_bytes: 1,
      node: 'v0',
      platform: 'test',
    });
    const record = new MachineRecord(measure, 60_000, () => clock);
    assert.equal(record.current().fma_peak_gflops, 80.1); // a first measurement under contention
    clock = 30_000;
    assert.equal(record.current().fma_peak_gflops, 80.1);
    assert.equal(calls, 1, 'not measured again within the interval');
    clock = 60_000;
    assert.equal(record.current().fma_peak_gflops, 114.8); // the cores were free this time
    clock = 120_000;
    assert.equal(record.current().fma_peak_gflops, 114.8); // 90.0: lower, not kept
    clock = 180_000;
    assert.equal(record.current().fma_peak_gflops, 114.8);
    assert.equal(calls, 4);
  });
});

describe('README results tables', () => {
  it('the README holds the tables experiments/results gives', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    assert.deepEqual(
      staleClaims(readme, join(ROOT, 'experiments', 'results')),
      [],
      'README.md is out of date: run `node scripts/results-tables.mjs` after adding results',
    );
  });

  it('a table row per result.json; the check notices a README that disagrees', () => {
    // Quick results stand in for full ones: the same files with quick = false.
    const root = join(work, 'tables');
    cpSync(join(work, 'quick', 'deep-mlp'), join(root, 'deep-mlp'), { recursive: true });
    for (const run of ['roaf-mlp', 'mlp', 'resmlp']) {
      const path = join(root, 'deep-mlp', run, 'result.json');
      writeFileSync(path, JSON.stringify({ ...readJson(path), quick: false }));
    }
    const block = claimBlock(claim('deep-mlp'), root);
    assert.match(
      block,
      /^\*\*Paper:\*\* an MLP of 50,000 layers trains by plain backpropagation\. \*\*Target:\*\* width 64/,
    );
    assert.match(
      block,
      /\| roaf-mlp \| roaf-mlp L=300 N=16 .*\| 94,330 \| 2 \| epoch 1: [\d.]+ %; epoch 2: [\d.]+ % \|/,
    );
    assert.match(block, /\| mlp \| mlp L=300 N=16 \| 94,330 \| [\d.]+ of 2 \| .*stopped early at step \d+: at chance/);
    assert.match(block, /`roaf repro deep-mlp --quick --only resmlp --out /);
    assert.match(
      block,
      /!\[deep-mlp: gradient-norms-layer\]\(experiments\/results\/deep-mlp\/report-plots\/gradient-norms-layer\.png\)/,
    );
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const empty = join(work, 'no-results');
    const current = updateReadme(readme, empty);
    assert.deepEqual(staleClaims(current, empty), []);
    assert.deepEqual(staleClaims(current, root), ['deep-mlp']);
    const updated = updateReadme(current, root);
    assert.deepEqual(staleClaims(updated, root), []);
    assert.ok(updated.includes(block));
    assert.match(
      claimBlock(claim('smnist'), empty),
      /No results yet: `roaf repro smnist` writes them to `experiments\/results\/smnist\/`/,
    );
  });
});
