// The kernel table: every kernel's arguments declared once: name, kind, dtype, and the length each array
// needs as an expression of the size arguments. Everything else is driven by it:
// - the argument checks every backend runs before a kernel (kernel-checks.ts: lengths, strides, nullability,
//   dtypes, filters; overflow-proof, see there);
// - the native backend's TypeScript binding (native.ts marshals an argument object into the addon's
//   positional arguments in table order);
// - the N-API glue in C (native/src/addon_kernels.inc, written by scripts/generate-kernel-glue.mjs; a test
//   fails when it is stale), whose argument order is the C kernel's parameter order.
// docs/kernels.md explains how to add a kernel. The types below tie the table to the Backend interface: a
// kernel missing from the table, an argument name that is not a field of the kernel's argument object, or a
// positional kernel whose arity differs is a compile error.
//
// Length expressions: integers, size names, `+`, `*`, parentheses, `span(rows, cols, ld)` (the elements a
// row-major rows x cols matrix with row stride ld spans: 0 if empty, else (rows - 1)·ld + cols, and ld must
// be at least cols), and one `flag ? expr : expr` on a boolean argument. No subtraction: every expression
// grows with its operands, which is what makes the float64 evaluation overflow-proof.

import type { Backend, KernelName } from './backend.js';

/** A non-negative integer: a dimension, a count or a row stride. C type `idx` (ptrdiff_t). */
export interface SizeArg {
  readonly name: string;
  readonly kind: 'size';
}
/** A number; C type float (the model's dtype) or double where precision matters (Adam's betas and step). */
export interface ScalarArg {
  readonly name: string;
  readonly kind: 'scalar';
  readonly c: 'float' | 'double';
}
/** A boolean; C type int. */
export interface BoolArg {
  readonly name: string;
  readonly kind: 'bool';
}
/**
 * A typed array of at least `length` elements: `floats` in the call's dtype (every float array of a call
 * shares one, which the backend must support), or `float64s` / `int32s` / `uint8s` whatever the model's.
 */
export interface ArrayArg {
  readonly name: string;
  readonly kind: 'floats' | 'float64s' | 'int32s' | 'uint8s';
  readonly length: string;
  /** null means "do not compute this output". */
  readonly nullable: boolean;
}
/** One FilterOperand of width `width` (a size argument, or bound to filter.n when the kernel has none). */
export interface FilterArg {
  readonly name: string;
  readonly kind: 'filter';
  readonly width: string;
}
/** An array of `count` FilterOperands, each of width `width` (entries may repeat: a shared filter). */
export interface FiltersArg {
  readonly name: string;
  readonly kind: 'filters';
  readonly count: string;
  readonly width: string;
}

export type ArgSpec = SizeArg | ScalarArg | BoolArg | ArrayArg | FilterArg | FiltersArg;

export interface KernelSpec {
  /** true: one argument object with these fields; false: positional parameters in this order. */
  readonly object: boolean;
  /** What the kernel returns: nothing, or a float64 number. */
  readonly returns: 'void' | 'number';
  /** In the order of the C kernel's parameters. */
  readonly args: readonly ArgSpec[];
  /**
   * false: the C kernels do not have it yet; the glue leaves it out, and the native backend runs
   * BackendBase's default (fused kernels only: every core kernel must be native).
   */
  readonly native?: false;
  /**
   * A check the kinds cannot express, on the arguments by name (sizes included); returns an error message,
   * or null when the arguments are fine.
   */
  readonly rule?: (args: Readonly<Record<string, unknown>>) => string | null;
}

// ---- helpers that keep each argument to one short entry (and its name a literal type) ----

const size = <const N extends string>(name: N) => ({ name, kind: 'size' }) as const;
const float = <const N extends string>(name: N) => ({ name, kind: 'scalar', c: 'float' }) as const;
const double = <const N extends string>(name: N) => ({ name, kind: 'scalar', c: 'double' }) as const;
const bool = <const N extends string>(name: N) => ({ name, kind: 'bool' }) as const;
const floats = <const N extends string>(name: N, length: string) =>
  ({ name, kind: 'floats', length, nullable: false }) as const;
const optFloats = <const N extends string>(name: N, length: string) =>
  ({ name, kind: 'floats', length, nullable: true }) as const;
const filter = <const N extends string>(name: N, width: string) => ({ name, kind: 'filter', width }) as const;

/** Whether two typed arrays share any element (views of one buffer included). */
function overlap(x: unknown, y: unknown): boolean {
  if (!ArrayBuffer.isView(x) || !ArrayBuffer.isView(y) || x.buffer !== y.buffer) return false;
  return x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}

/** Whether any two of the arrays share memory. */
function anyOverlap(...arrays: unknown[]): boolean {
  return arrays.some((x, i) => arrays.slice(i + 1).some((y) => overlap(x, y)));
}

/** The arguments of the matrix products (gemm and gemmBf16). */
const GEMM_ARGS = [
  bool('transA'),
  bool('transB'),
  size('M'),
  size('N'),
  size('K'),
  float('alpha'),
  floats('A', 'transA ? span(K, M, lda) : span(M, K, lda)'),
  size('lda'),
  floats('B', 'transB ? span(N, K, ldb) : span(K, N, ldb)'),
  size('ldb'),
  float('beta'),
  floats('C', 'span(M, N, ldc)'),
  size('ldc'),
] as const;

/** The arguments of the ROAF layer forward (float32 and bf16 products). */
const ROAF_LAYER_FORWARD_ARGS = [
  size('B'),
  size('N'),
  float('alpha'),
  float('beta'),
  filter('filter', 'N'),
  floats('x', 'B*N'),
  floats('W', 'N*N'),
  floats('b', 'N'),
  floats('a', 'B*N'),
  floats('y', 'B*N'),
] as const;

/** The arguments of the ROAF layer backward (float32 and bf16 products). */
const ROAF_LAYER_BACKWARD_ARGS = [
  size('B'),
  size('N'),
  float('alpha'),
  float('beta'),
  filter('filter', 'N'),
  floats('x', 'B*N'),
  floats('a', 'B*N'),
  floats('W', 'N*N'),
  floats('gy', 'B*N'),
  optFloats('gx', 'B*N'),
  floats('gW', 'N*N'),
  floats('gb', 'N'),
  floats('gz', 'B*N'),
] as const;

/** The arguments of the ROAF stack forward (float32 and bf16 products). */
const ROAF_MLP_FORWARD_ARGS = [
  size('L'),
  size('B'),
  size('N'),
  float('alpha'),
  float('beta'),
  { name: 'filters', kind: 'filters', count: 'L', width: 'N' },
  floats('Ws', 'L*N*N'),
  floats('bs', 'L*N'),
  floats('xs', '(L+1)*B*N'),
  floats('as', 'L*B*N'),
] as const;

/** The arguments of the ROAF stack backward (float32 and bf16 products). */
const ROAF_MLP_BACKWARD_ARGS = [
  size('L'),
  size('B'),
  size('N'),
  float('alpha'),
  float('beta'),
  { name: 'filters', kind: 'filters', count: 'L', width: 'N' },
  floats('Ws', 'L*N*N'),
  floats('xs', '(L+1)*B*N'),
  floats('as', 'L*B*N'),
  floats('gy', 'B*N'),
  floats('gWs', 'L*N*N'),
  floats('gbs', 'L*N'),
  { name: 'gradSquares', kind: 'float64s', length: 'L+1', nullable: true },
] as const;

/** The arguments of the ROAF cell forward (float32 and bf16 products). */
const ROAF_CELL_FORWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  float('alpha'),
  float('beta'),
  filter('filter', 'N'),
  floats('xs', 'T*B*D'),
  floats('W', 'N*N'),
  floats('U', 'N*D'),
  floats('b', 'N'),
  floats('hs', '(T+1)*B*N'),
  floats('as', 'T*B*N'),
] as const;

/** The arguments of the ROAF cell backward (float32 and bf16 products). */
const ROAF_CELL_BACKWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  float('alpha'),
  float('beta'),
  filter('filter', 'N'),
  floats('xs', 'T*B*D'),
  floats('W', 'N*N'),
  floats('U', 'N*D'),
  floats('hs', '(T+1)*B*N'),
  floats('as', 'T*B*N'),
  floats('ghs', 'T*B*N'),
  floats('gzs', 'T*B*N'),
  floats('gW', 'N*N'),
  floats('gU', 'N*D'),
  floats('gb', 'N'),
  optFloats('gh0', 'B*N'),
  optFloats('gxs', 'T*B*D'),
  bool('lastStepOnly'),
] as const;

/** The arguments of the LSTM forward (float32 and bf16 products). */
const LSTM_FORWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  floats('xs', 'T*B*D'),
  floats('Wx', '4*N*D'),
  floats('Wh', '4*N*N'),
  floats('b', '4*N'),
  floats('hs', '(T+1)*B*N'),
  floats('cs', '(T+1)*B*N'),
  floats('gates', 'T*B*4*N'),
] as const;

/** The arguments of the LSTM backward (float32 and bf16 products). */
const LSTM_BACKWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  floats('xs', 'T*B*D'),
  floats('Wx', '4*N*D'),
  floats('Wh', '4*N*N'),
  floats('hs', '(T+1)*B*N'),
  floats('cs', '(T+1)*B*N'),
  floats('gates', 'T*B*4*N'),
  floats('ghs', 'T*B*N'),
  floats('gGates', 'T*B*4*N'),
  floats('gWx', '4*N*D'),
  floats('gWh', '4*N*N'),
  floats('gb', '4*N'),
  optFloats('gxs', 'T*B*D'),
  bool('lastStepOnly'),
] as const;

/** The arguments of the GRU forward (float32 and bf16 products). */
const GRU_FORWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  floats('xs', 'T*B*D'),
  floats('Wx', '3*N*D'),
  floats('Wh', '3*N*N'),
  floats('bx', '3*N'),
  floats('bh', '3*N'),
  floats('hs', '(T+1)*B*N'),
  floats('gates', 'T*B*3*N'),
  floats('hn', 'T*B*N'),
] as const;

/** The arguments of the GRU backward (float32 and bf16 products). */
const GRU_BACKWARD_ARGS = [
  size('T'),
  size('B'),
  size('D'),
  size('N'),
  floats('xs', 'T*B*D'),
  floats('Wx', '3*N*D'),
  floats('Wh', '3*N*N'),
  floats('hs', '(T+1)*B*N'),
  floats('gates', 'T*B*3*N'),
  floats('hn', 'T*B*N'),
  floats('ghs', 'T*B*N'),
  floats('gGates', 'T*B*3*N'),
  floats('gHn', 'T*B*N'),
  floats('gWx', '3*N*D'),
  floats('gWh', '3*N*N'),
  floats('gbx', '3*N'),
  floats('gbh', '3*N'),
  optFloats('gxs', 'T*B*D'),
  bool('lastStepOnly'),
] as const;

export const KERNEL_TABLE = {
  // ---- core: dense linear algebra and row ops ----
  gemm: { object: true, returns: 'void', args: GEMM_ARGS },
  // The same product on operands rounded to bf16, with float32 accumulation (docs/precision.md).
  gemmBf16: { object: true, returns: 'void', args: GEMM_ARGS },
  addRowVector: {
    object: false,
    returns: 'void',
    args: [size('rows'), size('n'), floats('y', 'rows*n'), floats('bias', 'n')],
  },
  sumRows: {
    object: false,
    returns: 'void',
    args: [size('rows'), size('n'), floats('x', 'rows*n'), floats('out', 'n')],
  },

  // ---- core: elementwise and reductions ----
  tanh: { object: false, returns: 'void', args: [size('n'), floats('x', 'n'), floats('out', 'n')] },
  tanhBackward: {
    object: false,
    returns: 'void',
    args: [size('n'), floats('a', 'n'), floats('gy', 'n'), floats('gx', 'n')],
  },
  sumSquares: { object: false, returns: 'number', args: [size('n'), floats('x', 'n')] },
  scale: { object: false, returns: 'void', args: [size('n'), floats('x', 'n'), float('s')] },
  axpy: { object: false, returns: 'void', args: [size('n'), float('s'), floats('x', 'n'), floats('y', 'n')] },

  // ---- core: filter ----
  applyFilter: {
    object: true,
    returns: 'void',
    args: [
      filter('filter', 'N'),
      bool('transpose'),
      size('B'),
      float('alpha'),
      floats('x', 'B*N'),
      float('betaY'),
      floats('y', 'B*N'),
    ],
    rule: (a) => (overlap(a.x, a.y) ? 'x and y must not overlap' : null),
  },

  // ---- fused: ROAF layer, stack and cell ----
  roafLayerForward: { object: true, returns: 'void', args: ROAF_LAYER_FORWARD_ARGS },
  roafLayerBackward: { object: true, returns: 'void', args: ROAF_LAYER_BACKWARD_ARGS },
  roafMlpForward: { object: true, returns: 'void', args: ROAF_MLP_FORWARD_ARGS },
  roafMlpBackward: { object: true, returns: 'void', args: ROAF_MLP_BACKWARD_ARGS },
  roafCellForward: { object: true, returns: 'void', args: ROAF_CELL_FORWARD_ARGS },
  roafCellBackward: { object: true, returns: 'void', args: ROAF_CELL_BACKWARD_ARGS },

  // The layer, stack and cell with bf16 products (docs/precision.md): the same arguments as the float32
  // kernels. One layer runs as BackendBase's default on the native gemmBf16 (a few calls per layer).
  roafLayerForwardBf16: { object: true, returns: 'void', args: ROAF_LAYER_FORWARD_ARGS, native: false },
  roafLayerBackwardBf16: { object: true, returns: 'void', args: ROAF_LAYER_BACKWARD_ARGS, native: false },
  roafMlpForwardBf16: { object: true, returns: 'void', args: ROAF_MLP_FORWARD_ARGS },
  roafMlpBackwardBf16: { object: true, returns: 'void', args: ROAF_MLP_BACKWARD_ARGS },
  roafCellForwardBf16: { object: true, returns: 'void', args: ROAF_CELL_FORWARD_ARGS },
  roafCellBackwardBf16: { object: true, returns: 'void', args: ROAF_CELL_BACKWARD_ARGS },

  // ---- fused: LSTM and GRU ----
  lstmForward: { object: true, returns: 'void', args: LSTM_FORWARD_ARGS },
  lstmBackward: { object: true, returns: 'void', args: LSTM_BACKWARD_ARGS },
  gruForward: { object: true, returns: 'void', args: GRU_FORWARD_ARGS },
  gruBackward: { object: true, returns: 'void', args: GRU_BACKWARD_ARGS },
  // The LSTM and GRU with bf16 products (docs/precision.md): the same arguments as the float32 kernels.
  lstmForwardBf16: { object: true, returns: 'void', args: LSTM_FORWARD_ARGS },
  lstmBackwardBf16: { object: true, returns: 'void', args: LSTM_BACKWARD_ARGS },
  gruForwardBf16: { object: true, returns: 'void', args: GRU_FORWARD_ARGS },
  gruBackwardBf16: { object: true, returns: 'void', args: GRU_BACKWARD_ARGS },

  // ---- core: losses ----
  softmaxCrossEntropy: {
    object: true,
    returns: 'number',
    args: [
      size('B'),
      size('K'),
      floats('logits', 'B*K'),
      { name: 'labels', kind: 'int32s', length: 'B', nullable: false },
      float('gradScale'),
      optFloats('grad', 'B*K'),
      { name: 'correct', kind: 'uint8s', length: 'B', nullable: true },
    ],
    rule: ({ B, K, labels }) => {
      if ((B as number) > 0 && K === 0) return `K must be at least 1 when B > 0, got ${String(K)}`;
      const entries = labels as Int32Array;
      for (let r = 0; r < (B as number); r++) {
        const label = entries[r]!;
        if (label < 0 || label >= (K as number)) return `labels[${r}] = ${label} is outside [0, K = ${String(K)})`;
      }
      return null;
    },
  },
  squaredError: {
    object: true,
    returns: 'number',
    args: [
      size('B'),
      size('K'),
      floats('pred', 'B*K'),
      floats('target', 'B*K'),
      float('gradScale'),
      optFloats('grad', 'B*K'),
    ],
  },

  // ---- core: optimiser updates ----
  adamUpdate: {
    object: true,
    returns: 'void',
    args: [
      size('n'),
      floats('params', 'n'),
      floats('grads', 'n'),
      floats('m', 'n'),
      floats('v', 'n'),
      // beta1, beta2 in double: their complements 1 - beta are formed before rounding (0.999f is not 0.999).
      float('lr'),
      double('beta1'),
      double('beta2'),
      float('eps'),
      float('weightDecay'),
      double('t'),
    ],
  },
  sgdUpdate: {
    object: true,
    returns: 'void',
    args: [
      size('n'),
      floats('params', 'n'),
      floats('grads', 'n'),
      floats('velocity', 'n'),
      float('lr'),
      float('momentum'),
    ],
  },

  // ---- fused: building the dense filters ----
  orthogonalFromQr: {
    object: true,
    returns: 'void',
    args: [
      size('count'),
      size('N'),
      bool('signFix'),
      { name: 'a', kind: 'float64s', length: 'count*N*N', nullable: false },
      { name: 'q', kind: 'float64s', length: 'count*N*N', nullable: false },
    ],
    rule: (a) => (overlap(a.a, a.q) ? 'a and q must not overlap' : null),
  },

  // ---- fused: diagnostics ----
  productSpectrumPush: {
    object: true,
    returns: 'void',
    args: [
      size('n'),
      bool('first'),
      { name: 'J', kind: 'float64s', length: 'n*n', nullable: false },
      { name: 'reflectors', kind: 'float64s', length: 'n*n', nullable: false },
      { name: 'tau', kind: 'float64s', length: 'n', nullable: false },
      { name: 'lyapunovSums', kind: 'float64s', length: 'n', nullable: false },
      { name: 'm', kind: 'float64s', length: 'n*n', nullable: false },
      { name: 's', kind: 'float64s', length: 'n', nullable: false },
      { name: 'work', kind: 'float64s', length: '3*n*n+n', nullable: false },
    ],
    rule: (a) =>
      anyOverlap(a.J, a.reflectors, a.tau, a.lyapunovSums, a.m, a.s, a.work)
        ? 'J, reflectors, tau, lyapunovSums, m, s and work must not overlap'
        : null,
  },
} as const satisfies Record<KernelName, KernelSpec>;

export type KernelTable = typeof KERNEL_TABLE;

/** Every kernel, in table order. */
export const KERNEL_NAMES = Object.keys(KERNEL_TABLE) as KernelName[];

/**
 * A fingerprint of everything the C glue depends on (each kernel's name, arguments, kinds, C types and order),
 * FNV-1a over its JSON, as 8 hex digits. The generated glue embeds it and the addon exports it, so the native
 * backend refuses an addon built from another table instead of passing it arguments in the wrong order.
 */
export function kernelTableId(): string {
  const text = JSON.stringify(KERNEL_NAMES.map((name) => [name, KERNEL_TABLE[name].returns, KERNEL_TABLE[name].args]));
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

// ---- compile-time agreement of the table with the Backend interface ----

type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type TableArgNames<K extends KernelName> = KernelTable[K]['args'][number]['name'];
type ObjectKernel = { [K in KernelName]: KernelTable[K]['object'] extends true ? K : never }[KernelName];
type PositionalKernel = Exclude<KernelName, ObjectKernel>;
/** Kernels whose table arguments are not exactly the fields of their argument object. */
type FieldMismatch = {
  [K in ObjectKernel]: Equal<TableArgNames<K>, keyof Parameters<Backend[K]>[0] & string> extends true ? never : K;
}[ObjectKernel];
/** Positional kernels whose table arity differs from the method's. */
type ArityMismatch = {
  [K in PositionalKernel]: Equal<Parameters<Backend[K]>['length'], KernelTable[K]['args']['length']> extends true
    ? never
    : K;
}[PositionalKernel];
/**
 * A compile error naming the kernel when the table and the interface disagree. A tuple and an object rather
 * than a union of the two mismatch types, which are both `never` when all is well.
 */
export const tableMatchesBackend: [FieldMismatch, ArityMismatch] extends [never, never]
  ? true
  : { fieldMismatch: FieldMismatch; arityMismatch: ArityMismatch } = true;
