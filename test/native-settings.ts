// Test support for suites that run the native kernels under every setting: each instruction set this CPU
// runs, on one and two threads, with the parallel threshold at zero (so small test shapes take the threaded
// code paths), and the addon's settings restored when the suite ends.

import { after } from 'node:test';

import {
  nativeInfo,
  setNativeIsa,
  setNativeParallelThreshold,
  setNativeThreads,
  type NativeIsa,
} from '../src/backend/native.js';

/**
 * Sets the native parallel threshold to zero for the enclosing suite and restores the instruction set, the
 * thread count and the threshold after it. Does nothing where the addon is not built.
 */
export function nativeSettingsForSuite(): void {
  const info = nativeInfo();
  if (info === null) return;
  const oldThreshold = setNativeParallelThreshold(0);
  after(() => {
    setNativeIsa(info.isa);
    setNativeThreads(info.threads);
    setNativeParallelThreshold(oldThreshold);
  });
}

export interface NativeVariant {
  isa: NativeIsa;
  threads: number;
  /** e.g. "avx2, 2 threads" */
  label: string;
}

/**
 * Every instruction set this CPU runs on 1 and 2 threads (avx512 alone where the addon is not built, so that
 * skipped tests still have names).
 */
export function nativeVariants(): NativeVariant[] {
  const available = nativeInfo()?.available ?? [];
  return (available.length > 0 ? available : (['avx512'] as NativeIsa[])).flatMap((isa) =>
    [1, 2].map((threads) => ({ isa, threads, label: `${isa}, ${threads} thread${threads > 1 ? 's' : ''}` })),
  );
}

/** Switches the native backend to a variant (threshold zero). */
export function useNativeVariant({ isa, threads }: NativeVariant): void {
  setNativeIsa(isa);
  setNativeThreads(threads);
  setNativeParallelThreshold(0);
}
