// GEMM micro-benchmark of the native backend: GFLOPS of C = A B (float32, row-major, no transposes) at
// 256³, 512³ and 1024³ on 1 and 2 threads, the median of timed repeats (1- and 2-thread samples interleaved)
// after a warm-up, each result first checked against a float64 dot product on sampled entries. Prints one
// line per size and thread count, after this CPU's measured arithmetic peak (a dependency-free FMA loop on one
// thread: fma_peak in native/, see docs/native.md), which bounds what any single-thread product can reach, and
// the same loop on both threads at once, which bounds a two-thread product (below 2 x one thread's where the
// two virtual cores share hardware). A two-thread line quotes its share of both.
//
//   npm run build && node dist/bench/gemm.js [--isa avx512|avx2|portable] [--repeats 15]

import { parseArgs } from 'node:util';

import { loadBackend, nativeInfo, nativeLoadError, setNativeThreads } from '../src/index.js';
import { nativeFmaPeak, nativeFmaPeakAllThreads, setNativeIsa, type NativeIsa } from '../src/backend/native.js';
import { Random } from '../src/util/random.js';

const { values } = parseArgs({ options: { isa: { type: 'string' }, repeats: { type: 'string', default: '15' } } });
const backend = loadBackend('native');
if (backend === null) {
  console.log(`gemm benchmark skipped: native backend not built (${nativeLoadError() ?? 'unknown reason'})`);
  process.exit(0);
}
if (values.isa !== undefined) setNativeIsa(values.isa as NativeIsa);
const repeats = Number(values.repeats);
const info = nativeInfo()!;
const rng = new Random(1);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const peak = nativeFmaPeak(0.3) / 1e9;
console.log(`FMA peak, one thread, ${info.isa}: ${peak.toFixed(1)} GFLOPS (median of 3 runs of 0.3 s)`);
setNativeThreads(2);
const peakBoth = nativeFmaPeakAllThreads(0.3) / 1e9;
console.log(
  `FMA peak, two threads at once: ${peakBoth.toFixed(1)} GFLOPS (${(peakBoth / peak).toFixed(2)} x one thread)`,
);
console.log(`native GEMM, ${info.isa}, float32, C = A B; median of ${repeats} repeats`);
for (const n of [256, 512, 1024]) {
  const A = backend.allocate('float32', n * n).map(() => rng.normal());
  const B = backend.allocate('float32', n * n).map(() => rng.normal());
  const C = backend.allocate('float32', n * n);
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
  const flops = 2 * n * n * n;
  const inner = Math.max(1, Math.round(2e9 / flops / 4)); // about 5-20 ms per timed sample
  // Check the result on both thread counts first.
  for (const threads of [1, 2]) {
    setNativeThreads(threads);
    C.fill(NaN);
    backend.gemm(product);
    for (let s = 0; s < 20; s++) {
      const i = rng.int(n);
      const j = rng.int(n);
      let want = 0;
      for (let k = 0; k < n; k++) want += A[i * n + k]! * B[k * n + j]!;
      if (!(Math.abs(C[i * n + j]! - want) <= 1e-4 * Math.sqrt(n) * 4))
        throw new Error(`gemm ${n}: wrong result at (${i}, ${j})`);
    }
  }
  // Samples of 1 and 2 threads alternate, so that a shared machine's load hits both alike.
  const samples: Record<number, number[]> = { 1: [], 2: [] };
  const samplesOf = (threads: number): number[] => samples[threads]!;
  for (let r = 0; r < repeats + 1; r++) {
    for (const threads of [1, 2]) {
      setNativeThreads(threads);
      for (let w = 0; w < Math.max(1, inner >> 2); w++) backend.gemm(product);
      const t0 = process.hrtime.bigint();
      for (let w = 0; w < inner; w++) backend.gemm(product);
      if (r > 0) samplesOf(threads).push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
    }
  }
  for (const threads of [1, 2]) {
    const gflops = flops / median(samplesOf(threads)) / 1e9;
    const best = flops / Math.min(...samplesOf(threads)) / 1e9;
    const share = (100 * gflops) / (threads * peak);
    const shareBoth = threads === 2 ? `, ${((100 * gflops) / peakBoth).toFixed(0)} % of the two-thread peak` : '';
    console.log(
      `gemm ${n}x${n}x${n} threads=${threads}: ${gflops.toFixed(1)} GFLOPS (best ${best.toFixed(1)}; ${share.toFixed(0)} % of ${threads} x peak${shareBoth})`,
    );
  }
}
setNativeThreads(info.threads);
