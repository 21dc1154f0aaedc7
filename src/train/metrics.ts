// The metrics log: `metrics.jsonl` in the run directory, one JSON object per evaluation, snake_case keys.
// Appended line by line (a killed run loses at most the line being written). On resume, records past
// the checkpoint's step are dropped, so the log describes exactly the run that continues.

import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { writeFileWhole } from '../util/paths.js';

export interface MetricsRecord {
  /** Epochs completed, fractional for evaluations inside an epoch. */
  epoch: number;
  step: number;
  /** Mean training loss since the previous evaluation (null if no step was taken since). */
  train_loss: number | null;
  test_loss: number;
  test_accuracy?: number;
  test_mse?: number;
  /** Wall-clock seconds of the run so far. */
  seconds: number;
  /** Peak resident memory of the training process so far, in bytes (absent in logs of older runs). */
  peak_rss_bytes?: number;
  [extra: string]: unknown;
}

/** Parses a metrics file; a truncated or corrupt line is skipped and reported in `skipped`. */
export function readMetrics(path: string): { records: MetricsRecord[]; skipped: number[] } {
  const records: MetricsRecord[] = [];
  const skipped: number[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      records.push(JSON.parse(line) as MetricsRecord);
    } catch {
      skipped.push(i + 1);
    }
  });
  return { records, skipped };
}

export class MetricsLog {
  /** `resumeStep`: records with a larger step are dropped (they came after the checkpoint resumed from). */
  constructor(
    readonly path: string,
    resumeStep: number,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    if (resumeStep === 0 || !existsSync(path)) {
      writeFileWhole(path, '');
      return;
    }
    // Whole, not in place: a kill while the records after the checkpoint are dropped must not lose the others.
    const kept = readMetrics(path).records.filter((r) => r.step <= resumeStep);
    writeFileWhole(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  append(record: MetricsRecord): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}
