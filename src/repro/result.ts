// result.json: what one finished run of a claim measured, in one file next to its metrics log, plots
// and diagnostics. Written last (atomically), so its presence means the run is complete; the README
// tables (src/repro/tables.ts) are generated from these files alone.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Diagnostics } from '../diagnostics/diagnose.js';
import type { MetricsRecord } from '../train/metrics.js';
import { UsageError } from '../util/errors.js';
import { writeFileWhole } from '../util/paths.js';
import type { Goal } from './claims.js';
import type { MachineInfo } from './machine.js';
import type { ExpectedConfig } from './resolve.js';

export const RESULT_FORMAT = 'roaf-repro-result';
export const RESULT_VERSION = 1;
export const RESULT_FILE = 'result.json';
/**
 * A run still training keeps its figures so far in progress.json, the same format with status
 * 'in-progress', rewritten at every evaluation and removed once result.json is written: the README shows
 * a run of several sessions while it is under way, from files the repository holds.
 */
export const PROGRESS_FILE = 'progress.json';

/** The test figures of one evaluation. */
export interface Figures {
  epoch: number;
  step: number;
  test_loss: number;
  test_accuracy?: number;
  test_mse?: number;
  train_loss: number | null;
  seconds: number;
}

/** The gist of a diagnose.json (the full curves stay in the diagnose-* directories). */
export interface DiagnosticsSummary {
  loss: number;
  log10_gradient_first_last_ratio: number | null;
  log10_gradient_min: number | null;
  log10_gradient_max: number | null;
  log10_sigma_min: number | null;
  log10_sigma_max: number | null;
  inside_bounds: boolean | null;
}

export interface StoppedEarly {
  /** 'chance': a baseline stuck at chance; 'diverged': a non-finite training loss. */
  reason: 'chance' | 'diverged';
  step: number;
  epoch: number;
  detail: string;
}

export interface ReproResult {
  format: typeof RESULT_FORMAT;
  version: number;
  claim: string;
  run: string;
  quick: boolean;
  baseline: boolean;
  /** 'finished': every epoch trained; 'stopped-early': see stopped_early; 'in-progress': progress.json. */
  status: 'finished' | 'stopped-early' | 'in-progress';
  model: string;
  task: string;
  /** Every hyperparameter: the model, task and training configuration of the run's checkpoint. */
  config: ExpectedConfig & {
    model: ExpectedConfig['model'] & { inputDim?: number; outputs?: number; readout?: string };
  };
  params: number;
  /** Epochs in the run's budget, and epochs completed. */
  epochs: number;
  epochs_done: number;
  steps: number;
  steps_budget: number;
  /** The test figures after each completed epoch. */
  per_epoch: Figures[];
  /** The last evaluation. */
  final: Figures | null;
  evaluations: number;
  /** The claim's goal, and the first evaluation that reached it (null: not reached). */
  goal: (Goal & { reached: Figures | null }) | null;
  /** Copy task: accuracy on the ten recalled symbols of every test sequence (chance 1/8). */
  recall_accuracy?: number;
  /** Training time summed over every session (work lost to a kill after the last checkpoint excluded). */
  wall_seconds: number;
  /** Largest peak resident memory of the training processes (null if no session recorded it). */
  peak_rss_bytes: number | null;
  stopped_early: StoppedEarly | null;
  diagnostics: { init: DiagnosticsSummary | null; final: DiagnosticsSummary | null };
  backend: string;
  machine: MachineInfo;
  git_commit: string | null;
  /** The command that reproduces this run, and the equivalent `roaf train` command. */
  command: string;
  train_command: string;
  finished_at: string;
  /**
   * Set when `roaf repro --rediagnose` measured the diagnostics again after training: by which commit, on
   * which backend and machine, when. Everything else (figures, wall time, machine, git_commit) stays the training's.
   */
  rediagnosed?: { git_commit: string | null; backend: string; machine: MachineInfo; at: string };
}

export function toFigures(r: MetricsRecord): Figures {
  return {
    epoch: r.epoch,
    step: r.step,
    test_loss: r.test_loss,
    ...(typeof r.test_accuracy === 'number' ? { test_accuracy: r.test_accuracy } : {}),
    ...(typeof r.test_mse === 'number' ? { test_mse: r.test_mse } : {}),
    train_loss: r.train_loss,
    seconds: r.seconds,
  };
}

/** The evaluations at the end of each epoch (epoch 1, 2, ...). */
export function perEpochFigures(records: readonly MetricsRecord[]): Figures[] {
  return records.filter((r) => r.epoch > 0 && Number.isInteger(r.epoch)).map(toFigures);
}

/** The first evaluation that reaches the goal, or null. */
export function firstReaching(records: readonly MetricsRecord[], goal: Goal): Figures | null {
  const hit = records.find((r) => {
    const value = r[goal.metric];
    return typeof value === 'number' && (goal.op === '<' ? value < goal.value : value >= goal.value);
  });
  return hit ? toFigures(hit) : null;
}

/** The largest peak_rss_bytes among the records and the given session peaks (null if none is known). */
export function largestPeakRss(records: readonly MetricsRecord[], ...sessions: Array<number | null>): number | null {
  const values = [...records.map((r) => r.peak_rss_bytes), ...sessions].filter(
    (v): v is number => typeof v === 'number' && v > 0,
  );
  return values.length > 0 ? Math.max(...values) : null;
}

export function summarizeDiagnostics(d: Diagnostics): DiagnosticsSummary {
  return {
    loss: d.loss,
    log10_gradient_first_last_ratio: d.gradients.log10_first_last_ratio,
    log10_gradient_min: d.gradients.log10_min,
    log10_gradient_max: d.gradients.log10_max,
    log10_sigma_min: d.spectrum?.log10.min ?? null,
    log10_sigma_max: d.spectrum?.log10.max ?? null,
    inside_bounds: d.bounds.applicable ? (d.bounds.inside ?? null) : null,
  };
}

/** A saved diagnose.json, or null if there is none or it is incomplete (a session killed while writing it). */
export function readDiagnosticsFile(path: string): Diagnostics | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Diagnostics;
  } catch {
    return null;
  }
}

/** Writes result.json (or progress.json) whole (writeFileWhole): a reader never sees half a file. */
export function writeResult(dir: string, result: ReproResult, file = RESULT_FILE): void {
  writeFileWhole(join(dir, file), JSON.stringify(result, null, 2) + '\n');
}

/** Reads a run's result.json (or progress.json), or null if it has none. */
export function readResult(dir: string, file = RESULT_FILE): ReproResult | null {
  const path = join(dir, file);
  if (!existsSync(path)) return null;
  let parsed: ReproResult;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as ReproResult;
  } catch (error) {
    throw new UsageError(
      `${path}: not valid JSON (${(error as Error).message.split('\n')[0]}); remove it to finish the run again`,
    );
  }
  if (parsed.format !== RESULT_FORMAT)
    throw new UsageError(`${path}: not a roaf repro result (format '${String(parsed.format)}')`);
  return parsed;
}
