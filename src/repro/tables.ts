// The README's results: one block per claim between `<!-- results:<claim> -->` and
// `<!-- /results:<claim> -->`, generated from experiments/results/<claim>/*/result.json (progress.json for
// a run still training, with the step and time of its checkpoint when that is later) alone: the
// paper's figure, then a table of the runs (model, parameters, epochs, test figures, wall time, peak
// memory, the command), the machine they ran on, and the claim's main plot. `node
// scripts/results-tables.mjs` rewrites the blocks; a test fails when the README and the files disagree.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../models/config.js';
import { readCheckpointConfig, resolveCheckpointDir } from '../train/checkpoint.js';
import { describeModel } from '../report/figures.js';
import { UsageError } from '../util/errors.js';
import { CLAIMS, type ClaimDefinition } from './claims.js';
import { PROGRESS_FILE, readResult, type Figures, type ReproResult } from './result.js';

/** The report plots shown under each claim's table, when they exist. */
const MAIN_PLOTS: Record<string, string[]> = {
  'deep-mlp': ['test-accuracy', 'gradient-norms-layer'],
  'long-memory': ['test-mse'],
  psmnist: ['test-accuracy'],
  smnist: ['test-accuracy'],
  'million-layer': ['test-accuracy'],
};

export function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

export function formatBytes(bytes: number | null): string {
  if (bytes === null) return '–';
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(0)} MB`;
}

const int = (x: number) => x.toLocaleString('en-US');
const pct = (x: number) => `${(x * 100).toFixed(2)} %`;

function figureOf(f: Figures): string {
  return typeof f.test_accuracy === 'number' ? pct(f.test_accuracy) : `MSE ${f.test_mse?.toExponential(2) ?? '–'}`;
}

/** The test figures of a run, in a few words: per epoch, or the final MSE, recall, goal and early stop. */
export function describeFigures(r: ReproResult): string {
  const parts: string[] = [];
  const epochs = r.per_epoch;
  const seqLen = r.config.task.seqLen;
  if (r.task === 'copy' && typeof r.recall_accuracy === 'number') {
    parts.push(
      `${seqLen !== undefined ? `lag ${int(seqLen)}: ` : ''}recalled symbols ${pct(r.recall_accuracy)} (chance 12.50 %)`,
    );
  } else if (r.task === 'adding' && r.final) {
    parts.push(
      `${seqLen !== undefined ? `T = ${int(seqLen)}: ` : ''}${figureOf(r.final)} after ${int(r.final.step)} steps`,
    );
  } else if (epochs.length > 1 || (epochs.length === 1 && r.final?.test_accuracy !== undefined)) {
    const shown = epochs.length <= 3 ? epochs : [epochs[0]!, epochs[epochs.length - 1]!];
    parts.push(shown.map((f) => `epoch ${f.epoch}: ${figureOf(f)}`).join('; '));
  } else if (r.final) {
    parts.push(`${figureOf(r.final)} after ${int(r.final.step)} steps`);
  }
  if (r.goal) {
    const threshold = `${r.goal.op} ${r.goal.value}`;
    parts.push(
      r.goal.reached
        ? `${threshold} from step ${int(r.goal.reached.step)} (${formatSeconds(r.goal.reached.seconds)})`
        : `${r.status === 'in-progress' ? 'not yet' : 'never'} ${threshold}`,
    );
  }
  if (r.stopped_early) {
    const last = r.final ? `, last ${figureOf(r.final)}` : '';
    parts.push(
      `stopped early at step ${int(r.stopped_early.step)}: ${r.stopped_early.reason === 'chance' ? 'at chance' : 'diverged'}${last}`,
    );
  }
  return parts.join('; ') || '–';
}

function epochsCell(r: ReproResult): string {
  if (r.status === 'finished') return String(r.epochs_done);
  if (r.status === 'in-progress')
    return `${r.epochs_done} of ${r.epochs} (training: step ${int(r.steps)} of ${int(r.steps_budget)})`;
  const reached = r.final?.epoch ?? r.stopped_early?.epoch ?? 0;
  return `${Number(reached.toFixed(2))} of ${r.epochs}`;
}

/**
 * A run still training, as far as its checkpoint got: progress.json is written at the evaluations only, so
 * a checkpoint saved later (at the end of a session) holds a later step and more training time. The
 * figures stay those of the last evaluation.
 */
function withCheckpointProgress(result: ReproResult, dir: string): ReproResult {
  const checkpointDir = join(dir, 'checkpoint');
  if (result.status !== 'in-progress' || resolveCheckpointDir(checkpointDir) === null) return result;
  const saved = readCheckpointConfig(checkpointDir);
  if (saved.step <= result.steps) return result;
  return {
    ...result,
    steps: saved.step,
    epochs_done: Math.max(result.epochs_done, saved.epoch),
    // `seconds` came with checkpoint version 1 but is not range-checked on reading: a bad one is ignored
    wall_seconds: Number.isFinite(saved.seconds) ? Math.max(result.wall_seconds, saved.seconds) : result.wall_seconds,
  };
}

/**
 * The results of a claim's runs, in the table's order: result.json, or for a run still training its
 * progress.json brought up to its checkpoint's step (runs with neither left out).
 */
export function claimResults(claim: ClaimDefinition, root: string): ReproResult[] {
  return claim.runs.flatMap((run) => {
    const dir = join(root, claim.name, run.name);
    const finished = readResult(dir);
    const result = finished ?? readResult(dir, PROGRESS_FILE);
    if (!result || result.quick) return [];
    return [finished ? result : withCheckpointProgress(result, dir)];
  });
}

/** One claim's README block. `root`: the results directory on disk; `link`: the same, as the README links it. */
export function claimBlock(claim: ClaimDefinition, root: string, link = 'experiments/results'): string {
  const lines = [
    claim.paper !== null
      ? `**Paper:** ${claim.paper}. **Target:** ${claim.target}.`
      : `**Beyond the paper:** ${claim.target}.`,
    '',
  ];
  const results = claimResults(claim, root);
  if (results.length === 0) {
    lines.push(`No results yet: \`roaf repro ${claim.name}\` writes them to \`${link}/${claim.name}/\`.`);
    return lines.join('\n');
  }
  lines.push('| run | model | parameters | epochs | test figures | wall time | peak memory | command |');
  lines.push('|---|---|---:|---:|---|---:|---:|---|');
  for (const r of results) {
    const cells = [
      r.run,
      describeModel(r.config.model as ModelConfig),
      int(r.params),
      epochsCell(r),
      describeFigures(r),
      formatSeconds(r.wall_seconds),
      formatBytes(r.peak_rss_bytes),
      `\`${r.command}\``,
    ];
    lines.push(`| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  const machines = [
    ...new Set(
      results.map((r) => {
        const m = r.machine;
        return `${m.cpu} (${m.cores} cores${m.fma_peak_gflops !== null ? `, measured FMA peak ${m.fma_peak_gflops} GFLOPS per core` : ''}), Node ${m.node}`;
      }),
    ),
  ];
  const commits = [...new Set(results.map((r) => (r.git_commit ? r.git_commit.slice(0, 7) : 'unknown')))];
  lines.push('');
  lines.push(
    `Measured on ${machines.join('; ')}; roaf commit ${commits.join(', ')}. Wall time is the training time ` +
      'summed over every session that trained the run (where other work shared the cores, it includes their share). ' +
      `Curves, gradient norms and spectra of every run: \`${link}/${claim.name}/report.html\`.`,
  );
  for (const plot of MAIN_PLOTS[claim.name] ?? []) {
    if (existsSync(join(root, claim.name, 'report-plots', `${plot}.png`))) {
      lines.push('', `![${claim.name}: ${plot}](${link}/${claim.name}/report-plots/${plot}.png)`);
    }
  }
  return lines.join('\n');
}

const open = (claim: string) => `<!-- results:${claim} -->`;
const close = (claim: string) => `<!-- /results:${claim} -->`;

/** The current text between a claim's markers, or null when the README lacks them. */
function currentBlock(readme: string, claim: string): { start: number; end: number } | null {
  const start = readme.indexOf(open(claim));
  const end = readme.indexOf(close(claim));
  if (start < 0 || end < start) return null;
  return { start: start + open(claim).length, end };
}

/** The README with every claim's block regenerated from `root`. */
export function updateReadme(readme: string, root: string, link?: string): string {
  let text = readme;
  for (const claim of CLAIMS) {
    const at = currentBlock(text, claim.name);
    if (at === null)
      throw new UsageError(`README.md: the markers ${open(claim.name)} … ${close(claim.name)} are missing`);
    text = `${text.slice(0, at.start)}\n${claimBlock(claim, root, link)}\n${text.slice(at.end)}`;
  }
  return text;
}

/** Claims whose README block differs from what the files in `root` give (empty: the README is current). */
export function staleClaims(readme: string, root: string, link?: string): string[] {
  return CLAIMS.filter((claim) => {
    const at = currentBlock(readme, claim.name);
    return at === null || readme.slice(at.start, at.end) !== `\n${claimBlock(claim, root, link)}\n`;
  }).map((c) => c.name);
}
