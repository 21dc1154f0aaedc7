// What a result was measured on, for result.json: the CPU, its cores and measured FMA peak (what the
// timings scale by on another machine), total memory, Node's version, and the git commit of the roaf
// that ran (null outside a git checkout).

import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/backend.js';
import { nativeFmaPeak, nativeInfo } from '../backend/native.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  /** One core's float32 FMA peak, measured (roaf info --peak); null on the reference backend. */
  fma_peak_gflops: number | null;
  /** The native kernels' instruction set; null on the reference backend. */
  isa: string | null;
  total_memory_bytes: number;
  node: string;
  platform: string;
}

/**
 * The best of five short FMA-peak measurements: the runs write results while other work shares the cores,
 * and contention only ever lowers the figure (a median of three once recorded 133 GFLOPS on a 219 GFLOPS core).
 */
function bestFmaPeak(): number {
  return Math.max(...[0, 1, 2, 3, 4].map(() => nativeFmaPeak(0.05)));
}

export function machineInfo(backend: Backend): MachineInfo {
  const list = cpus();
  const native = backend.name === 'native' ? nativeInfo() : null;
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    fma_peak_gflops: native ? Number((bestFmaPeak() / 1e9).toFixed(1)) : null,
    isa: native?.isa ?? null,
    total_memory_bytes: totalmem(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/**
 * The machine of a process that trains for hours and writes its result many times: the FMA peak is measured
 * again when asked, at most once every `everyMs`, and the highest measurement is kept, since other work on
 * the cores only ever lowers it (a run whose first evaluation met a test suite on the other core recorded
 * 80.1 GFLOPS on a 114.8 GFLOPS core).
 */
export class MachineRecord {
  private best: MachineInfo | null = null;
  private measuredAt = -Infinity;

  constructor(
    private readonly measure: () => MachineInfo,
    private readonly everyMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The machine, with the best FMA peak measured so far (measured now if the last is older than everyMs). */
  current(): MachineInfo {
    const time = this.now();
    if (this.best !== null && time - this.measuredAt < this.everyMs) return this.best;
    const measured = this.measure();
    this.measuredAt = time;
    if (this.best === null || (measured.fma_peak_gflops ?? 0) > (this.best.fma_peak_gflops ?? 0)) this.best = measured;
    return this.best;
  }
}

/** The directory of the roaf package (this file is dist/src/repro/machine.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** `git rev-parse HEAD` of the roaf checkout that runs, or null (no git, not a checkout). */
export function gitCommit(dir = PACKAGE_ROOT): string | null {
  const result = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: dir, encoding: 'utf8' });
  const commit = result.status === 0 ? result.stdout.trim() : '';
  return /^[0-9a-f]{40}$/.test(commit) ? commit : null;
}
