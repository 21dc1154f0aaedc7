// `roaf repro <claim>`: plans the claim's runs against what is already on disk, trains each unfinished
// run in its own process (src/repro/worker.ts), and writes the claim's report.html comparing its runs.
//
// Where results go: <root>/<claim>/<run>/, root experiments/results (full size) or runs/repro-quick
// (--quick; never experiments/results). A run directory is in one of three states:
//   - result.json present: finished; skipped (its configuration must still match the table);
//   - a checkpoint present: unfinished; continued from the checkpoint, exactly as `roaf train --resume`;
//   - neither: started from scratch.
// With --rediagnose nothing is trained: each finished run that kept its checkpoint is diagnosed again
// (the diagnostics of a newer roaf), and every other run is left alone with a message.
// Every selected run is checked before anything is trained: a directory whose configuration disagrees
// with the claim's table is an error naming the run, the field and both values, never retrained.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendName } from '../backend/index.js';
import { buildReport } from '../report/html.js';
import { readRun, type RunData } from '../report/runs.js';
import { readCheckpointConfig, resolveCheckpointDir } from '../train/checkpoint.js';
import { UsageError } from '../util/errors.js';
import { writeFileWhole } from '../util/paths.js';
import { CLAIMS, CLAIM_NAMES, type ClaimDefinition, type RunDefinition } from './claims.js';
import {
  configDifferences,
  expectedConfig,
  mismatchError,
  runSettings,
  trainArguments,
  type ExpectedConfig,
} from './resolve.js';
import { RESULT_FILE, readDiagnosticsFile, readResult, type ReproResult } from './result.js';
import type { WorkerJob, WorkerReport } from './worker.js';

/** Where full-size results live, and where --quick results go by default (relative to the working directory). */
export const RESULTS_ROOT = join('experiments', 'results');
export const QUICK_ROOT = join('runs', 'repro-quick');
/** Diagnostics of every run: the first 32 test samples, the Jacobian spectrum of the first. */
const DIAGNOSE = { batch: 32, samples: 1 };
const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface ReproOptions {
  claim: string;
  quick: boolean;
  /** Names of the runs to train (default: all of the claim's). */
  only?: string[];
  threads?: number;
  backend: BackendName;
  /** Root of the results (default RESULTS_ROOT, or QUICK_ROOT with --quick). */
  out?: string;
  quiet: boolean;
  /** Diagnose finished runs again from their checkpoints instead of training (see the file header). */
  rediagnose?: boolean;
}

export interface PlannedRun {
  definition: RunDefinition;
  expected: ExpectedConfig;
  dir: string;
  state: 'new' | 'unfinished' | 'finished';
  /** Unfinished: the step its checkpoint holds. */
  checkpointStep?: number;
  /** Finished: whether its checkpoint is still there (--rediagnose needs it). */
  hasCheckpoint?: boolean;
  result?: ReproResult;
  trainArgs: string[];
  /** How a feed-forward stack keeps its activations (`roaf train --memory`); auto when the table says nothing. */
  memory?: 'full' | 'checkpoint';
}

export interface ClaimPlan {
  claim: ClaimDefinition;
  quick: boolean;
  root: string;
  runs: PlannedRun[];
}

export interface RunOutcome {
  run: string;
  dir: string;
  /**
   * 'skipped': finished in an earlier session; 'trained': from scratch; 'continued': from a checkpoint;
   * 'rediagnosed': finished earlier and diagnosed again (--rediagnose).
   */
  action: 'skipped' | 'trained' | 'continued' | 'rediagnosed';
  result: ReproResult;
}

export interface ClaimOutcome {
  claim: string;
  quick: boolean;
  root: string;
  report: string | null;
  runs: RunOutcome[];
}

/** A run's process ended without a result: a signal ended the session, or the process died or failed. */
export class RunEnded extends Error {
  /** The exit code the command should end with: 128 + signal number for Ctrl-C and SIGTERM, else 1. */
  readonly exitCode: number;
  constructor(
    message: string,
    readonly signal: NodeJS.Signals | null,
    interrupted: boolean,
  ) {
    super(message);
    this.name = 'RunEnded';
    this.exitCode = interrupted ? (signal === 'SIGINT' ? 130 : 143) : 1;
  }
}

export function findClaim(name: string): ClaimDefinition {
  const claim = CLAIMS.find((c) => c.name === name);
  if (!claim) throw new UsageError(`claim must be one of ${CLAIM_NAMES.join(', ')}, got '${name}'`);
  return claim;
}

/** The results root for these options, refusing to let --quick write into experiments/results. */
export function resultsRoot(quick: boolean, out?: string): string {
  const root = out ?? (quick ? QUICK_ROOT : RESULTS_ROOT);
  const rel = relative(resolve(RESULTS_ROOT), resolve(root));
  const insideResults = rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  if (quick && insideResults) {
    throw new UsageError(
      `--quick results go under ${QUICK_ROOT} or another --out, never into ${RESULTS_ROOT} (got --out ${root})`,
    );
  }
  return root;
}

/** The command that reproduces one run, as result.json records it. */
function reproCommand(claim: string, run: string, quick: boolean, out?: string): string {
  return `roaf repro ${claim}${quick ? ' --quick' : ''} --only ${run}${out !== undefined ? ` --out ${out}` : ''}`;
}

/** Checks every selected run against what its directory holds; throws before anything is trained. */
export function planClaim(options: ReproOptions): ClaimPlan {
  const claim = findClaim(options.claim);
  const names = claim.runs.map((r) => r.name);
  for (const name of options.only ?? []) {
    if (!names.includes(name))
      throw new UsageError(`--only: claim ${claim.name} has the runs ${names.join(', ')}, got '${name}'`);
  }
  const root = resultsRoot(options.quick, options.out);
  const selected = claim.runs.filter((r) => options.only === undefined || options.only.includes(r.name));
  const runs = selected.map((definition): PlannedRun => {
    const settings = runSettings(definition, options.quick);
    const expected = expectedConfig(settings);
    const dir = join(root, claim.name, definition.name);
    const planned = { definition, expected, dir, trainArgs: trainArguments(settings), memory: settings.memory };
    const result = readResult(dir);
    if (result !== null) {
      const differences = configDifferences(expected, result.config);
      if (differences.length > 0) throw mismatchError(claim, definition, join(dir, RESULT_FILE), differences);
      const hasCheckpoint = resolveCheckpointDir(join(dir, 'checkpoint')) !== null;
      return { ...planned, state: 'finished', result, hasCheckpoint };
    }
    const checkpointDir = join(dir, 'checkpoint');
    if (resolveCheckpointDir(checkpointDir) !== null) {
      const saved = readCheckpointConfig(checkpointDir);
      const differences = configDifferences(expected, saved);
      if (differences.length > 0)
        throw mismatchError(claim, definition, join(resolveCheckpointDir(checkpointDir)!, 'config.json'), differences);
      return { ...planned, state: 'unfinished', checkpointStep: saved.step };
    }
    return { ...planned, state: 'new' };
  });
  if (options.rediagnose && options.only !== undefined) {
    // Runs named by --only must be diagnosable: otherwise the command cannot do what it was asked.
    const refused = runs.map(whyNotRediagnosable).filter((why): why is string => why !== null);
    if (refused.length > 0) throw new UsageError(`--rediagnose: ${refused.join('; ')}`);
  }
  return { claim, quick: options.quick, root, runs };
}

/** Why --rediagnose leaves a run alone (null: it can be diagnosed again). */
function whyNotRediagnosable(run: PlannedRun): string | null {
  if (run.state !== 'finished')
    return `${run.definition.name} is not finished (${run.state === 'new' ? 'not started' : `its checkpoint is at step ${run.checkpointStep}`}): roaf repro without --rediagnose trains it`;
  if (!run.hasCheckpoint)
    return `${run.definition.name} kept no checkpoint (${join(run.dir, 'checkpoint')}), so its trained model cannot be diagnosed again`;
  return null;
}

/** Runs a worker process; rejects with RunEnded when it gives no result (UsageError when it could not start). */
function runWorker(
  job: WorkerJob,
  track: (child: ChildProcess | null) => void,
  interruptedBy: () => NodeJS.Signals | null,
): Promise<WorkerReport> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, WORKER, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    track(child);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      track(null);
      const name = `${job.claim}/${job.run}`;
      const interrupted = interruptedBy() ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? signal : null);
      const again = 'its last checkpoint is kept: run the same command again to continue';
      if (interrupted)
        return reject(new RunEnded(`interrupted by ${interrupted} during run ${name}; ${again}`, interrupted, true));
      if (signal)
        return reject(
          new RunEnded(`run ${name}: its process was killed by ${signal} (out of memory?); ${again}`, signal, false),
        );
      if (code === 2) return reject(new UsageError(`run ${name} could not start (see the message above)`));
      if (code !== 0)
        return reject(
          new RunEnded(
            `run ${name}: its process failed with exit code ${code} (see the messages above); ${again}`,
            null,
            false,
          ),
        );
      const lines = stdout.trim().split('\n');
      try {
        resolvePromise(JSON.parse(lines[lines.length - 1] ?? '') as WorkerReport);
      } catch {
        reject(new RunEnded(`run ${name}: its process printed no result`, null, false));
      }
    });
  });
}

/**
 * Writes <root>/<claim>/report.html comparing every run of the claim that has a metrics log: learning
 * curves, and gradient norms and spectra after training and at initialisation (as '<run> at init').
 */
export async function writeClaimReport(
  plan: Pick<ClaimPlan, 'claim' | 'root' | 'quick'>,
): Promise<{ path: string; warnings: string[] } | null> {
  const claimDir = join(plan.root, plan.claim.name);
  const dirs = plan.claim.runs.map((r) => join(claimDir, r.name)).filter((d) => existsSync(join(d, 'metrics.jsonl')));
  if (dirs.length === 0) return null;
  const trained: RunData[] = dirs.map((dir) => ({
    ...readRun(dir),
    diagnostics: readDiagnosticsFile(join(dir, 'diagnose-final', 'diagnose.json')),
  }));
  const initial: RunData[] = trained.flatMap((run) => {
    const diagnostics = readDiagnosticsFile(join(run.dir, 'diagnose-init', 'diagnose.json'));
    return diagnostics
      ? [
          {
            dir: join(run.dir, 'diagnose-init'),
            label: `${run.label} at init`,
            records: [],
            config: run.config,
            diagnostics,
            warnings: [],
          },
        ]
      : [];
  });
  const report = await buildReport([...trained, ...initial], {
    title: `roaf repro ${plan.claim.name}${plan.quick ? ' --quick' : ''}: ${plan.claim.title}`,
    figuresDir: join(claimDir, 'report-plots'),
    generated: new Date().toISOString(),
  });
  const path = join(claimDir, 'report.html');
  writeFileWhole(path, report.html);
  return { path, warnings: report.warnings };
}

/**
 * Trains every unfinished run of the claim, one process each, then writes the claim's report (also when a signal or a
 * failure ends it early, before the error goes on).
 */
export async function reproduceClaim(options: ReproOptions): Promise<ClaimOutcome> {
  const plan = planClaim(options);
  const say = (line: string) => {
    if (!options.quiet) process.stderr.write(`roaf repro: ${line}\n`);
  };
  let current: ChildProcess | null = null;
  let interrupted: NodeJS.Signals | null = null;
  // Ctrl-C reaches the worker too (same process group); SIGTERM sent to this process alone is passed on.
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    current?.kill(signal);
  };
  // Read through a function: the compiler does not see onSignal's assignment and would narrow `interrupted` to null.
  const interruptedBy = (): NodeJS.Signals | null => interrupted;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const outcomes: RunOutcome[] = [];
  try {
    for (const run of plan.runs) {
      const name = `${plan.claim.name}/${run.definition.name}`;
      const leftAlone = options.rediagnose ? whyNotRediagnosable(run) : null;
      if (leftAlone !== null) {
        say(`${plan.claim.name}/${leftAlone}; left alone`);
        if (run.result)
          outcomes.push({ run: run.definition.name, dir: run.dir, action: 'skipped', result: run.result });
        continue;
      }
      if (run.state === 'finished' && run.result && !options.rediagnose) {
        say(`${name}: finished in an earlier session (${run.dir}/${RESULT_FILE}), skipped`);
        outcomes.push({ run: run.definition.name, dir: run.dir, action: 'skipped', result: run.result });
        continue;
      }
      const signal = interruptedBy();
      if (signal) throw new RunEnded(`interrupted by ${signal} before run ${name} started`, signal, true);
      say(
        options.rediagnose
          ? `${name}: diagnosing it again (its training is left as it is)`
          : run.state === 'unfinished'
            ? `${name}: continuing from the checkpoint at step ${run.checkpointStep}`
            : `${name}: starting`,
      );
      mkdirSync(run.dir, { recursive: true });
      const job: WorkerJob = {
        claim: plan.claim.name,
        run: run.definition.name,
        dir: run.dir,
        quick: plan.quick,
        baseline: run.definition.baseline,
        expected: run.expected,
        stopAtChance: plan.claim.stopAtChance,
        goal: plan.claim.goal ?? null,
        backend: options.backend,
        threads: options.threads ?? null,
        quiet: options.quiet,
        command: reproCommand(plan.claim.name, run.definition.name, plan.quick, options.out),
        trainCommand: ['roaf train', ...run.trainArgs, '--out', run.dir].join(' '),
        diagnose: DIAGNOSE,
        ...(run.memory !== undefined ? { memory: run.memory } : {}),
        ...(options.rediagnose ? { rediagnose: true } : {}),
      };
      const report = await runWorker(
        job,
        (child) => {
          current = child;
        },
        interruptedBy,
      );
      outcomes.push({
        run: run.definition.name,
        dir: run.dir,
        action: options.rediagnose ? 'rediagnosed' : run.state === 'unfinished' ? 'continued' : 'trained',
        result: report.result,
      });
    }
  } catch (error) {
    // A session ending (SIGTERM, Ctrl-C) or a run that died still leaves the claim's report of every run as far
    // as it got: the curves of a run that spans several sessions are there to look at after each of them.
    try {
      const report = await writeClaimReport(plan);
      if (report) say(`report of the runs so far: ${report.path}`);
    } catch (reportError) {
      say(`report: not written: ${reportError instanceof Error ? reportError.message : String(reportError)}`);
    }
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const report = await writeClaimReport(plan);
  for (const warning of report?.warnings ?? []) say(`report: ${warning}`);
  return { claim: plan.claim.name, quick: plan.quick, root: plan.root, report: report?.path ?? null, runs: outcomes };
}
