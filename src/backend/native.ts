// The native backend: the Backend interface on C kernels behind an N-API addon (native/, built by
// `npm install` into build/Release/roaf_native.node), float32 only.
//
// The addon picks the best instruction set the CPU has (AVX-512, AVX2+FMA, else portable C) and a thread
// pool sized to the cores. Environment variables override both when the backend is loaded:
//   ROAF_ISA=portable|avx2|avx512   force an instruction-set path (an error if the CPU lacks it)
//   ROAF_THREADS=k                  threads in the pool (setNativeThreads changes it later)
//   ROAF_NATIVE_PATH=file           load the addon from another path
// When the addon is missing or fails to load, loadNativeBackend() returns null and nativeLoadError() says
// why; callers then use the reference backend.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { UsageError, checkRange } from '../util/errors.js';
import type { Backend, DType, FilterOperand, FloatArray, GruSaved, LstmSaved } from './backend.js';

/** Instruction-set paths of the native kernels, fastest first. */
export const NATIVE_ISAS = ['avx512', 'avx2', 'portable'] as const;
export type NativeIsa = (typeof NATIVE_ISAS)[number];

/** What the addon exports (native/src/addon.c); arrays must be Float32Array except where typed otherwise. */
interface Addon {
  info(): { isa: NativeIsa; threads: number; cores: number; available: NativeIsa[] };
  setIsa(isa: string): void;
  setThreads(n: number): void;
  setParallelThreshold(work: number): number;
  fmaPeak(seconds: number): number;
  gemm(...args: unknown[]): void;
  addRowVector(...args: unknown[]): void;
  sumRows(...args: unknown[]): void;
  tanh(...args: unknown[]): void;
  tanhBackward(...args: unknown[]): void;
  sumSquares(...args: unknown[]): number;
  scale(...args: unknown[]): void;
  axpy(...args: unknown[]): void;
  applyFilter(...args: unknown[]): void;
  roafLayerForward(...args: unknown[]): void;
  roafLayerBackward(...args: unknown[]): void;
  roafMlpForward(...args: unknown[]): void;
  roafMlpBackward(...args: unknown[]): void;
  roafCellForward(...args: unknown[]): void;
  roafCellBackward(...args: unknown[]): void;
  lstmForward(...args: unknown[]): void;
  lstmBackward(...args: unknown[]): void;
  gruForward(...args: unknown[]): void;
  gruBackward(...args: unknown[]): void;
  softmaxCrossEntropy(...args: unknown[]): number;
  squaredError(...args: unknown[]): number;
  adamUpdate(...args: unknown[]): void;
  sgdUpdate(...args: unknown[]): void;
}

let addon: Addon | null | undefined;
let loadError: string | null = null;
let backend: NativeBackend | null = null;

/** Where the addon may be: dist/src/backend/ and src/backend/ both sit below the package root. */
function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromEnv = process.env.ROAF_NATIVE_PATH;
  if (fromEnv !== undefined && fromEnv !== '') return [resolve(fromEnv)];
  return [
    resolve(here, '..', '..', '..', 'build', 'Release', 'roaf_native.node'),
    resolve(here, '..', '..', 'build', 'Release', 'roaf_native.node'),
  ];
}

function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  const path = addonCandidates().find((p) => existsSync(p));
  if (path === undefined) {
    loadError = 'the addon build/Release/roaf_native.node is missing (run `npm install` to build it)';
    addon = null;
    return null;
  }
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (error) {
    loadError = `the addon ${path} failed to load: ${(error as Error).message}`;
    addon = null;
    return null;
  }
  applyEnvironment(addon);
  return addon;
}

/** ROAF_ISA and ROAF_THREADS, validated with errors that name the variable. */
function applyEnvironment(a: Addon): void {
  const isa = process.env.ROAF_ISA;
  if (isa !== undefined && isa !== '') {
    if (!(NATIVE_ISAS as readonly string[]).includes(isa)) {
      throw new UsageError(`ROAF_ISA must be one of ${NATIVE_ISAS.join(', ')}, got '${isa}'`);
    }
    if (!a.info().available.includes(isa as NativeIsa)) {
      throw new UsageError(`ROAF_ISA=${isa}, but this CPU supports only ${a.info().available.join(', ')}`);
    }
    a.setIsa(isa);
  }
  const threads = process.env.ROAF_THREADS;
  if (threads !== undefined && threads !== '') a.setThreads(checkRange('ROAF_THREADS', Number(threads), 1, 64, { integer: true }));
}

/** Why the native backend is unavailable, or null when it loaded (or was not asked for yet). */
export function nativeLoadError(): string | null {
  return loadError;
}

/** The native backend, or null (see nativeLoadError) when the addon is not built or does not load. */
export function loadNativeBackend(): Backend | null {
  if (backend !== null) return backend;
  const a = loadAddon();
  if (a === null) return null;
  backend = new NativeBackend(a);
  return backend;
}

function requireAddon(): Addon {
  const a = loadAddon();
  if (a === null) throw new Error(`roaf: native backend unavailable: ${loadError ?? 'unknown reason'}`);
  return a;
}

/** The instruction set in use, the pool's thread count, the paths this CPU can run; null when not built. */
export function nativeInfo(): { isa: NativeIsa; threads: number; available: NativeIsa[]; cores: number } | null {
  return loadAddon()?.info() ?? null;
}

/** Resizes the thread pool (1..64 threads, the caller included); nothing to do when the addon is missing. */
export function setNativeThreads(n: number): void {
  loadAddon()?.setThreads(checkRange('threads', n, 1, 64, { integer: true }));
}

/** Switches the instruction-set path (for tests and benchmarks); throws if the CPU lacks it. */
export function setNativeIsa(isa: NativeIsa): void {
  const a = requireAddon();
  if (!a.info().available.includes(isa)) {
    throw new UsageError(`instruction set ${isa} is not available on this CPU (available: ${a.info().available.join(', ')})`);
  }
  a.setIsa(isa);
}

/**
 * Test hook: the work (multiply-adds) below which a kernel stays on one thread. 0 makes every kernel that can
 * split do so, so small test shapes exercise the threaded code paths. Returns the previous value.
 */
export function setNativeParallelThreshold(work: number): number {
  return requireAddon().setParallelThreshold(work);
}

/**
 * The float32 FLOPS that one thread's widest fused multiply-add sustains on this CPU (the instruction set in
 * use), measured by a dependency-free FMA loop: the ceiling of any single-thread product. The median of three
 * runs of `seconds` each, since one run can be cut short by the other tenants of a shared machine.
 */
export function nativeFmaPeak(seconds = 0.3): number {
  const a = requireAddon();
  checkRange('seconds', seconds, 0.01, 10);
  const runs = [0, 1, 2].map(() => a.fmaPeak(seconds)).sort((x, y) => x - y);
  return runs[1];
}

const FILTER_DENSE = 0;
const FILTER_PERMUTATION = 1;
const FILTER_IDENTITY = 2;

function filterKind(f: FilterOperand): number {
  return f.kind === 'dense' ? FILTER_DENSE : f.kind === 'permutation' ? FILTER_PERMUTATION : FILTER_IDENTITY;
}
function filterData(f: FilterOperand): FloatArray | null {
  return f.kind === 'dense' ? f.matrix : f.kind === 'permutation' ? f.signs : null;
}
function filterPerm(f: FilterOperand): Int32Array | null {
  return f.kind === 'permutation' ? f.perm : null;
}
function checkFilterWidth(f: FilterOperand, N: number): void {
  if (f.n !== N) throw new RangeError(`native backend: the filter is ${f.n} wide, the layer ${N}`);
}

/**
 * The filters of a whole stack as the addon reads them: kinds (L) and, for the matrices-or-signs and the perms,
 * either one array shared by every layer or one per layer.
 */
interface FilterTable {
  /** The filters the table was built from (a copy: the caller's array may change later), and their width. */
  filters: FilterOperand[];
  N: number;
  kinds: Int32Array;
  datas: FloatArray | null | (FloatArray | null)[];
  perms: Int32Array | null | (Int32Array | null)[];
}

/** Tables built once per filters array (a model passes the same array at every step), checked at every use. */
const filterTables = new WeakMap<readonly FilterOperand[], FilterTable>();

function filterTable(filters: readonly FilterOperand[], L: number, N: number): FilterTable {
  if (filters.length !== L) throw new RangeError(`native backend: ${filters.length} filters for ${L} layers`);
  const cached = filterTables.get(filters);
  if (cached !== undefined && cached.N === N && cached.filters.length === L && cached.filters.every((f, l) => f === filters[l])) {
    return cached;
  }
  const kinds = new Int32Array(L);
  filters.forEach((f, l) => {
    checkFilterWidth(f, N);
    kinds[l] = filterKind(f);
  });
  const shared = filters.every((f) => f === filters[0]);
  const table: FilterTable = shared && L > 0
    ? { filters: [...filters], N, kinds, datas: filterData(filters[0]), perms: filterPerm(filters[0]) }
    : { filters: [...filters], N, kinds, datas: filters.map(filterData), perms: filters.map(filterPerm) };
  filterTables.set(filters, table);
  return table;
}

class NativeBackend implements Backend {
  readonly name = 'native';

  constructor(private readonly a: Addon) {}

  describe(): string {
    const { isa, threads } = this.a.info();
    return `native (${isa}, ${threads} thread${threads === 1 ? '' : 's'})`;
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
    beta: number, C: FloatArray, ldc: number,
  ): void {
    this.a.gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void {
    this.a.addRowVector(rows, n, y, bias);
  }

  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void {
    this.a.sumRows(rows, n, x, out);
  }

  tanh(n: number, x: FloatArray, out: FloatArray): void {
    this.a.tanh(n, x, out);
  }

  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void {
    this.a.tanhBackward(n, a, gy, gx);
  }

  sumSquares(n: number, x: FloatArray): number {
    return this.a.sumSquares(n, x);
  }

  scale(n: number, x: FloatArray, s: number): void {
    this.a.scale(n, x, s);
  }

  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void {
    this.a.axpy(n, s, x, y);
  }

  applyFilter(
    filter: FilterOperand, transpose: boolean, B: number,
    alpha: number, x: FloatArray, betaY: number, y: FloatArray,
  ): void {
    if (x === y) throw new RangeError('native backend: applyFilter: x and y must not alias');
    this.a.applyFilter(filterKind(filter), filterData(filter), filterPerm(filter), filter.n, transpose, B, alpha, x, betaY, y);
  }

  roafLayerForward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, W: FloatArray, b: FloatArray, a: FloatArray, y: FloatArray,
  ): void {
    checkFilterWidth(filter, N);
    this.a.roafLayerForward(B, N, alpha, beta, filterKind(filter), filterData(filter), filterPerm(filter), x, W, b, a, y);
  }

  roafLayerBackward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, a: FloatArray, W: FloatArray, gy: FloatArray,
    gx: FloatArray | null, gW: FloatArray, gb: FloatArray, gz: FloatArray,
  ): void {
    checkFilterWidth(filter, N);
    this.a.roafLayerBackward(
      B, N, alpha, beta, filterKind(filter), filterData(filter), filterPerm(filter), x, a, W, gy, gx, gW, gb, gz,
    );
  }

  roafMlpForward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, bs: FloatArray, xs: FloatArray, as: FloatArray,
  ): void {
    const t = filterTable(filters, L, N);
    this.a.roafMlpForward(L, B, N, alpha, beta, t.kinds, t.datas, t.perms, Ws, bs, xs, as);
  }

  roafMlpBackward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, xs: FloatArray, as: FloatArray, gy: FloatArray,
    gWs: FloatArray, gbs: FloatArray, gradSquares: Float64Array | null,
  ): void {
    const t = filterTable(filters, L, N);
    this.a.roafMlpBackward(L, B, N, alpha, beta, t.kinds, t.datas, t.perms, Ws, xs, as, gy, gWs, gbs, gradSquares);
  }

  roafCellForward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, b: FloatArray, hs: FloatArray, as: FloatArray,
  ): void {
    checkFilterWidth(filter, N);
    this.a.roafCellForward(
      T, B, D, N, alpha, beta, filterKind(filter), filterData(filter), filterPerm(filter), xs, W, U, b, hs, as,
    );
  }

  roafCellBackward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, hs: FloatArray, as: FloatArray,
    ghs: FloatArray, gzs: FloatArray, gW: FloatArray, gU: FloatArray, gb: FloatArray,
    gh0: FloatArray | null, gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    checkFilterWidth(filter, N);
    this.a.roafCellBackward(
      T, B, D, N, alpha, beta, filterKind(filter), filterData(filter), filterPerm(filter),
      xs, W, U, hs, as, ghs, gzs, gW, gU, gb, gh0, gxs, lastStepOnly,
    );
  }

  lstmForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, b: FloatArray, saved: LstmSaved,
  ): void {
    this.a.lstmForward(T, B, D, N, xs, Wx, Wh, b, saved.hs, saved.cs, saved.gates);
  }

  lstmBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: LstmSaved,
    ghs: FloatArray, gGates: FloatArray, gWx: FloatArray, gWh: FloatArray, gb: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    this.a.lstmBackward(
      T, B, D, N, xs, Wx, Wh, saved.hs, saved.cs, saved.gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly,
    );
  }

  gruForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, bx: FloatArray, bh: FloatArray, saved: GruSaved,
  ): void {
    this.a.gruForward(T, B, D, N, xs, Wx, Wh, bx, bh, saved.hs, saved.gates, saved.hn);
  }

  gruBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: GruSaved,
    ghs: FloatArray, gGates: FloatArray, gHn: FloatArray,
    gWx: FloatArray, gWh: FloatArray, gbx: FloatArray, gbh: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void {
    this.a.gruBackward(
      T, B, D, N, xs, Wx, Wh, saved.hs, saved.gates, saved.hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs,
      lastStepOnly,
    );
  }

  softmaxCrossEntropy(
    B: number, K: number, logits: FloatArray, labels: Int32Array, gradScale: number,
    grad: FloatArray | null, correct: Uint8Array | null,
  ): number {
    return this.a.softmaxCrossEntropy(B, K, logits, labels, gradScale, grad, correct);
  }

  squaredError(
    B: number, K: number, pred: FloatArray, target: FloatArray, gradScale: number, grad: FloatArray | null,
  ): number {
    return this.a.squaredError(B, K, pred, target, gradScale, grad);
  }

  adamUpdate(
    n: number, params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, t: number,
  ): void {
    this.a.adamUpdate(n, params, grads, m, v, lr, beta1, beta2, eps, weightDecay, t);
  }

  sgdUpdate(
    n: number, params: FloatArray, grads: FloatArray, velocity: FloatArray, lr: number, momentum: number,
  ): void {
    this.a.sgdUpdate(n, params, grads, velocity, lr, momentum);
  }
}
