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
import type { Backend, BackendCore, DType, FilterOperand, FloatArray, KernelName } from './backend.js';
import { allocateHost } from './backend.js';
import { BackendBase } from './backend-base.js';
import { withArgumentChecks } from './kernel-checks.js';
import { KERNEL_NAMES, KERNEL_TABLE, kernelTableId, type KernelSpec } from './kernel-table.js';

/** Instruction-set paths of the native kernels, fastest first. */
export const NATIVE_ISAS = ['avx512', 'avx2', 'portable'] as const;
export type NativeIsa = (typeof NATIVE_ISAS)[number];

/**
 * What the addon exports (native/src/addon.c): control functions, and one function per kernel of the kernel
 * table taking its arguments positionally in table order, float arrays as Float32Array, a filter as the four
 * values (kind, n, matrix-or-signs, perm) and a filter list as (kinds, n, datas, perms) (see FilterList).
 */
type Addon = {
  info(): {
    isa: NativeIsa;
    threads: number;
    cores: number;
    available: NativeIsa[];
    /** gemmBf16 runs AVX512_BF16's vdpbf16ps (else the portable C arithmetic of the same result). */
    bf16: boolean;
    kernelTableId: string;
  };
  setIsa(isa: string): void;
  setThreads(n: number): void;
  setParallelThreshold(work: number): number;
  simulateThreadChoice(costs: Float64Array, threads: Int32Array): void;
  fmaPeak(seconds: number, threads: number): number;
  gemmPackedOnce(
    bf16: boolean,
    M: number,
    N: number,
    K: number,
    A: Float32Array,
    B: Float32Array,
    C: Float32Array,
    repeats: number,
  ): void;
} & Partial<Record<KernelName, (...args: unknown[]) => unknown>>;

let addon: Addon | null | undefined;
let loadError: string | null = null;
let backend: Backend | null = null;

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
  // The addon's entry points read their arguments in the order of the kernel table it was generated from.
  const built = addon.info().kernelTableId;
  if (built !== kernelTableId()) {
    loadError = `the addon ${path} was built from another kernel table (${String(built)}, not ${kernelTableId()}): rebuild it with \`npm install\``;
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
  if (threads !== undefined && threads !== '')
    a.setThreads(checkRange('ROAF_THREADS', Number(threads), 1, 64, { integer: true }));
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
  backend = withArgumentChecks(new NativeBackend(a));
  return backend;
}

function requireAddon(): Addon {
  const a = loadAddon();
  if (a === null) throw new Error(`roaf: native backend unavailable: ${loadError ?? 'unknown reason'}`);
  return a;
}

/**
 * The instruction set in use, the pool's thread count, the paths this CPU can run, whether bf16 products run
 * on AVX512_BF16; null when not built.
 */
export function nativeInfo(): {
  isa: NativeIsa;
  threads: number;
  available: NativeIsa[];
  cores: number;
  bf16: boolean;
} | null {
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
    throw new UsageError(
      `instruction set ${isa} is not available on this CPU (available: ${a.info().available.join(', ')})`,
    );
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
 * Test hook: the thread-count policy's choice for each run of a made-up kind of task (rule 3 of
 * native/src/parallel.c: long recurring tasks timed on one thread and on two). Run i costs oneThread[i] on
 * one thread and twoThreads[i] on two (any unit); returns the threads chosen for each run.
 */
export function simulateNativeThreadChoice(oneThread: readonly number[], twoThreads: readonly number[]): Int32Array {
  if (oneThread.length !== twoThreads.length) throw new RangeError('one cost per run on each side');
  const costs = new Float64Array(2 * oneThread.length);
  oneThread.forEach((cost, i) => {
    costs[2 * i] = cost;
    costs[2 * i + 1] = twoThreads[i]!;
  });
  const threads = new Int32Array(oneThread.length);
  requireAddon().simulateThreadChoice(costs, threads);
  return threads;
}

/**
 * The float32 FLOPS that one thread's widest fused multiply-add sustains on this CPU (the instruction set in
 * use), measured by a dependency-free FMA loop: the ceiling of any single-thread product. The median of three
 * runs of `seconds` each, since one run can be cut short by the other tenants of a shared machine.
 */
export function nativeFmaPeak(seconds = 0.3): number {
  const a = requireAddon();
  checkRange('seconds', seconds, 0.01, 10);
  const runs = [0, 1, 2].map(() => a.fmaPeak(seconds, 1)).sort((x, y) => x - y);
  return runs[1]!;
}

/**
 * The float32 FLOPS of the same loop run on every thread of the pool at once, summed (median of three runs):
 * the ceiling of a parallel product. Below threads x the one-thread peak where the machine's cores are not
 * independent (SMT siblings, or a host that shares them), which no product can work around.
 */
export function nativeFmaPeakAllThreads(seconds = 0.3): number {
  const a = requireAddon();
  checkRange('seconds', seconds, 0.01, 10);
  const threads = nativeInfo()?.threads ?? 1;
  const runs = [0, 1, 2].map(() => a.fmaPeak(seconds, threads)).sort((x, y) => x - y);
  return runs[1]!;
}

/**
 * Benchmark support (bench/gemm.ts): `repeats` products C (M, N) = A (M, K) B (K, N), row-major, on the calling
 * thread with B packed once for all of them, as the fused kernels pack their weights once per call: in float32,
 * or on bf16 operands with float32 sums (the fused bf16 cell's tiles; A is rounded for every product).
 */
export function nativeGemmPackedOnce(
  bf16: boolean,
  M: number,
  N: number,
  K: number,
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  repeats: number,
): void {
  const a = requireAddon();
  for (const [name, value] of [
    ['M', M],
    ['N', N],
    ['K', K],
    ['repeats', repeats],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  for (const [name, array, length] of [
    ['A', A, M * K],
    ['B', B, K * N],
    ['C', C, M * N],
  ] as const) {
    if (!(array instanceof Float32Array) || array.length < length)
      throw new RangeError(`${name} must be a Float32Array of at least ${length} elements`);
  }
  a.gemmPackedOnce(bf16, M, N, K, A, B, C, repeats);
}

// ---- marshalling: argument objects into the addon's positional arguments, driven by the kernel table ----

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

/**
 * The filters of a whole stack as the addon reads them: kinds (L) and, for the matrices-or-signs and the perms,
 * either one array shared by every layer or one per layer.
 */
interface FilterList {
  /** The filters the list was built from (a copy: the caller's array may change later). */
  filters: FilterOperand[];
  kinds: Int32Array;
  datas: FloatArray | null | (FloatArray | null)[];
  perms: Int32Array | null | (Int32Array | null)[];
}

/** Lists built once per filters array (a model passes the same array at every step), rebuilt when it changed. */
const filterLists = new WeakMap<readonly FilterOperand[], FilterList>();

function filterList(filters: readonly FilterOperand[]): FilterList {
  const cached = filterLists.get(filters);
  if (
    cached !== undefined &&
    cached.filters.length === filters.length &&
    cached.filters.every((f, l) => f === filters[l])
  ) {
    return cached;
  }
  const first = filters[0];
  const shared = first !== undefined && filters.every((f) => f === first);
  const list: FilterList = {
    filters: [...filters],
    kinds: Int32Array.from(filters, filterKind),
    datas: shared ? filterData(first) : filters.map(filterData),
    perms: shared ? filterPerm(first) : filters.map(filterPerm),
  };
  filterLists.set(filters, list);
  return list;
}

/**
 * The addon function of one kernel as a Backend method. Positional kernels without filters take their
 * arguments as they are; the others are spread from the argument object in table order.
 */
function bindKernel(fn: (...args: unknown[]) => unknown, spec: KernelSpec): (...params: unknown[]) => unknown {
  const filterArgs = spec.args.some((arg) => arg.kind === 'filter' || arg.kind === 'filters');
  if (!spec.object && !filterArgs) return fn;
  return (...params: unknown[]): unknown => {
    const values = (
      spec.object ? params[0] : Object.fromEntries(spec.args.map((arg, i) => [arg.name, params[i]]))
    ) as Record<string, unknown>;
    const list: unknown[] = [];
    for (const arg of spec.args) {
      const value = values[arg.name];
      if (arg.kind === 'filter') {
        const f = value as FilterOperand;
        list.push(filterKind(f), f.n, filterData(f), filterPerm(f));
      } else if (arg.kind === 'filters') {
        const l = filterList(value as readonly FilterOperand[]);
        list.push(l.kinds, values[arg.width], l.datas, l.perms);
      } else {
        list.push(value);
      }
    }
    return fn(...list);
  };
}

/** Every kernel the addon has, as Backend methods. */
function bindNativeKernels(addon: Addon): Partial<Backend> {
  const kernels: Record<string, unknown> = {};
  for (const name of KERNEL_NAMES) {
    const fn = addon[name];
    if (fn !== undefined) kernels[name] = bindKernel(fn, KERNEL_TABLE[name]);
  }
  return kernels;
}

/**
 * The native backend: every kernel the addon has (all of the table's), installed from the kernel table as own
 * properties in place of BackendBase's abstract core and default fused kernels. Arguments are checked before
 * (loadNativeBackend wraps it with the table's checks); the addon itself only reads them.
 */
class NativeBackend extends BackendBase {
  readonly name = 'native';
  // The core: the addon's kernels, installed by the constructor (the addon has every kernel of its table).
  declare gemm: BackendCore['gemm'];
  declare gemmBf16: BackendCore['gemmBf16'];
  declare addRowVector: BackendCore['addRowVector'];
  declare sumRows: BackendCore['sumRows'];
  declare tanh: BackendCore['tanh'];
  declare tanhBackward: BackendCore['tanhBackward'];
  declare sumSquares: BackendCore['sumSquares'];
  declare scale: BackendCore['scale'];
  declare axpy: BackendCore['axpy'];
  declare applyFilter: BackendCore['applyFilter'];
  declare softmaxCrossEntropy: BackendCore['softmaxCrossEntropy'];
  declare squaredError: BackendCore['squaredError'];
  declare adamUpdate: BackendCore['adamUpdate'];
  declare sgdUpdate: BackendCore['sgdUpdate'];

  constructor(private readonly addon: Addon) {
    super();
    Object.assign(this, bindNativeKernels(addon));
  }

  describe(): string {
    const { isa, threads } = this.addon.info();
    return `native (${isa}, ${threads} thread${threads === 1 ? '' : 's'})`;
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  allocate(dtype: DType, length: number): FloatArray {
    return allocateHost(dtype, length);
  }
}
