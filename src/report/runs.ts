// Reading run directories for the report: the metrics log, the checkpoint's configuration (or, without a
// checkpoint, the configuration recorded in a `roaf repro` run's result.json) and any diagnostics saved
// by `roaf diagnose --out RUN/diagnostics` (or a diagnose output directory itself).
//
// What cannot be read is either an error (nothing to report: no such directory, neither metrics.jsonl
// nor diagnose.json) or a warning that names what was skipped (a truncated last line of a run killed
// mid-write, an unreadable checkpoint config); the report then shows whatever is readable. Every file is
// read only if it is a regular file of a sane size (a FIFO or /dev/zero would hang the report), and every
// record is checked by type against schema.ts before anything reaches the page: a value of the wrong type
// skips its record or file with a warning naming the file and the field.

import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Diagnostics } from '../diagnostics/diagnose.js';
import { readCheckpointConfig, resolveCheckpointDir, type CheckpointConfig } from '../train/checkpoint.js';
import { readMetrics, type MetricsRecord } from '../train/metrics.js';
import { UsageError } from '../util/errors.js';
import { checkRegularFile, MAX_TEXT_FILE_BYTES, readTextFile } from '../util/paths.js';
import * as schema from './schema.js';

/** The warning for a file (or record) skipped because it is not what it should be. */
function problem(error: unknown): string {
  return (error as Error).message.split('\n')[0] ?? String(error);
}

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

/** What `roaf repro` writes beside a finished run's metrics: its configuration, kept when the checkpoint is gone. */
const RESULT_FILE = 'result.json';

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
    checkRegularFile(metricsPath, 'metrics log', MAX_TEXT_FILE_BYTES);
    const read = readMetrics(metricsPath);
    records = read.records.flatMap((r, i) => {
      try {
        return [schema.metricsRecord(r, '')];
      } catch (error) {
        warnings.push(`${metricsPath}: skipped record ${i + 1}: ${problem(error)}`);
        return [];
      }
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
  const resolved = resolveCheckpointDir(checkpointDir);
  const resultPath = join(dir, RESULT_FILE);
  if (resolved !== null) {
    const configPath = join(resolved, 'config.json');
    try {
      checkRegularFile(configPath, 'checkpoint config', MAX_TEXT_FILE_BYTES);
      config = schema.checkpointConfig(
        readCheckpointConfig(checkpointDir, { checkFields: false }),
        '',
      ) as unknown as CheckpointConfig;
    } catch (error) {
      warnings.push(`${configPath}: configuration skipped: ${problem(error)}`);
    }
  } else if (existsSync(resultPath)) {
    // a finished `roaf repro` run keeps its configuration in result.json, which outlives the checkpoint
    try {
      checkRegularFile(resultPath, 'repro result', MAX_TEXT_FILE_BYTES);
      const parsed: unknown = JSON.parse(readTextFile(resultPath, 'repro result'));
      const recorded =
        typeof parsed === 'object' && parsed !== null ? (parsed as { config?: unknown }).config : undefined;
      config = schema.checkpointConfig(recorded, 'config') as unknown as CheckpointConfig;
    } catch (error) {
      warnings.push(`${resultPath}: configuration skipped: ${problem(error)}`);
    }
  } else if (existsSync(metricsPath)) {
    warnings.push(`${checkpointDir}: no checkpoint (nor ${RESULT_FILE}), so no configuration to show`);
  }

  let diagnostics: Diagnostics | null = null;
  if (diagnosticsPath !== null) {
    try {
      const parsed: unknown = JSON.parse(readTextFile(diagnosticsPath, 'diagnostics'));
      diagnostics = schema.diagnostics(parsed, '') as unknown as Diagnostics;
    } catch (error) {
      warnings.push(`${diagnosticsPath}: skipped (not the output of roaf diagnose): ${problem(error)}`);
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
