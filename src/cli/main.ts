#!/usr/bin/env node
// The `roaf` command: one subcommand per job (train, eval, info, ...). A user's mistake (UsageError or
// a commander parse error) prints one line and exits 2, with no stack trace; so does a system error
// about a path the user gave (a missing file, a permission, a full disk: src/util/fs-errors.ts); a run
// that diverged exits 3 with one line; an interrupted run exits 130 (SIGINT) or 143 (SIGTERM) after
// saving. Anything else is a bug and keeps its stack (exit 1).

import { Command, CommanderError } from 'commander';
import { DivergedError } from '../train/trainer.js';
import { InterruptedError, UsageError } from '../util/errors.js';
import { systemErrorMessage } from '../util/fs-errors.js';
import { registerBenchCommand } from './bench.js';
import { registerDiagnoseCommand } from './diagnose.js';
import { registerExportCommand } from './export.js';
import { registerInfoCommand } from './info.js';
import { registerReportCommand } from './report.js';
import { registerReproCommand } from './repro.js';
import { registerTrainCommands } from './train.js';

function buildProgram(): Command {
  const program = new Command();
  program
    .name('roaf')
    .description('Random Orthogonal Additive Filters: train extremely deep and extremely long networks')
    .exitOverride()
    .configureOutput({ outputError: (message, write) => write(message.trim().split('\n')[0] + '\n') });
  registerTrainCommands(program);
  registerInfoCommand(program);
  registerBenchCommand(program);
  registerDiagnoseCommand(program);
  registerReportCommand(program);
  registerReproCommand(program);
  registerExportCommand(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // help and version exit through here too, with exit code 0
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`roaf: ${error.message}\n`);
      return 2;
    }
    if (error instanceof DivergedError) {
      process.stderr.write(`roaf: ${error.message}\n`);
      return DivergedError.EXIT_CODE;
    }
    if (error instanceof InterruptedError) {
      process.stderr.write(`roaf: ${error.message}\n`);
      return error.exitCode;
    }
    const message = systemErrorMessage(error);
    if (message !== null) {
      process.stderr.write(`roaf: ${message}\n`);
      return 2;
    }
    throw error;
  }
}

process.exitCode = await main(process.argv);
