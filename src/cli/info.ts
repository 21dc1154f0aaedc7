// `roaf info`: which backend roaf would use here, its instruction set and thread count, and with --peak the
// arithmetic peak of one core (what no single-thread product can exceed) and of all threads at once (what no
// parallel product can exceed: less than threads x one core's where virtual cores share hardware).

import type { Command } from 'commander';
import { loadBackend } from '../backend/index.js';
import { nativeFmaPeak, nativeFmaPeakAllThreads, nativeInfo, nativeLoadError } from '../backend/native.js';
import { printJsonResult } from './options.js';

export function registerInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print the backend, instruction set and thread count roaf uses on this machine')
    .option('--json', 'print one JSON object', false)
    .option(
      '--peak',
      'also measure the float32 FMA peak of one core and of all threads at once (about 2 s; native only)',
      false,
    )
    .action((options: { json: boolean; peak: boolean }) => {
      const backend = loadBackend('auto', { quiet: true });
      const native = nativeInfo();
      const info = {
        backend: backend?.name ?? 'reference',
        description: backend?.describe() ?? '',
        isa: native?.isa ?? null,
        threads: native?.threads ?? 1,
        // --precision bf16 runs on the native backend only where its products run vdpbf16ps (docs/precision.md)
        bf16: native?.bf16 ?? false,
        native_error: native ? null : nativeLoadError(),
        node: process.version,
        fma_peak_gflops: options.peak && native ? nativeFmaPeak() / 1e9 : null,
        fma_peak_all_threads_gflops: options.peak && native ? nativeFmaPeakAllThreads() / 1e9 : null,
      };
      if (options.json) {
        printJsonResult(info);
        return;
      }
      process.stdout.write(`backend: ${info.description}\n`);
      process.stdout.write(`instruction set: ${info.isa ?? 'n/a (reference backend)'}\n`);
      process.stdout.write(`threads: ${info.threads}\n`);
      process.stdout.write(
        `bf16 products: ${info.bf16 ? 'AVX512_BF16 (vdpbf16ps)' : 'no AVX512_BF16 here (--precision bf16 is refused on native)'}\n`,
      );
      if (info.fma_peak_gflops !== null) {
        process.stdout.write(`FMA peak: ${info.fma_peak_gflops.toFixed(1)} GFLOPS per core (float32, ${info.isa})\n`);
        const all = info.fma_peak_all_threads_gflops ?? 0;
        process.stdout.write(
          `FMA peak, ${info.threads} threads at once: ${all.toFixed(1)} GFLOPS ` +
            `(${(all / info.fma_peak_gflops).toFixed(2)} x one core)\n`,
        );
      } else if (options.peak) {
        process.stdout.write('FMA peak: n/a (the reference backend has no kernels to measure it with)\n');
      }
      if (info.native_error) process.stdout.write(`native backend unavailable: ${info.native_error}\n`);
    });
}
