// The wasm backend: the Backend interface on the C kernels of native/src compiled to WebAssembly with 128-bit
// SIMD (native/wasm/roaf.wasm, built by scripts/build-wasm.mjs; docs/wasm.md), one thread, float32 only.
// Nothing here uses Node's built-ins, so it runs in a browser or a worker as it is; src/backend/wasm-node.ts
// loads the module from the package in Node.
//
// Memory. The kernels work on the module's linear memory, so `allocate` hands out views of it (the model's
// weights, gradients, optimiser state and work buffers live there and are never copied per call). The memory
// is created here with a fixed size (initial = maximum, `memoryBytes`): it never grows, because growing a
// WebAssembly memory detaches every view of it, and the models keep their views. Pages of linear memory that
// are never touched cost no physical memory, so a large fixed size is cheap. A buffer is freed when its view
// and every subarray of it are garbage (a FinalizationRegistry; subarrays keep the view alive). When the
// memory is full, allocate returns an ordinary typed array instead (correct, copied per call).
//
// Any typed array is accepted by every kernel: an argument that is not a view of the linear memory (a caller's
// plain array) is copied into it before the call and back after, the arrays sharing one ArrayBuffer as one
// range (so aliasing views stay aliased).

import type { Backend, BackendCore, DType, FilterOperand, FloatArray, KernelName } from './backend.js';
import { allocateHost } from './backend.js';
import { BackendBase } from './backend-base.js';
import { withArgumentChecks } from './kernel-checks.js';
import { KERNEL_NAMES, KERNEL_TABLE, kernelTableId, type KernelSpec } from './kernel-table.js';
import { checkRange } from '../util/errors.js';

/** The compiled module's location in the package (dist/src/backend/ -> native/wasm/roaf.wasm). */
export const WASM_MODULE_URL = new URL('../../../native/wasm/roaf.wasm', import.meta.url);

const PAGE = 65536;
/** The default size of the linear memory: 1 GiB (untouched pages cost nothing). */
export const DEFAULT_WASM_MEMORY_BYTES = 1 << 30;
const MIN_MEMORY_MIB = 16;
const MAX_MEMORY_MIB = 4096; // wasm32 addresses 4 GiB

type KernelExport = (...args: (number | bigint)[]) => number | undefined;

/** What the module exports (native/wasm/entry.c and the generated native/wasm/wasm_kernels.inc). */
type Exports = {
  _initialize(): void;
  malloc(bytes: number): number;
  free(ptr: number): void;
  kernelTableId(): number;
  isa(): number;
  fmaPeak(seconds: number): number;
} & Partial<Record<KernelName, KernelExport>>;

export interface WasmBackendOptions {
  /** Size of the linear memory in bytes, a multiple of 64 KiB from 16 MiB to 4 GiB; default 1 GiB. */
  memoryBytes?: number;
}

/** The WASI functions the C library imports: a clock, and stderr for its messages (files are never used). */
function wasiImports(memory: () => WebAssembly.Memory): Record<string, (...args: never[]) => number> {
  const ENOSYS = 52;
  return {
    clock_time_get: (_id: number, _precision: bigint, result: number): number => {
      new DataView(memory().buffer).setBigUint64(result, BigInt(Math.round(performance.now() * 1e6)), true);
      return 0;
    },
    fd_write: (_fd: number, iovs: number, count: number, written: number): number => {
      const view = new DataView(memory().buffer);
      let text = '';
      let total = 0;
      for (let i = 0; i < count; i++) {
        const ptr = view.getUint32(iovs + 8 * i, true);
        const len = view.getUint32(iovs + 8 * i + 4, true);
        text += new TextDecoder().decode(new Uint8Array(memory().buffer, ptr, len));
        total += len;
      }
      if (text !== '') console.error(text.replace(/\n$/, ''));
      view.setUint32(written, total, true);
      return 0;
    },
    fd_close: (): number => ENOSYS,
    fd_seek: (): number => ENOSYS,
  };
}

/**
 * A float32 view of linear memory handed out by `allocate`. Its subarrays point back at it (`owner`), so the
 * allocation is freed only when no view of it is left.
 */
class LinearFloat32Array extends Float32Array {
  owner: LinearFloat32Array | undefined;
  override subarray(begin?: number, end?: number): LinearFloat32Array {
    const view = super.subarray(begin, end) as LinearFloat32Array;
    view.owner = this.owner ?? this;
    return view;
  }
}
// A Float32Array by name too: code that tells dtypes apart by constructor.name (safetensors, checkpoint
// tensors, argument-check messages) must see one.
Object.defineProperty(LinearFloat32Array, 'name', { value: 'Float32Array' });

const FILTER_DENSE = 0;
const FILTER_PERMUTATION = 1;
const FILTER_IDENTITY = 2;
const FILTER_WORDS = 7; // roaf_filter on wasm32: kind, n, matrix, perm, signs, inversePerm, inverseSigns (i32 each)
const FILTER_BYTES = 4 * FILTER_WORDS; // native/wasm/entry.c checks it

type AnyArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** One call's staging: host arrays copied into linear memory, by ArrayBuffer, and back afterwards. */
interface Staged {
  base: number; // the malloc'd block
  start: number; // byte offset in the host buffer that `base` holds
  bytes: number;
  host: ArrayBufferLike;
}

export class WasmBackend extends BackendBase {
  readonly name = 'wasm';
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

  private readonly exports: Exports;
  /** The linear memory's one ArrayBuffer: the memory never grows, so it is never detached. */
  private readonly buffer: ArrayBuffer;
  private readonly freed: FinalizationRegistry<number>;
  private warnedFull = false;

  constructor(
    module: WebAssembly.Module,
    readonly memoryBytes: number,
  ) {
    super();
    const pages = memoryBytes / PAGE;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const instance = new WebAssembly.Instance(module, {
      env: { memory },
      wasi_snapshot_preview1: wasiImports(() => memory),
    });
    this.exports = instance.exports as unknown as Exports;
    this.buffer = memory.buffer;
    this.exports._initialize();
    const built = this.cString(this.exports.kernelTableId());
    if (built !== kernelTableId()) {
      throw new Error(
        `roaf: the wasm module was built from another kernel table (${built}, not ${kernelTableId()}): rebuild it with node scripts/build-wasm.mjs`,
      );
    }
    const free = this.exports.free.bind(this.exports);
    this.freed = new FinalizationRegistry(free);
    for (const name of KERNEL_NAMES) {
      const fn = this.exports[name];
      if (fn !== undefined) (this as Record<string, unknown>)[name] = this.bindKernel(fn, KERNEL_TABLE[name]);
    }
  }

  describe(): string {
    return `wasm (${this.isa()}, 1 thread, ${this.memoryBytes / 2 ** 20} MiB memory)`;
  }

  /** The kernels' instruction set: "simd128". */
  isa(): string {
    return this.cString(this.exports.isa());
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  allocate(dtype: DType, length: number): FloatArray {
    if (dtype !== 'float32') return allocateHost(dtype, length);
    const ptr = this.exports.malloc(Math.max(4 * length, 4));
    if (ptr === 0) {
      if (!this.warnedFull) {
        this.warnedFull = true;
        console.error(
          `roaf: the wasm backend's ${this.memoryBytes / 2 ** 20} MiB of memory are full: further buffers are ordinary arrays, copied per call (raise memoryBytes / ROAF_WASM_MEMORY)`,
        );
      }
      return allocateHost(dtype, length);
    }
    const view = new LinearFloat32Array(this.buffer, ptr, length);
    view.fill(0);
    this.freed.register(view, ptr);
    return view;
  }

  /** Whether `array` is a view of this backend's linear memory (zero-copy in a kernel call). */
  inLinearMemory(array: ArrayBufferView): boolean {
    return array.buffer === this.buffer;
  }

  /** FLOPS of a dependency-free multiply-add loop on one thread: the median of three runs of `seconds`. */
  fmaPeak(seconds = 0.3): number {
    checkRange('seconds', seconds, 0.01, 10);
    const runs = [0, 1, 2].map(() => this.exports.fmaPeak(seconds)).sort((x, y) => x - y);
    return runs[1]!;
  }

  private cString(ptr: number): string {
    const bytes = new Uint8Array(this.buffer, ptr);
    return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  }

  private malloc(bytes: number, what: string): number {
    const ptr = this.exports.malloc(Math.max(bytes, 1));
    if (ptr === 0) {
      throw new RangeError(
        `roaf: the wasm backend's memory (${this.memoryBytes / 2 ** 20} MiB) has no room for ${bytes} bytes of ${what}: raise memoryBytes / ROAF_WASM_MEMORY (MiB, up to ${MAX_MEMORY_MIB})`,
      );
    }
    return ptr;
  }

  /**
   * A kernel export as a Backend method: its arguments in table order as wasm values, arrays as pointers;
   * host arrays are staged into linear memory for the call.
   */
  private bindKernel(fn: KernelExport, spec: KernelSpec): (...params: unknown[]) => unknown {
    return (...params: unknown[]): unknown => {
      const values = (
        spec.object ? params[0] : Object.fromEntries(spec.args.map((arg, i) => [arg.name, params[i]]))
      ) as Record<string, unknown>;
      // Host arrays of this call, grouped by their ArrayBuffer.
      const hosts = new Map<ArrayBufferLike, { start: number; end: number }>();
      const note = (a: AnyArray | null | undefined): void => {
        if (a === null || a === undefined || a.buffer === this.buffer) return;
        const start = a.byteOffset - (a.byteOffset % 16); // keeps every view's alignment in the staged copy
        const end = a.byteOffset + a.byteLength;
        const range = hosts.get(a.buffer);
        if (range === undefined) hosts.set(a.buffer, { start, end });
        else {
          range.start = Math.min(range.start, start);
          range.end = Math.max(range.end, end);
        }
      };
      for (const arg of spec.args) {
        const value = values[arg.name];
        if (arg.kind === 'filter') {
          const f = value as FilterOperand;
          if (f.kind === 'dense') note(f.matrix);
          if (f.kind === 'permutation') {
            note(f.signs);
            note(f.perm);
          }
        } else if (arg.kind === 'filters') {
          for (const f of value as readonly FilterOperand[]) {
            if (f.kind === 'dense') note(f.matrix);
            if (f.kind === 'permutation') {
              note(f.signs);
              note(f.perm);
            }
          }
        } else if (arg.kind !== 'size' && arg.kind !== 'scalar' && arg.kind !== 'bool') {
          note(value as AnyArray | null);
        }
      }
      const staged: Staged[] = [];
      const blocks: number[] = [];
      try {
        for (const [host, { start, end }] of hosts) {
          const bytes = end - start;
          const base = this.malloc(bytes, 'arguments');
          blocks.push(base);
          new Uint8Array(this.buffer, base, bytes).set(new Uint8Array(host, start, bytes));
          staged.push({ base, start, bytes, host });
        }
        const pointer = (a: AnyArray | null | undefined): number => {
          if (a === null || a === undefined) return 0;
          if (a.buffer === this.buffer) return a.byteOffset;
          const s = staged.find((x) => x.host === a.buffer)!;
          return s.base + (a.byteOffset - s.start);
        };
        const list: number[] = [];
        for (const arg of spec.args) {
          const value = values[arg.name];
          switch (arg.kind) {
            case 'size':
            case 'scalar':
              list.push(value as number);
              break;
            case 'bool':
              list.push(value === true ? 1 : 0);
              break;
            case 'filter': {
              const f = value as FilterOperand;
              list.push(filterKind(f), f.n, pointer(filterData(f)), pointer(filterPerm(f)));
              break;
            }
            case 'filters': {
              const filters = value as readonly FilterOperand[];
              const table = this.malloc(filters.length * FILTER_BYTES, 'filters');
              blocks.push(table);
              const words = new Int32Array(this.buffer, table, filters.length * FILTER_WORDS);
              words.fill(0); // the inverse's pointers stay NULL: the kernels invert where they need it
              filters.forEach((f, l) => {
                const at = FILTER_WORDS * l;
                words[at] = filterKind(f);
                words[at + 1] = f.n;
                words[at + 2] = f.kind === 'dense' ? pointer(f.matrix) : 0;
                words[at + 3] = pointer(filterPerm(f));
                words[at + 4] = f.kind === 'permutation' ? pointer(f.signs) : 0;
              });
              list.push(table);
              break;
            }
            default:
              list.push(pointer(value as AnyArray | null));
          }
        }
        const result = fn(...list);
        for (const s of staged)
          new Uint8Array(s.host, s.start, s.bytes).set(new Uint8Array(this.buffer, s.base, s.bytes));
        return spec.returns === 'number' ? result : undefined;
      } finally {
        for (const block of blocks) this.exports.free(block);
      }
    };
  }
}

function filterKind(f: FilterOperand): number {
  return f.kind === 'dense' ? FILTER_DENSE : f.kind === 'permutation' ? FILTER_PERMUTATION : FILTER_IDENTITY;
}
function filterData(f: FilterOperand): FloatArray | null {
  return f.kind === 'dense' ? f.matrix : f.kind === 'permutation' ? f.signs : null;
}
function filterPerm(f: FilterOperand): Int32Array | null {
  return f.kind === 'permutation' ? f.perm : null;
}

/** memoryBytes, checked: a whole number of MiB from 16 MiB to 4 GiB. */
function memorySize(options: WasmBackendOptions): number {
  const bytes = options.memoryBytes ?? DEFAULT_WASM_MEMORY_BYTES;
  const mib = checkRange('memoryBytes / 2^20 (MiB)', bytes / 2 ** 20, MIN_MEMORY_MIB, MAX_MEMORY_MIB, {
    integer: true,
  });
  return mib * 2 ** 20;
}

/** A wasm backend (with the kernel table's argument checks) on a compiled module: synchronous. */
export function createWasmBackend(module: WebAssembly.Module, options: WasmBackendOptions = {}): WasmBackendHandle {
  const raw = new WasmBackend(module, memorySize(options));
  return Object.freeze({ ...withArgumentChecks(raw), wasm: raw });
}

/** The checked Backend, and the WasmBackend behind it (isa, fmaPeak, inLinearMemory). */
export type WasmBackendHandle = Backend & { readonly wasm: WasmBackend };

/**
 * Compiles the module and creates a backend, asynchronously (what a browser must do for a module this size):
 * from `bytes` if given, else fetched from `url` (default: the module's place in the package,
 * WASM_MODULE_URL; an http(s) URL in a browser).
 */
export async function loadWasmBackend(
  options: WasmBackendOptions & { bytes?: BufferSource; url?: URL | string } = {},
): Promise<WasmBackendHandle> {
  let module: WebAssembly.Module;
  if (options.bytes !== undefined) module = await WebAssembly.compile(options.bytes);
  else {
    const response = await fetch(options.url ?? WASM_MODULE_URL);
    if (!response.ok) throw new Error(`roaf: could not fetch the wasm module ${response.url}: ${response.status}`);
    module = await WebAssembly.compile(await response.arrayBuffer());
  }
  return createWasmBackend(module, options);
}
