// `roaf repro <claim>`: one command per claim of the paper. Trains the claim's runs (continuing any
// unfinished one from its last checkpoint, skipping finished ones), writes each run's result.json,
// curves and diagnostics, and the claim's report.html. See src/repro/ and docs/reproduce.md.

import type { Command } from 'commander';
import { BACKEND_NAMES } from '../backend/index.js';
import { CLAIM_NAMES } from '../repro/claims.js';
import { RunEnded, planClaim, reproduceClaim, type ReproOptions } from '../repro/runs.js';
import { describeFigures, formatBytes, formatSeconds } from '../repro/tables.js';
import { checkChoice, checkRange } from '../util/errors.js';
import { numberOption, printJsonResult } from './options.js';

interface ReproCliOptions {
  quick: boolean;
  only?: string;
  threads?: number;
  backend: string;
  out?: string;
  dryRun: boolean;
  rediagnose: boolean;
  json: boolean;
  quiet: boolean;
}

function reproOptions(claim: string, options: ReproCliOptions): ReproOptions {
  return {
    claim: checkChoice('claim', claim, CLAIM_NAMES),
    quick: options.quick,
    only: options.only
      ?.split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    threads:
      options.threads === undefined ? undefined : checkRange('--threads', options.threads, 1, 256, { integer: true }),
    backend: checkChoice('--backend', options.backend, BACKEND_NAMES),
    out: options.out,
    quiet: options.quiet,
    rediagnose: options.rediagnose,
  };
}

/** --dry-run: each selected run's state and the `roaf train` command it amounts to. */
function printPlan(options: ReproOptions, json: boolean): void {
  const plan = planClaim(options);
  const runs = plan.runs.map((r) => ({
    run: r.definition.name,
    dir: r.dir,
    state: r.state,
    ...(r.checkpointStep !== undefined ? { checkpoint_step: r.checkpointStep } : {}),
    train_command: ['roaf train', ...r.trainArgs, '--out', r.dir].join(' '),
  }));
  if (json) {
    printJsonResult({ claim: plan.claim.name, quick: plan.quick, root: plan.root, runs });
    return;
  }
  for (const r of runs) {
    const state = r.state === 'unfinished' ? `unfinished (checkpoint at step ${r.checkpoint_step})` : r.state;
    process.stdout.write(`${plan.claim.name}/${r.run}: ${state}\n  ${r.train_command}\n`);
  }
}

async function reproCommand(claim: string, cli: ReproCliOptions): Promise<void> {
  const options = reproOptions(claim, cli);
  if (cli.dryRun) {
    printPlan(options, cli.json);
    return;
  }
  let outcome;
  try {
    outcome = await reproduceClaim(options);
  } catch (error) {
    if (!(error instanceof RunEnded)) throw error;
    process.stderr.write(`roaf repro: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  for (const { run, action, result } of outcome.runs) {
    const status = result.status === 'stopped-early' ? 'stopped early' : 'finished';
    process.stdout.write(
      `${outcome.claim}/${run}: ${status}${action === 'skipped' || action === 'rediagnosed' ? ' (in an earlier session)' : ''}` +
        `${action === 'rediagnosed' ? ', diagnosed again' : ''}: ` +
        `${describeFigures(result)}; ${formatSeconds(result.wall_seconds)}, ` +
        `peak ${formatBytes(result.peak_rss_bytes)} (${result.params.toLocaleString('en-US')} parameters)\n`,
    );
  }
  if (outcome.report) process.stdout.write(`report: ${outcome.report}\n`);
  if (cli.json) printJsonResult(outcome as unknown as Record<string, unknown>);
}

export function registerReproCommand(program: Command): void {
  program
    .command('repro')
    .description(
      'reproduce a claim of the paper: train its runs (continuing unfinished ones), with results, plots and a report',
    )
    .argument('<claim>', `the claim: ${CLAIM_NAMES.join(', ')}`)
    .option('--quick', 'a scaled-down version of every run (about a minute), under runs/repro-quick', false)
    .option('--only <runs>', 'train only these runs of the claim (comma-separated names)')
    .addOption(numberOption('--threads <k>', 'native backend threads (default: all cores)'))
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option('--out <dir>', 'results root (default experiments/results; with --quick runs/repro-quick)')
    .option('--dry-run', "print each run's state and its roaf train command; train nothing", false)
    .option(
      '--rediagnose',
      'train nothing: diagnose each finished run again from its checkpoint (gradient norms and spectrum, at init and trained)',
      false,
    )
    .option('--json', "end stdout with one JSON object: every run's result", false)
    .option('--quiet', 'no progress output', false)
    .action(reproCommand);
}
