// Benchmark of the Jacobian product spectrum's step (productSpectrumPush, what `roaf diagnose` spends its time
// on for a recurrent model): milliseconds per factor of size n on the native backend (1 and 2 threads), the
// reference (float64 TypeScript, the default before the kernel) and the PyTorch peer (bench/peers/
// torch_spectrum.py: the same computation in float64 with LAPACK's QR, in two formulations, the faster being
// the peer), on the same random factors, in one run. Each line gives the median, the GFLOPS (11/3 n³ flops a
// factor: the frame 2 n³, the QR 4/3 n³, the triangular product 1/3 n³) and their share of this CPU's float64
// peak on the cores it ran on (one core's is half its measured float32 FMA peak: a 512-bit FMA holds 8 doubles or
// 16 floats), and the ratio of the peer's time to roaf's. Before timing, roaf's log singular values are checked against the reference's, and the
// peer's against roaf's (a formulation that disagrees is reported and not used).
//
//   npm run build && node dist/bench/spectrum.js [--sizes 256,512,1024] [--factors 6] [--repeats 3] [--json]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import {
  loadNativeBackend,
  nativeFmaPeak,
  nativeInfo,
  nativeLoadError,
  setNativeThreads,
} from '../src/backend/native.js';
import { ProductSpectrum, type ProductSpectrumKernel } from '../src/diagnostics/product-spectrum.js';
import { checkRange } from '../src/util/errors.js';
import { Random } from '../src/util/random.js';
import { TORCH_INSTALL, torchEnv } from './torch-env.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TORCH_SCRIPT = join(ROOT, 'bench', 'peers', 'torch_spectrum.py');
/** The peer's log σ must equal roaf's to this (relative to max(1, |log σ|)); roaf's the reference's too. */
const AGREEMENT = 1e-8;

const USAGE = `usage: node dist/bench/spectrum.js [options]
  --sizes LIST       factor sizes n (default 256,512,1024)
  --factors F        factors per chain, the first untimed (default 6)
  --repeats R        chains timed per engine and thread count (default 3)
  --reference-factors F  timed factors of the reference, one chain (default 2; 0 skips it)
  --python PATH      the Python with torch (default /usr/bin/python3, Debian's python3-torch)
  --no-torch         skip the PyTorch peer
  --json             end with one JSON object of every figure
  --help             this text
`;

function usageError(message: string): never {
  process.stderr.write(`spectrum benchmark: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseOptions() {
  return parseArgs({
    options: {
      sizes: { type: 'string', default: '256,512,1024' },
      factors: { type: 'string', default: '6' },
      repeats: { type: 'string', default: '3' },
      'reference-factors': { type: 'string', default: '2' },
      python: { type: 'string', default: '/usr/bin/python3' },
      'no-torch': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }).values;
}
let values: ReturnType<typeof parseOptions>;
try {
  values = parseOptions();
} catch (error) {
  usageError((error as Error).message);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
let sizes: number[] = [],
  factorCount = 0,
  repeats = 0,
  referenceFactors = 0;
try {
  sizes = values.sizes.split(',').map((text) => checkRange('--sizes', Number(text), 1, 4096, { integer: true }));
  factorCount = checkRange('--factors', Number(values.factors), 2, 1000, { integer: true });
  repeats = checkRange('--repeats', Number(values.repeats), 1, 1000, { integer: true });
  referenceFactors = checkRange('--reference-factors', Number(values['reference-factors']), 0, factorCount - 1, {
    integer: true,
  });
} catch (error) {
  usageError((error as Error).message);
}

const native = loadNativeBackend();
if (native === null) {
  console.log(`spectrum benchmark skipped: native backend not built (${nativeLoadError() ?? 'unknown reason'})`);
  process.exit(0);
}
const info = nativeInfo()!;
const float64Peak = nativeFmaPeak() / 2 / 1e9; // GFLOPS
const say = (line: string) => {
  if (!values.json) console.log(line);
  else process.stderr.write(`${line}\n`);
};
say(`CPU: ${info.isa}, float64 FMA peak ${float64Peak.toFixed(1)} GFLOPS on one thread (half the float32 peak)`);

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Random factors like a recurrent model's step Jacobians: Gaussian entries of variance 1/n, plus I/2. */
function makeFactors(n: number): Float64Array[] {
  const rng = new Random(n);
  return Array.from({ length: factorCount }, () => {
    const J = new Float64Array(n * n);
    for (let i = 0; i < J.length; i++) J[i] = rng.normal() / Math.sqrt(n);
    for (let i = 0; i < n; i++) J[i * n + i]! += 0.5;
    return J;
  });
}

interface ChainTiming {
  /** ms of each timed factor. */
  samples: number[];
  logs: Float64Array;
}

/** Pushes `count` of the factors (copies: a push consumes its factor), timing every push after the first. */
function timeChain(n: number, factors: Float64Array[], count: number, kernel?: ProductSpectrumKernel): ChainTiming {
  const product = new ProductSpectrum(n, kernel);
  const samples: number[] = [];
  for (let l = 0; l < count; l++) {
    const J = factors[l]!.slice();
    const start = performance.now();
    product.push(J);
    if (l > 0) samples.push(performance.now() - start);
  }
  return { samples, logs: product.logSingularValues() };
}

function relativeGap(x: number, y: number): number {
  return Math.abs(x - y) / Math.max(1, Math.abs(y));
}

interface PeerLine {
  formulation: string;
  threads: number;
  ms_per_factor: number;
  log_sigma_max: number;
  log_sigma_min: number;
}

/** The PyTorch peer's lines for these factors, or why it was skipped. */
function torchPeer(n: number, factors: Float64Array[]): PeerLine[] | { skipped: string } {
  if (values['no-torch']) return { skipped: '--no-torch' };
  const dir = mkdtempSync(join(tmpdir(), 'roaf-spectrum-bench-'));
  try {
    const file = join(dir, 'factors.f64');
    const all = new Float64Array(factors.length * n * n);
    factors.forEach((J, l) => all.set(J, l * n * n));
    writeFileSync(file, new Uint8Array(all.buffer));
    const args = [TORCH_SCRIPT, '--factors', file, '--n', String(n), '--count', String(factors.length)];
    const result = spawnSync(values.python, [...args, '--repeats', String(repeats), '--threads', '1,2'], {
      encoding: 'utf8',
      env: torchEnv(),
      maxBuffer: 64 * 2 ** 20,
    });
    if (result.status !== 0) {
      const why = result.error?.message ?? result.stderr.trim().split('\n').at(-1);
      return { skipped: `PyTorch peer failed or is not installed (${why}); install it with: ${TORCH_INSTALL}` };
    }
    return result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as PeerLine);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const gflops = (n: number, ms: number) => ((11 / 3) * n ** 3) / (ms * 1e6);
/** ms, GFLOPS and their share of the peak of the cores it ran on (`threads` x one core's). */
const describe = (n: number, ms: number, threads = 1) =>
  `${ms.toFixed(1)} ms (${gflops(n, ms).toFixed(1)} GFLOPS, ${((100 * gflops(n, ms)) / (threads * float64Peak)).toFixed(0)} % of ${threads === 1 ? "one core's" : `${threads} cores'`} peak)`;

const report: Record<string, unknown>[] = [];
let failed = false;
for (const n of sizes) {
  const factors = makeFactors(n);
  const roaf: Record<number, number> = {};
  let roafLogs: Float64Array | null = null;
  for (const threads of [1, 2]) {
    setNativeThreads(threads);
    const samples: number[] = [];
    timeChain(n, factors, 2, (a) => native.productSpectrumPush(a)); // warm-up
    for (let r = 0; r < repeats; r++) {
      const chain = timeChain(n, factors, factorCount, (a) => native.productSpectrumPush(a));
      samples.push(...chain.samples);
      roafLogs = chain.logs;
    }
    roaf[threads] = median(samples);
  }
  const best = Math.min(roaf[1]!, roaf[2]!);
  const line: Record<string, unknown> = { n, roaf_ms_1_thread: roaf[1], roaf_ms_2_threads: roaf[2] };
  let text = `n = ${n}: roaf 1 thread ${describe(n, roaf[1]!)}, 2 threads ${describe(n, roaf[2]!, 2)}`;

  if (referenceFactors > 0) {
    const reference = timeChain(n, factors, referenceFactors + 1);
    const check = timeChain(n, factors, referenceFactors + 1, (a) => native.productSpectrumPush(a));
    const gap = Math.max(
      relativeGap(check.logs[0]!, reference.logs[0]!),
      relativeGap(check.logs[n - 1]!, reference.logs[n - 1]!),
    );
    if (!(gap <= AGREEMENT)) {
      say(`  FAILED: roaf's log σ differ from the reference's by ${gap.toExponential(2)}`);
      failed = true;
    }
    const ms = median(reference.samples);
    line.reference_ms = ms;
    text += `; reference ${describe(n, ms)}, ${(ms / best).toFixed(1)}x roaf's time`;
  }

  const peer = torchPeer(n, factors);
  if ('skipped' in peer) {
    line.pytorch = peer;
    text += `; PyTorch skipped: ${peer.skipped}`;
  } else {
    const logs = roafLogs!;
    const agreeing = peer.filter((p) => {
      const gap = Math.max(relativeGap(p.log_sigma_max, logs[0]!), relativeGap(p.log_sigma_min, logs[n - 1]!));
      if (!(gap <= AGREEMENT)) say(`  PyTorch ${p.formulation} (${p.threads} thr) disagrees with roaf by ${gap}`);
      return gap <= AGREEMENT;
    });
    line.pytorch = peer;
    if (agreeing.length === 0) text += '; PyTorch: no formulation agreed with roaf';
    else {
      const fastest = agreeing.reduce((a, b) => (b.ms_per_factor < a.ms_per_factor ? b : a));
      line.pytorch_best = fastest;
      line.ratio_pytorch_over_roaf = fastest.ms_per_factor / best;
      text +=
        `; PyTorch ${fastest.formulation} ${fastest.threads} thr ${describe(n, fastest.ms_per_factor, fastest.threads)}` +
        ` (${agreeing.map((p) => `${p.formulation} ${p.threads} thr ${p.ms_per_factor.toFixed(1)}`).join(', ')})` +
        `; PyTorch's time / roaf's: ${(fastest.ms_per_factor / best).toFixed(2)}`;
    }
  }
  say(text);
  report.push(line);
}
if (values.json) console.log(JSON.stringify({ isa: info.isa, float64_peak_gflops: float64Peak, sizes: report }));
process.exit(failed ? 1 : 0);
