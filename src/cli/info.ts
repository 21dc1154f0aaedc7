// `roaf info`: which backend roaf would use here, its instruction set and thread count.

import type { Command } from 'commander';
import { loadBackend } from '../backend/index.js';
import { nativeInfo, nativeLoadError } from '../backend/native.js';
import { printJsonResult } from './options.js';

export function registerInfoCommand(program: Command): void {
  program.command('info')
    .description('print the backend, instruction set and thread count roaf uses on this machine')
    .option('--json', 'print one JSON object', false)
    .action((options: { json: boolean }) => {
      const backend = loadBackend('auto', { quiet: true });
      const native = nativeInfo();
      const info = {
        backend: backend?.name ?? 'reference',
        description: backend?.describe() ?? '',
        isa: native?.isa ?? null,
        threads: native?.threads ?? 1,
        native_error: native ? null : nativeLoadError(),
        node: process.version,
      };
      if (options.json) {
        printJsonResult(info);
        return;
      }
      process.stdout.write(`backend: ${info.description}\n`);
      process.stdout.write(`instruction set: ${info.isa ?? 'n/a (reference backend)'}\n`);
      process.stdout.write(`threads: ${info.threads}\n`);
      if (info.native_error) process.stdout.write(`native backend unavailable: ${info.native_error}\n`);
    });
}
