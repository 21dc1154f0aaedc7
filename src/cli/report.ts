// `roaf report RUN_DIR... [--out FILE]`: one self-contained HTML page comparing runs side by side, with
// the plots also written as SVG and PNG files next to it.

import { mkdirSync } from 'node:fs';
import { dirname, join, parse } from 'node:path';
import type { Command } from 'commander';
import { buildReport } from '../report/html.js';
import { readRuns } from '../report/runs.js';
import { writeFileWhole } from '../util/paths.js';

interface ReportCliOptions {
  out: string;
  title: string;
  quiet: boolean;
}

async function reportCommand(dirs: string[], options: ReportCliOptions): Promise<void> {
  const runs = readRuns(dirs);
  const { dir, name } = parse(options.out);
  const figuresDir = join(dir, `${name}-plots`);
  const report = await buildReport(runs, { title: options.title, figuresDir, generated: new Date().toISOString() });
  mkdirSync(dirname(options.out) || '.', { recursive: true });
  writeFileWhole(options.out, report.html);
  for (const warning of report.warnings) process.stderr.write(`roaf: warning: ${warning}\n`);
  if (!options.quiet) {
    process.stdout.write(
      `report: ${options.out} (${runs.length} run${runs.length === 1 ? '' : 's'}, ${report.figures.length} plots; ` +
        `SVG and PNG files in ${figuresDir})\n`,
    );
  }
}

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'one self-contained HTML report comparing runs: configuration, final figures, learning curves, gradient norms, spectra',
    )
    .argument(
      '<run-dirs...>',
      'run directories (roaf train --out; diagnostics from roaf diagnose --out RUN/diagnostics are included)',
    )
    .option('--out <file>', 'the HTML file to write (plots go to <name>-plots/ beside it)', 'report.html')
    .option('--title <text>', 'page title', 'roaf report')
    .option('--quiet', 'print nothing but warnings', false)
    .action(reportCommand);
}
