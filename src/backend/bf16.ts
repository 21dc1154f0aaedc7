// bf16 products with float32 everything else: what `--precision bf16` runs a model on (docs/precision.md).
//
// bf16 is float32 with its mantissa cut to 8 significant bits (the sign, the 8 exponent bits and the top 7
// stored mantissa bits of a float32): the same range, unit roundoff u = 2^-8. Here it is only ever a product
// operand. `withBf16Products(backend)` gives a backend whose matrix products (`gemm`) are the backend's
// `gemmBf16`, and whose fused kernels (ROAF layer, stack and cell, LSTM, GRU) are the backend's own bf16
// versions (`roafCellForwardBf16`, ...: fused C on the native backend, BackendBase's defaults on gemmBf16
// elsewhere): every product of a model, forward and backward (weight gradients included), rounds its operands to
// bf16 and accumulates in float32, while the weights, the recurrent state, tanh and the gates, the filters
// (applyFilter, float32: an orthogonal filter rounded to bf16 would no longer be orthogonal, and its error
// would compound over every step or layer), the losses and the optimiser stay float32.

import type {
  AdamUpdateArgs,
  ApplyFilterArgs,
  Backend,
  DType,
  FloatArray,
  GemmArgs,
  GruBackwardArgs,
  GruForwardArgs,
  LstmBackwardArgs,
  LstmForwardArgs,
  RoafCellBackwardArgs,
  RoafCellForwardArgs,
  RoafLayerBackwardArgs,
  RoafLayerForwardArgs,
  RoafMlpBackwardArgs,
  RoafMlpForwardArgs,
  SgdUpdateArgs,
  SoftmaxCrossEntropyArgs,
  SquaredErrorArgs,
} from './backend.js';
import { BackendBase } from './backend-base.js';
import { withArgumentChecks } from './kernel-checks.js';
import { nativeInfo } from './native.js';
import { UsageError } from '../util/errors.js';

import type { Precision } from './names.js';
export { PRECISIONS, type Precision } from './names.js';

// The rounding itself lives in bf16-round.ts (no Node built-ins: the reference backend and the browser use it).
export { bf16Round, roundToBf16 } from './bf16-round.js';

/**
 * A backend that runs every matrix product of `core` on bf16 operands (core.gemmBf16) and every fused kernel
 * as BackendBase's default on those products; the other kernels and the memory are core's. Same name as
 * core (what it is runs on core's kernels); float32 only.
 */
class Bf16Products extends BackendBase {
  readonly name: string;

  constructor(readonly core: Backend) {
    super();
    this.name = core.name;
  }

  describe(): string {
    return `${this.core.describe()}, bf16 products`;
  }
  supports(dtype: DType): boolean {
    return dtype === 'float32' && this.core.supports(dtype);
  }
  allocate(dtype: DType, length: number): FloatArray {
    return this.core.allocate(dtype, length);
  }
  gemm(args: GemmArgs): void {
    this.core.gemmBf16(args);
  }
  gemmBf16(args: GemmArgs): void {
    this.core.gemmBf16(args);
  }
  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void {
    this.core.addRowVector(rows, n, y, bias);
  }
  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void {
    this.core.sumRows(rows, n, x, out);
  }
  tanh(n: number, x: FloatArray, out: FloatArray): void {
    this.core.tanh(n, x, out);
  }
  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void {
    this.core.tanhBackward(n, a, gy, gx);
  }
  sumSquares(n: number, x: FloatArray): number {
    return this.core.sumSquares(n, x);
  }
  scale(n: number, x: FloatArray, s: number): void {
    this.core.scale(n, x, s);
  }
  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void {
    this.core.axpy(n, s, x, y);
  }
  applyFilter(args: ApplyFilterArgs): void {
    this.core.applyFilter(args);
  }
  // Every fused kernel: the core's bf16 version (the stack, the cell, the LSTM and the GRU fused in C on the
  // native backend; the others BackendBase's defaults on gemmBf16, the same arithmetic as this class's own
  // defaults would be).
  override roafLayerForward(args: RoafLayerForwardArgs): void {
    this.core.roafLayerForwardBf16(args);
  }
  override roafLayerBackward(args: RoafLayerBackwardArgs): void {
    this.core.roafLayerBackwardBf16(args);
  }
  override roafMlpForward(args: RoafMlpForwardArgs): void {
    this.core.roafMlpForwardBf16(args);
  }
  override roafMlpBackward(args: RoafMlpBackwardArgs): void {
    this.core.roafMlpBackwardBf16(args);
  }
  override roafLayerForwardBf16(args: RoafLayerForwardArgs): void {
    this.core.roafLayerForwardBf16(args);
  }
  override roafLayerBackwardBf16(args: RoafLayerBackwardArgs): void {
    this.core.roafLayerBackwardBf16(args);
  }
  override roafMlpForwardBf16(args: RoafMlpForwardArgs): void {
    this.core.roafMlpForwardBf16(args);
  }
  override roafMlpBackwardBf16(args: RoafMlpBackwardArgs): void {
    this.core.roafMlpBackwardBf16(args);
  }
  override lstmForward(args: LstmForwardArgs): void {
    this.core.lstmForwardBf16(args);
  }
  override lstmBackward(args: LstmBackwardArgs): void {
    this.core.lstmBackwardBf16(args);
  }
  override gruForward(args: GruForwardArgs): void {
    this.core.gruForwardBf16(args);
  }
  override gruBackward(args: GruBackwardArgs): void {
    this.core.gruBackwardBf16(args);
  }
  override lstmForwardBf16(args: LstmForwardArgs): void {
    this.core.lstmForwardBf16(args);
  }
  override lstmBackwardBf16(args: LstmBackwardArgs): void {
    this.core.lstmBackwardBf16(args);
  }
  override gruForwardBf16(args: GruForwardArgs): void {
    this.core.gruForwardBf16(args);
  }
  override gruBackwardBf16(args: GruBackwardArgs): void {
    this.core.gruBackwardBf16(args);
  }
  override roafCellForward(args: RoafCellForwardArgs): void {
    this.core.roafCellForwardBf16(args);
  }
  override roafCellBackward(args: RoafCellBackwardArgs): void {
    this.core.roafCellBackwardBf16(args);
  }
  override roafCellForwardBf16(args: RoafCellForwardArgs): void {
    this.core.roafCellForwardBf16(args);
  }
  override roafCellBackwardBf16(args: RoafCellBackwardArgs): void {
    this.core.roafCellBackwardBf16(args);
  }
  softmaxCrossEntropy(args: SoftmaxCrossEntropyArgs): number {
    return this.core.softmaxCrossEntropy(args);
  }
  squaredError(args: SquaredErrorArgs): number {
    return this.core.squaredError(args);
  }
  adamUpdate(args: AdamUpdateArgs): void {
    this.core.adamUpdate(args);
  }
  sgdUpdate(args: SgdUpdateArgs): void {
    this.core.sgdUpdate(args);
  }
}

/** The wrapper of each backend, and the set of wrappers. */
const wrappers = new WeakMap<Backend, Backend>();
const isWrapper = new WeakSet<Backend>();

/**
 * `backend` with bf16 products (see Bf16Products), behind the kernel table's argument checks; one wrapper per
 * backend, and a wrapper is returned as it is.
 */
export function withBf16Products(backend: Backend): Backend {
  if (isWrapper.has(backend)) return backend;
  let w = wrappers.get(backend);
  if (w === undefined) {
    w = withArgumentChecks(new Bf16Products(backend));
    wrappers.set(backend, w);
    isWrapper.add(w);
  }
  return w;
}

/**
 * The backend a model of this precision runs on: `backend` itself for float32. bf16 needs float32, and on the
 * native backend an instruction set that runs `vdpbf16ps` (AVX512_BF16): elsewhere its products would run on
 * the portable C arithmetic, several times slower than float32, so it is refused rather than run slowly.
 */
export function backendForPrecision(backend: Backend, precision: Precision, dtype: DType = 'float32'): Backend {
  if (precision === 'float32') return backend;
  if (dtype !== 'float32') throw new UsageError(`--precision bf16 needs --dtype float32, got --dtype ${dtype}`);
  if (backend.name === 'native') {
    const info = nativeInfo();
    if (info !== null && !info.bf16) {
      throw new UsageError(
        `--precision bf16 needs a CPU with AVX512_BF16 (the avx512_bf16 flag of /proc/cpuinfo) and the avx512 ` +
          `instruction set; this native backend (instruction set ${info.isa}) does not run vdpbf16ps: use ` +
          `--precision float32, or --backend reference (the bf16 arithmetic in TypeScript, slow)`,
      );
    }
  }
  return withBf16Products(backend);
}
