// The wasm backend's figures (issue 11), in Node, one thread:
//   1. the matrix product C = A B at 256³ on the wasm backend (operands in its linear memory): GFLOPS, and its
//      share of the machine's measured FMA peak (the native fma_peak of one thread, `roaf info --peak`) and of
//      wasm's own multiply-add peak (no FMA in baseline wasm SIMD: half the native peak is its ceiling);
//   2. the ROAF RNN training step, N = 128, B = 128, T = 784, on the wasm backend (`roaf bench --backend
//      wasm`) against TensorFlow.js's wasm backend (dist/bench/peers/tfjs-bench.js, timed at a shorter T and
//      scaled linearly, as in `npm run bench`), with the ratio TF.js / roaf;
//   3. the ROAF MLP, 1,000 layers of width 64, B = 128: training steps per second on the wasm backend, beside
//      the native backend's on one thread.
// Every time is the median of timed repeats after warm-up. Run by `npm run bench` (after the native matrix
// product; `--skip-wasm` leaves it out), or alone:
//
//   npm run build && node dist/bench/wasm.js [--repeats 15] [--tfjs-seq-len 98] [--quick]
//
// --quick: small sizes (gemm 64³, T = 28, 50 layers), a smoke test of this script, not the figures.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { loadNativeBackend, nativeFmaPeak, nativeInfo } from '../src/backend/native.js';
import { loadWasmBackendSync, wasmLoadError } from '../src/backend/wasm-node.js';
import { Random } from '../src/util/random.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROAF_CLI = join(HERE, '..', 'src', 'cli', 'main.js');
const TFJS_SCRIPT = join(HERE, 'peers', 'tfjs-bench.js');

const { values } = parseArgs({
  options: {
    repeats: { type: 'string', default: '15' },
    'tfjs-seq-len': { type: 'string', default: '98' },
    quick: { type: 'boolean', default: false },
  },
});
const quick = values.quick ?? false;
const repeats = quick ? 3 : Number(values.repeats);
const tfjsSeqLen = quick ? 14 : Number(values['tfjs-seq-len']);
const T = quick ? 28 : 784;
const L = quick ? 50 : 1000;
const GEMM_N = quick ? 64 : 256;

const wasm = loadWasmBackendSync();
if (wasm === null) {
  console.log(`wasm benchmark skipped: ${wasmLoadError() ?? 'the wasm backend did not load'}`);
  process.exit(0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---- 1. the matrix product ----

const wasmPeak = wasm.wasm.fmaPeak(0.3) / 1e9;
const native = loadNativeBackend();
const nativePeak = native === null ? null : nativeFmaPeak(0.3) / 1e9;
console.log(
  `peaks, one thread: wasm multiply-add ${wasmPeak.toFixed(1)} GFLOPS` +
    (nativePeak === null ? '' : `, native FMA (${nativeInfo()!.isa}) ${nativePeak.toFixed(1)} GFLOPS`),
);
{
  const n = GEMM_N;
  const rng = new Random(1);
  const A = wasm.allocate('float32', n * n).map(() => rng.normal());
  const B = wasm.allocate('float32', n * n).map(() => rng.normal());
  const C = wasm.allocate('float32', n * n);
  const product = {
    transA: false,
    transB: false,
    M: n,
    N: n,
    K: n,
    alpha: 1,
    A,
    lda: n,
    B,
    ldb: n,
    beta: 0,
    C,
    ldc: n,
  };
  C.fill(NaN);
  wasm.gemm(product);
  for (let s = 0; s < 20; s++) {
    const i = rng.int(n);
    const j = rng.int(n);
    let want = 0;
    for (let k = 0; k < n; k++) want += A[i * n + k]! * B[k * n + j]!;
    if (!(Math.abs(C[i * n + j]! - want) <= 1e-4 * Math.sqrt(n) * 4))
      throw new Error(`wasm gemm ${n}: wrong result at (${i}, ${j})`);
  }
  const flops = 2 * n * n * n;
  const inner = Math.max(1, Math.round(1e9 / flops / 4));
  const samples: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const t0 = process.hrtime.bigint();
    for (let w = 0; w < inner; w++) wasm.gemm(product);
    if (r > 0) samples.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
  }
  const gflops = flops / median(samples) / 1e9;
  const shares = [`${((100 * gflops) / wasmPeak).toFixed(0)} % of the wasm peak`];
  if (nativePeak !== null) shares.unshift(`${((100 * gflops) / nativePeak).toFixed(0)} % of the FMA peak`);
  console.log(
    `wasm gemm ${n}x${n}x${n}, 1 thread: ${gflops.toFixed(1)} GFLOPS (median of ${repeats}; ${shares.join(', ')})`,
  );
}

// ---- 2. and 3. training steps, each engine in its own process ----

interface StepResult {
  ms: number | null;
  note: string;
}

function roafStep(backend: 'wasm' | 'native', args: string[]): StepResult {
  const extra = backend === 'native' ? ['--threads', '1'] : [];
  const result = spawnSync(
    process.execPath,
    [ROAF_CLI, 'bench', '--backend', backend, ...extra, ...args, '--repeats', String(Math.min(repeats, 5)), '--json'],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const last = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const json = JSON.parse(last) as { ms_per_batch: number; description: string };
    return { ms: json.ms_per_batch, note: json.description };
  } catch {
    return { ms: null, note: `roaf bench exited ${result.status}: ${result.stderr.trim().split('\n').pop() ?? ''}` };
  }
}

function tfjsStep(N: number): StepResult {
  const config = { model: 'roaf-rnn', batch: 128, hidden: N, seq_len: T, timed_seq_len: Math.min(tfjsSeqLen, T) };
  const result = spawnSync(
    process.execPath,
    [TFJS_SCRIPT, '--configs', JSON.stringify([config]), '--repeats', String(Math.min(repeats, 3)), '--warmup', '1'],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  const last = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const json = JSON.parse(last) as {
      ms_per_batch?: number;
      error?: string;
      timed_seq_len?: number;
      formulation?: string;
      formulations?: unknown[];
    };
    if (json.ms_per_batch === undefined) return { ms: null, note: `skipped: ${json.error ?? last}` };
    const which = `${json.formulation ?? '?'}, the fastest of ${json.formulations?.length ?? 1} formulations checked against each other`;
    return { ms: json.ms_per_batch, note: `${which}; timed at T = ${json.timed_seq_len ?? T}, scaled to ${T}` };
  } catch {
    return { ms: null, note: `tfjs-bench exited ${result.status}: ${result.stderr.trim().split('\n').pop() ?? ''}` };
  }
}

const fmt = (r: StepResult): string => (r.ms === null ? r.note : `${r.ms.toFixed(1)} ms (${r.note})`);

const rnnArgs = ['--model', 'roaf-rnn', '--hidden', '128', '--batch', '128', '--seq-len', String(T)];
const rnnWasm = roafStep('wasm', rnnArgs);
const rnnTfjs = tfjsStep(128);
console.log(`ROAF RNN step N=128 B=128 T=${T}: roaf wasm ${fmt(rnnWasm)}; TF.js wasm ${fmt(rnnTfjs)}`);
if (rnnWasm.ms !== null && rnnTfjs.ms !== null)
  console.log(`  TF.js / roaf wasm: ${(rnnTfjs.ms / rnnWasm.ms).toFixed(1)}x (issue 11: >= 5x)`);

const mlpArgs = ['--model', 'roaf-mlp', '--depth', String(L), '--width', '64', '--batch', '128'];
const mlpWasm = roafStep('wasm', mlpArgs);
const mlpNative = native === null ? null : roafStep('native', mlpArgs);
const perSecond = (r: StepResult): string => (r.ms === null ? r.note : `${(1000 / r.ms).toFixed(2)} steps/s`);
console.log(
  `ROAF MLP L=${L} N=64 B=128, Node: wasm ${perSecond(mlpWasm)}` +
    (mlpNative === null ? '' : `; native 1 thread ${perSecond(mlpNative)}`) +
    (mlpWasm.ms !== null && mlpNative?.ms != null ? ` (native / wasm ${(mlpWasm.ms / mlpNative.ms).toFixed(2)}x)` : ''),
);
