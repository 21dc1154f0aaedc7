// How the benchmarks run their PyTorch peers (bench/peers/*.py): the Debian packages that provide PyTorch, and
// the environment that gives it its fastest kernels on this CPU. Shared by `npm run bench` (run.ts) and the
// spectrum benchmark (spectrum.ts).

import { readFileSync } from 'node:fs';

/** The command that installs the PyTorch peers' packages (Debian's). */
export const TORCH_INSTALL = 'apt-get update && apt-get install -y python3-torch libopenblas0-pthread';

/** The environment for a PyTorch peer: this process's, without what would slow PyTorch down. */
export function torchEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // Set in this environment for other tools, they force OpenBLAS onto slower kernels than the CPU has.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  // PyTorch 1.13 picks its AVX2 kernels on AVX-512 CPUs unless told; give it its fastest.
  if (env.ATEN_CPU_CAPABILITY === undefined && cpuHasAvx512()) env.ATEN_CPU_CAPABILITY = 'avx512';
  return env;
}

function cpuHasAvx512(): boolean {
  try {
    return /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}
