// GEMM micro-benchmark of the native backend: GFLOPS of C = A B (float32, row-major, no transposes) at
// 256³, 512³ and 1024³ on 1 and 2 threads, the median of timed repeats (1- and 2-thread samples interleaved)
// after a warm-up, each result first checked against a float64 dot product on sampled entries. Prints one
// line per size and thread count, after this CPU's measured arithmetic peak (a dependency-free FMA loop on one
// thread: fma_peak in native/, see docs/native.md), which bounds what any single-thread product can reach, and
// the same loop on both threads at once, which bounds a two-thread product (below 2 x one thread's where the
// two virtual cores share hardware): a two-thread line quotes its share of both. When the CPU has AVX512_BF16, also the bf16 product (gemmBf16: bf16 operands, float32 sums; its samples
// interleaved with float32's) and its speed as a ratio to float32's on the same thread count. Last, on one
// thread, the products with the weight operand B packed once for many products (as the fused kernels pack
// their weights once per call, and the bf16 cell rounds only its h rows per step): float32 and bf16, 256³ and
// 512³, and their ratio (the bf16 figure at 256³ is this one). Then weight-gradient shapes on one
// thread, C = Aᵀ B over 50,000 rows with 2, 10, 16 and 128 columns: milliseconds and GFLOPS.
//
//   npm run build && node dist/bench/gemm.js [--isa avx512|avx2|portable] [--repeats 15] [--no-bf16]

import { parseArgs } from 'node:util';

import { loadBackend, nativeInfo, nativeLoadError, setNativeThreads } from '../src/index.js';
import { nativeFmaPeak, nativeFmaPeakAllThreads, nativeGemmPackedOnce, setNativeIsa } from '../src/backend/native.js';
import { bf16Round } from '../src/backend/bf16.js';
import { Random } from '../src/util/random.js';
import { checkChoice, checkRange } from '../src/util/errors.js';

const USAGE = `usage: node dist/bench/gemm.js [options]
  --isa NAME     the native instruction set to time: avx512, avx2 or portable (default: the best this CPU runs)
  --repeats R    timed samples per product, median reported (default 15)
  --no-bf16      skip the bf16 products
  --help         this text
`;
let parsed;
try {
  parsed = parseArgs({
    options: {
      isa: { type: 'string' },
      repeats: { type: 'string', default: '15' },
      'no-bf16': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
} catch (error) {
  process.stderr.write(`gemm benchmark: ${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
let repeats = 0;
let isa: 'avx512' | 'avx2' | 'portable' | undefined;
try {
  repeats = checkRange('--repeats', Number(values.repeats), 1, 1000, { integer: true });
  if (values.isa !== undefined) isa = checkChoice('--isa', values.isa, ['avx512', 'avx2', 'portable'] as const);
} catch (error) {
  process.stderr.write(`gemm benchmark: ${(error as Error).message}\n`);
  process.exit(2);
}
const backend = loadBackend('native');
if (backend === null) {
  console.log(`gemm benchmark skipped: native backend not built (${nativeLoadError() ?? 'unknown reason'})`);
  process.exit(0);
}
if (isa !== undefined) setNativeIsa(isa);
const info = nativeInfo()!;
const rng = new Random(1);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Checks `samples` random entries of C (M x N, row stride N) against float64 dot products of op(A)'s row i and
 * op(B)'s column j (a(i, k), b(k, j)), on bf16-rounded operands when `roundBf16` (float32 sums: the bound of
 * test/bf16.test.ts, loosely); throws naming `label` and the entry.
 */
function checkSampled(
  label: string,
  C: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  a: (i: number, k: number) => number,
  b: (k: number, j: number) => number,
  roundBf16: boolean,
  samples: number,
): void {
  const round = roundBf16 ? bf16Round : (x: number): number => x;
  for (let s = 0; s < samples; s++) {
    const i = rng.int(M);
    const j = rng.int(N);
    let want = 0;
    for (let k = 0; k < K; k++) want += round(a(i, k)) * round(b(k, j));
    if (!(Math.abs(C[i * N + j]! - want) <= 1e-4 * Math.sqrt(K) * 4))
      throw new Error(`${label}: wrong result at (${i}, ${j})`);
  }
}

/** checkSampled on a row-major n x n product C = A B, 20 entries. */
function checkSquare(
  label: string,
  C: ArrayLike<number>,
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  n: number,
  roundBf16: boolean,
): void {
  checkSampled(
    label,
    C,
    n,
    n,
    n,
    (i, k) => A[i * n + k]!,
    (k, j) => B[k * n + j]!,
    roundBf16,
    20,
  );
}

const peak = nativeFmaPeak(0.3) / 1e9;
console.log(`FMA peak, one thread, ${info.isa}: ${peak.toFixed(1)} GFLOPS (median of 3 runs of 0.3 s)`);
setNativeThreads(2);
const peakBoth = nativeFmaPeakAllThreads(0.3) / 1e9;
console.log(
  `FMA peak, two threads at once: ${peakBoth.toFixed(1)} GFLOPS (${(peakBoth / peak).toFixed(2)} x one thread)`,
);
const bf16 = info.bf16 && !values['no-bf16'];
console.log(
  `native GEMM, ${info.isa}, float32${bf16 ? ' and bf16 (AVX512_BF16)' : ''}, C = A B; median of ${repeats} repeats`,
);
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
  // The variants timed: float32, and bf16 where it runs on vdpbf16ps (elsewhere it is the C fallback).
  const variants = [1, 2].flatMap((threads) => [{ threads, bf16: false }, ...(bf16 ? [{ threads, bf16: true }] : [])]);
  const multiply = (useBf16: boolean): void => (useBf16 ? backend.gemmBf16(product) : backend.gemm(product));
  // Each result is checked first, on sampled entries.
  for (const { threads, bf16: useBf16 } of variants) {
    setNativeThreads(threads);
    C.fill(NaN);
    multiply(useBf16);
    checkSquare(`gemm${useBf16 ? 'Bf16' : ''} ${n}`, C, A, B, n, useBf16);
  }
  // Samples of every variant alternate, so that a shared machine's load hits them alike.
  const samples = variants.map(() => [] as number[]);
  for (let r = 0; r < repeats + 1; r++) {
    variants.forEach(({ threads, bf16: useBf16 }, v) => {
      setNativeThreads(threads);
      for (let w = 0; w < Math.max(1, inner >> 2); w++) multiply(useBf16);
      const t0 = process.hrtime.bigint();
      for (let w = 0; w < inner; w++) multiply(useBf16);
      if (r > 0) samples[v]!.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
    });
  }
  const float32Gflops = new Map<number, number>();
  variants.forEach(({ threads, bf16: useBf16 }, v) => {
    const gflops = flops / median(samples[v]!) / 1e9;
    const best = flops / Math.min(...samples[v]!) / 1e9;
    if (!useBf16) {
      float32Gflops.set(threads, gflops);
      const share = (100 * gflops) / (threads * peak);
      // The peak is a median of three short runs, which still lands low when the host takes a core for a
      // second: a product above it shows the peak was disturbed, not a share, so it says that instead.
      const bothShare = (100 * gflops) / peakBoth;
      const shareBoth =
        threads !== 2
          ? ''
          : bothShare > 100
            ? ', above the two-thread peak: that measurement was disturbed (the host took a core), rerun'
            : `, ${bothShare.toFixed(0)} % of the two-thread peak`;
      console.log(
        `gemm ${n}x${n}x${n} threads=${threads}: ${gflops.toFixed(1)} GFLOPS (best ${best.toFixed(1)}; ${share.toFixed(0)} % of ${threads} x peak${shareBoth})`,
      );
    } else {
      const ratio = gflops / float32Gflops.get(threads)!;
      console.log(
        `gemmBf16 ${n}x${n}x${n} threads=${threads}: ${gflops.toFixed(1)} GFLOPS (best ${best.toFixed(1)}; ${ratio.toFixed(2)}x float32 on ${threads} thread${threads === 1 ? '' : 's'})`,
      );
    }
  });
}

// The weight operand packed once (one thread): float32 and bf16 samples interleaved.
setNativeThreads(1);
console.log(`C = A B with B packed once for all products, one thread${bf16 ? ', float32 and bf16' : ''}`);
for (const n of [256, 512]) {
  const A = Float32Array.from({ length: n * n }, () => rng.normal());
  const B = Float32Array.from({ length: n * n }, () => rng.normal());
  const C = new Float32Array(n * n);
  const flops = 2 * n * n * n;
  const inner = Math.max(1, Math.round(2e9 / flops / 4));
  const kinds = bf16 ? [false, true] : [false];
  for (const useBf16 of kinds) {
    C.fill(NaN);
    nativeGemmPackedOnce(useBf16, n, n, n, A, B, C, 1);
    checkSquare(`packed-once ${useBf16 ? 'bf16' : 'float32'} ${n}`, C, A, B, n, useBf16);
  }
  const samples = kinds.map(() => [] as number[]);
  for (let r = 0; r < repeats + 1; r++) {
    kinds.forEach((useBf16, v) => {
      nativeGemmPackedOnce(useBf16, n, n, n, A, B, C, Math.max(1, inner >> 2));
      const t0 = process.hrtime.bigint();
      nativeGemmPackedOnce(useBf16, n, n, n, A, B, C, inner);
      if (r > 0) samples[v]!.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
    });
  }
  const gflops = samples.map((s) => flops / median(s) / 1e9);
  const share = (100 * gflops[0]!) / peak;
  console.log(
    `packed-once float32 ${n}x${n}x${n} threads=1: ${gflops[0]!.toFixed(1)} GFLOPS (${share.toFixed(0)} % of peak)`,
  );
  if (bf16) {
    console.log(
      `packed-once bf16 ${n}x${n}x${n} threads=1: ${gflops[1]!.toFixed(1)} GFLOPS (${(gflops[1]! / gflops[0]!).toFixed(2)}x packed-once float32)`,
    );
  }
}
// Weight-gradient shapes, one thread: C (M, N) = Aᵀ B over K rows, A (K, M) and B (K, N) as stored: the
// recurrent weights' gradient (N = the hidden size) and the input side's (N = D: 2 for the adding problem, 10
// for the copy task; matrix-vector loops up to 10 columns, docs/native.md).
setNativeThreads(1);
console.log('C = Aᵀ B over K = 50,000 rows (weight gradients), M = 512, one thread');
for (const N of [2, 10, 16, 128]) {
  const M = 512;
  const K = 50_000;
  const A = Float32Array.from({ length: K * M }, () => rng.normal());
  const B = Float32Array.from({ length: K * N }, () => rng.normal());
  const C = new Float32Array(M * N);
  const product = { transA: true, transB: false, M, N, K, alpha: 1, A, lda: M, B, ldb: N, beta: 0, C, ldc: N };
  backend.gemm(product);
  checkSampled(
    `weight gradient ${M}x${N}x${K}`,
    C,
    M,
    N,
    K,
    (i, k) => A[k * M + i]!,
    (k, j) => B[k * N + j]!,
    false,
    10,
  );
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    backend.gemm(product);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const ms = median(samples);
  console.log(
    `gemm Aᵀ B ${M}x${N}x${K} threads=1: ${ms.toFixed(1)} ms, ${((2 * M * N * K) / ms / 1e6).toFixed(1)} GFLOPS`,
  );
}
setNativeThreads(info.threads);
