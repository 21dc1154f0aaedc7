// Reading run directories for the report: the metrics log, the checkpoint's configuration and any
// diagnostics saved by `roaf diagnose --out RUN/diagnostics` (or a diagnose output directory itself).
//
// What cannot be read is either an error (nothing to report: no such directory, neither metrics.jsonl
// nor diagnose.json) or a warning that names what was skipped (a truncated last line of a run killed
// mid-write, an unreadable checkpoint config); the report then shows whatever is readable.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Diagnostics } from '../diagnostics/diagnose.js';
import { readCheckpointConfig, resolveCheckpointDir, type CheckpointConfig } from '../train/checkpoint.js';
import { readMetrics, type MetricsRecord } from '../train/metrics.js';
import { UsageError } from '../util/errors.js';

export interface RunData {
  /** The directory as given. */
  dir: string;
  /** A short unique label for plots and tables. */
  label: string;
  records: MetricsRecord[];
  config: CheckpointConfig | null;
  diagnostics: Diagnostics | null;
  /** Everything skipped or odd, one line each, naming the file. */
  warnings: string[];
}

/** Where diagnostics of a run may be: RUN/diagnostics/diagnose.json, or RUN/diagnose.json. */
const DIAGNOSTICS_PATHS = [join('diagnostics', 'diagnose.json'), 'diagnose.json'];

export function readRun(dir: string): RunData {
  if (!existsSync(dir)) throw new UsageError(`${dir}: no such run directory`);
  if (!statSync(dir).isDirectory())
    throw new UsageError(`${dir}: not a directory (give a run directory written by roaf train --out)`);
  const warnings: string[] = [];
  const metricsPath = join(dir, 'metrics.jsonl');
  const diagnosticsPath = DIAGNOSTICS_PATHS.map((p) => join(dir, p)).find((p) => existsSync(p)) ?? null;
  if (!existsSync(metricsPath) && diagnosticsPath === null) {
    throw new UsageError(
      `${dir}: no metrics.jsonl (nor diagnose.json) in this directory; is it a run directory written by roaf train --out?`,
    );
  }

  let records: MetricsRecord[] = [];
  if (existsSync(metricsPath)) {
    const read = readMetrics(metricsPath);
    records = read.records.filter((r, i) => {
      const valid = typeof r === 'object' && r !== null && typeof r.step === 'number' && typeof r.epoch === 'number';
      if (!valid)
        warnings.push(`${metricsPath}: skipped record ${i + 1}: not a metrics record (no numeric step and epoch)`);
      return valid;
    });
    if (read.skipped.length > 0) {
      const lines = read.skipped.join(', ');
      warnings.push(
        `${metricsPath}: skipped line${read.skipped.length > 1 ? 's' : ''} ${lines}: truncated or not JSON (a run killed mid-write); reporting the ${records.length} readable record${records.length === 1 ? '' : 's'}`,
      );
    }
    if (records.length === 0) warnings.push(`${metricsPath}: no evaluation recorded yet`);
  }

  let config: CheckpointConfig | null = null;
  const checkpointDir = join(dir, 'checkpoint');
  if (resolveCheckpointDir(checkpointDir) !== null) {
    try {
      config = readCheckpointConfig(checkpointDir);
    } catch (error) {
      warnings.push(`${checkpointDir}: configuration skipped: ${(error as Error).message}`);
    }
  } else if (existsSync(metricsPath)) {
    warnings.push(`${checkpointDir}: no checkpoint, so no configuration to show`);
  }

  let diagnostics: Diagnostics | null = null;
  if (diagnosticsPath !== null) {
    try {
      const parsed = JSON.parse(readFileSync(diagnosticsPath, 'utf8')) as Diagnostics;
      if (
        typeof parsed !== 'object' ||
        parsed === null ||
        typeof parsed.gradients !== 'object' ||
        typeof parsed.config !== 'object'
      ) {
        throw new Error('not the output of roaf diagnose');
      }
      diagnostics = parsed;
    } catch (error) {
      warnings.push(`${diagnosticsPath}: skipped: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return { dir, label: basename(resolve(dir)), records, config, diagnostics, warnings };
}

/** Reads every run; labels are made unique (a parent directory is prefixed, then a number). */
export function readRuns(dirs: string[]): RunData[] {
  if (dirs.length === 0) throw new UsageError('report needs at least one run directory');
  const runs = dirs.map(readRun);
  const seen = new Map<string, number>();
  for (const run of runs) {
    if (runs.filter((r) => r.label === run.label).length > 1) {
      run.label = `${basename(resolve(run.dir, '..'))}/${run.label}`;
    }
    const count = seen.get(run.label) ?? 0;
    seen.set(run.label, count + 1);
    if (count > 0) run.label = `${run.label} (${count + 1})`;
  }
  return runs;
}
