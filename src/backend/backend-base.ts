// BackendBase: the fused kernels (ROAF layer, ROAF MLP stack, ROAF cell, LSTM, GRU) written once on the
// backend core through `this`, and the QR that draws the dense filters (plain float64 TypeScript, which needs no
// core kernel: it is what every backend's version must equal bit for bit). A backend extends it, implements the core (gemm, row and elementwise ops,
// applyFilter, losses, optimiser updates, allocate) and inherits every fused kernel: a backend whose only
// fast kernel is `gemm` is fast wherever the fused kernels spend their time. It overrides a fused kernel when
// it has a better one (the native backend overrides all of them with C).
//
// These defaults are also the specification of the fused kernels: the reference backend is the plain
// TypeScript core plus exactly this code (docs/math.md derives the gradients). The pointwise parts (the
// gates of the LSTM and GRU, beta · a) are loops over the buffers, which every backend's buffers allow
// (typed arrays, or views of a WebAssembly memory); everything a product costs goes through the core.

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
  OrthogonalFromQrArgs,
  ProductSpectrumPushArgs,
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
import { productSpectrumPush } from '../diagnostics/product-spectrum.js';
import { orthogonalFromQr } from '../nn/filter.js';
import { dtypeOf } from './backend.js';

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * ∂loss/∂h_{t-1} through the recurrent product of one step of a gated cell: C = A·Wh + beta·C, with A the
 * step's recurrent-side gate gradients (B, G), Wh (G, N), C (B, N).
 */
export function recurrentInputGradient(
  gemm: (args: GemmArgs) => void,
  B: number,
  N: number,
  G: number,
  A: FloatArray,
  Wh: FloatArray,
  beta: number,
  C: FloatArray,
): void {
  gemm({ transA: false, transB: false, M: B, N, K: G, alpha: 1, A, lda: G, B: Wh, ldb: N, beta, C, ldc: N });
}

/**
 * The pointwise part of one step of the LSTM's backward (the reference's, and the diagnostics' gradient
 * curve's): from ∂loss/∂h_t `gh` and ∂loss/∂c_t carried from step t+1 `gc` (both (B, N)), the gates'
 * pre-activation gradients `gg` (B, 4N); `gc` becomes ∂loss/∂c_{t-1}. `gates` (B, 4N) [i, f, g, o] and
 * `cPrev`, `cNext` (c_{t-1}, c_t; (B, N)) are the forward's saved state.
 */
export function lstmStepBackward(
  B: number,
  N: number,
  gates: FloatArray,
  cPrev: FloatArray,
  cNext: FloatArray,
  gh: FloatArray,
  gc: FloatArray,
  gg: FloatArray,
): void {
  const G = 4 * N;
  for (let r = 0; r < B; r++) {
    const go = r * G;
    for (let j = 0; j < N; j++) {
      const at = r * N + j;
      const i = gates[go + j]!,
        f = gates[go + N + j]!,
        c2 = gates[go + 2 * N + j]!,
        o = gates[go + 3 * N + j]!;
      const tc = Math.tanh(cNext[at]!);
      const ghj = gh[at]!;
      const gcTotal = gc[at]! + ghj * o * (1 - tc * tc);
      gg[go + j] = gcTotal * c2 * i * (1 - i);
      gg[go + N + j] = gcTotal * cPrev[at]! * f * (1 - f);
      gg[go + 2 * N + j] = gcTotal * i * (1 - c2 * c2);
      gg[go + 3 * N + j] = ghj * tc * o * (1 - o);
      gc[at] = gcTotal * f;
    }
  }
}

/**
 * The pointwise part of one step of the GRU's backward: from ∂loss/∂h_t `gh` (B, N), the input-side
 * pre-activation gradients `gg` [r, z, n] (B, 3N), ∂loss/∂(W_hn h + b_hn) `gHn` (B, N), and the recurrent
 * side `ghRec` [gr, gz, gn ⊙ r] (B, 3N), whose product with Wh plus gruUpdateGateCarry is ∂loss/∂h_{t-1}.
 * `gates` (B, 3N), `hPrev` (h_{t-1}) and `hn` (B, N) are the forward's saved state.
 */
export function gruStepBackward(
  B: number,
  N: number,
  gates: FloatArray,
  hPrev: FloatArray,
  hn: FloatArray,
  gh: FloatArray,
  gg: FloatArray,
  gHn: FloatArray,
  ghRec: FloatArray,
): void {
  const G = 3 * N;
  for (let r = 0; r < B; r++) {
    const go = r * G;
    for (let j = 0; j < N; j++) {
      const at = r * N + j;
      const rg = gates[go + j]!,
        z = gates[go + N + j]!,
        n = gates[go + 2 * N + j]!;
      const ghj = gh[at]!;
      const gn = ghj * (1 - z) * (1 - n * n);
      const gz = ghj * (hPrev[at]! - n) * z * (1 - z);
      const gr = gn * hn[at]! * rg * (1 - rg);
      gg[go + j] = gr;
      gg[go + N + j] = gz;
      gg[go + 2 * N + j] = gn;
      gHn[at] = gn * rg;
      ghRec[go + j] = gr;
      ghRec[go + N + j] = gz;
      ghRec[go + 2 * N + j] = gn * rg;
    }
  }
}

/** The GRU's direct path h_{t-1} → h_t: ghPrev += gh ⊙ z (all (B, N); `gates` (B, 3N)). */
export function gruUpdateGateCarry(B: number, N: number, gates: FloatArray, gh: FloatArray, ghPrev: FloatArray): void {
  for (let r = 0; r < B; r++) {
    for (let j = 0; j < N; j++) ghPrev[r * N + j] = ghPrev[r * N + j]! + gh[r * N + j]! * gates[r * 3 * N + N + j]!;
  }
}

export abstract class BackendBase implements Backend {
  abstract readonly name: string;
  abstract describe(): string;
  abstract supports(dtype: DType): boolean;
  abstract allocate(dtype: DType, length: number): FloatArray;
  abstract gemm(args: GemmArgs): void;
  abstract gemmBf16(args: GemmArgs): void;
  abstract addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void;
  abstract sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void;
  abstract tanh(n: number, x: FloatArray, out: FloatArray): void;
  abstract tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void;
  abstract sumSquares(n: number, x: FloatArray): number;
  abstract scale(n: number, x: FloatArray, s: number): void;
  abstract axpy(n: number, s: number, x: FloatArray, y: FloatArray): void;
  abstract applyFilter(args: ApplyFilterArgs): void;
  abstract softmaxCrossEntropy(args: SoftmaxCrossEntropyArgs): number;
  abstract squaredError(args: SquaredErrorArgs): number;
  abstract adamUpdate(args: AdamUpdateArgs): void;
  abstract sgdUpdate(args: SgdUpdateArgs): void;

  /** Work buffers of the defaults, by slot and dtype: grown when too small, never shrunk, never freed. */
  private readonly workBuffers = new Map<string, FloatArray>();

  /**
   * The dtype the defaults keep their own intermediates in (the GRU's recurrent projections and gradient rows,
   * the LSTM's carried cell gradient) for a model of `dtype`: the model's dtype here; the reference says
   * float64, as it computes in doubles and rounds only on storing into a caller's buffer.
   */
  protected workDType(dtype: DType): DType {
    return dtype;
  }

  /**
   * A work buffer of `length` values for a default kernel, contents unspecified. Reused from call to call, so a
   * backend that owns its memory (which nothing frees behind its back, unlike JavaScript's) does not leak it.
   * `slot` names the buffer; one kernel never asks for the same slot twice.
   */
  protected scratch(slot: string, dtype: DType, length: number): FloatArray {
    const key = `${slot}:${dtype}`;
    let buffer = this.workBuffers.get(key);
    if (buffer === undefined || buffer.length < length) {
      buffer = this.allocate(dtype, length);
      this.workBuffers.set(key, buffer);
    }
    return buffer.subarray(0, length);
  }

  // ---- ROAF layer: y = alpha O x + beta tanh(W x + b) ----

  roafLayerForward(args: RoafLayerForwardArgs): void {
    this.layerForward((g) => this.gemm(g), args);
  }

  /**
   * The layer forward with its product on `gemm` (this.gemm, or this.gemmBf16 for roafLayerForwardBf16); every
   * other kernel, the filter's product included, is this backend's own.
   */
  private layerForward(
    gemm: (args: GemmArgs) => void,
    { B, N, alpha, beta, filter, x, W, b, a, y }: RoafLayerForwardArgs,
  ): void {
    // z = x Wᵀ + b, written into a and activated there.
    gemm({
      transA: false,
      transB: true,
      M: B,
      N,
      K: N,
      alpha: 1,
      A: x,
      lda: N,
      B: W,
      ldb: N,
      beta: 0,
      C: a,
      ldc: N,
    });
    this.addRowVector(B, N, a, b);
    this.tanh(B * N, a, a);
    for (let i = 0; i < B * N; i++) y[i] = beta * a[i]!;
    if (alpha !== 0) this.applyFilter({ filter, transpose: false, B, alpha, x, betaY: 1, y });
  }

  roafLayerBackward(args: RoafLayerBackwardArgs): void {
    this.layerBackward((g) => this.gemm(g), args);
  }

  /** The layer backward with its products on `gemm`, as layerForward. */
  private layerBackward(
    gemm: (args: GemmArgs) => void,
    { B, N, alpha, beta, filter, x, a, W, gy, gx, gW, gb, gz }: RoafLayerBackwardArgs,
  ): void {
    for (let i = 0; i < B * N; i++) gz[i] = beta * gy[i]! * (1 - a[i]! * a[i]!);
    // gW += gzᵀ x
    gemm({
      transA: true,
      transB: false,
      M: N,
      N,
      K: B,
      alpha: 1,
      A: gz,
      lda: N,
      B: x,
      ldb: N,
      beta: 1,
      C: gW,
      ldc: N,
    });
    this.sumRows(B, N, gz, gb);
    if (gx === null) return;
    // gx = gz W + alpha Oᵀ gy
    gemm({
      transA: false,
      transB: false,
      M: B,
      N,
      K: N,
      alpha: 1,
      A: gz,
      lda: N,
      B: W,
      ldb: N,
      beta: 0,
      C: gx,
      ldc: N,
    });
    if (alpha !== 0) this.applyFilter({ filter, transpose: true, B, alpha, x: gy, betaY: 1, y: gx });
  }

  // ---- ROAF MLP: the L layers of a stack, one after the other ----

  roafMlpForward(args: RoafMlpForwardArgs): void {
    this.mlpForward((layer) => this.roafLayerForward(layer), args);
  }

  /** The stack forward on `layer` (this.roafLayerForward, or roafLayerForwardBf16). */
  private mlpForward(
    layer: (args: RoafLayerForwardArgs) => void,
    { L, B, N, alpha, beta, filters, Ws, bs, xs, as }: RoafMlpForwardArgs,
  ): void {
    const size = B * N;
    for (let l = 0; l < L; l++) {
      layer({
        B,
        N,
        alpha,
        beta,
        filter: filters[l]!,
        x: xs.subarray(l * size, (l + 1) * size),
        W: Ws.subarray(l * N * N, (l + 1) * N * N),
        b: bs.subarray(l * N, (l + 1) * N),
        a: as.subarray(l * size, (l + 1) * size),
        y: xs.subarray((l + 1) * size, (l + 2) * size),
      });
    }
  }

  roafMlpBackward(args: RoafMlpBackwardArgs): void {
    this.mlpBackward((layer) => this.roafLayerBackward(layer), args);
  }

  /** The stack backward on `layer` (this.roafLayerBackward, or roafLayerBackwardBf16). */
  private mlpBackward(
    layer: (args: RoafLayerBackwardArgs) => void,
    { L, B, N, alpha, beta, filters, Ws, xs, as, gy, gWs, gbs, gradSquares }: RoafMlpBackwardArgs,
  ): void {
    const size = B * N;
    // Two buffers of the model's dtype take turns as ∂loss/∂x_{l+1} and ∂loss/∂x_l, as the per-layer path does.
    const dtype = dtypeOf(gy);
    let g = this.scratch('roafMlpBackward.g', dtype, size);
    let gx = this.scratch('roafMlpBackward.gx', dtype, size);
    const gz = this.scratch('roafMlpBackward.gz', dtype, size);
    g.set(gy.subarray(0, size));
    for (let l = L - 1; l >= 0; l--) {
      if (gradSquares !== null) gradSquares[l + 1] = this.sumSquares(size, g);
      layer({
        B,
        N,
        alpha,
        beta,
        filter: filters[l]!,
        x: xs.subarray(l * size, (l + 1) * size),
        a: as.subarray(l * size, (l + 1) * size),
        W: Ws.subarray(l * N * N, (l + 1) * N * N),
        gy: g,
        gx,
        gW: gWs.subarray(l * N * N, (l + 1) * N * N),
        gb: gbs.subarray(l * N, (l + 1) * N),
        gz,
      });
      [g, gx] = [gx, g];
    }
    gy.set(g);
    if (gradSquares !== null) gradSquares[0] = this.sumSquares(size, gy);
  }

  // ---- ROAF cell over a whole sequence: h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b) ----

  roafCellForward(args: RoafCellForwardArgs): void {
    this.cellForward((g) => this.gemm(g), args);
  }

  /**
   * The cell forward with its products on `gemm` (this.gemm, or this.gemmBf16 for roafCellForwardBf16); every
   * other kernel, the filter's product included, is this backend's own.
   */
  private cellForward(
    gemm: (args: GemmArgs) => void,
    { T, B, D, N, alpha, beta, filter, xs, W, U, b, hs, as }: RoafCellForwardArgs,
  ): void {
    const step = B * N;
    // The input drive of every step at once: as_t = x_t Uᵀ + b, (T·B, N).
    gemm({
      transA: false,
      transB: true,
      M: T * B,
      N,
      K: D,
      alpha: 1,
      A: xs,
      lda: D,
      B: U,
      ldb: D,
      beta: 0,
      C: as,
      ldc: N,
    });
    this.addRowVector(T * B, N, as, b);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * step, (t + 1) * step);
      const hNext = hs.subarray((t + 1) * step, (t + 2) * step);
      const a = as.subarray(t * step, (t + 1) * step);
      // z_t = h_{t-1} Wᵀ + drive
      gemm({
        transA: false,
        transB: true,
        M: B,
        N,
        K: N,
        alpha: 1,
        A: hPrev,
        lda: N,
        B: W,
        ldb: N,
        beta: 1,
        C: a,
        ldc: N,
      });
      this.tanh(step, a, a);
      for (let i = 0; i < step; i++) hNext[i] = beta * a[i]!;
      if (alpha !== 0) this.applyFilter({ filter, transpose: false, B, alpha, x: hPrev, betaY: 1, y: hNext });
    }
  }

  roafCellBackward(args: RoafCellBackwardArgs): void {
    this.cellBackward((g) => this.gemm(g), args);
  }

  /** The cell backward with its products on `gemm`, as cellForward. */
  private cellBackward(
    gemm: (args: GemmArgs) => void,
    {
      T,
      B,
      D,
      N,
      alpha,
      beta,
      filter,
      xs,
      W,
      U,
      hs,
      as,
      ghs,
      gzs,
      gW,
      gU,
      gb,
      gh0,
      gxs,
      lastStepOnly,
    }: RoafCellBackwardArgs,
  ): void {
    const step = B * N;
    for (let t = T - 1; t >= 0; t--) {
      const gh = ghs.subarray(t * step, (t + 1) * step); // complete ∂loss/∂h_{t+1}
      const a = as.subarray(t * step, (t + 1) * step);
      const gz = gzs.subarray(t * step, (t + 1) * step);
      for (let i = 0; i < step; i++) gz[i] = beta * gh[i]! * (1 - a[i]! * a[i]!);
      // ∂loss/∂h_t: the loss term already there plus what flows back through step t.
      const target = t > 0 ? ghs.subarray((t - 1) * step, t * step) : gh0;
      if (target === null) continue;
      const keep = t > 0 && !lastStepOnly ? 1 : 0; // with lastStepOnly the earlier entries are not read
      gemm({
        transA: false,
        transB: false,
        M: B,
        N,
        K: N,
        alpha: 1,
        A: gz,
        lda: N,
        B: W,
        ldb: N,
        beta: keep,
        C: target,
        ldc: N,
      });
      if (alpha !== 0) this.applyFilter({ filter, transpose: true, B, alpha, x: gh, betaY: 1, y: target });
    }
    // Weight gradients as one product each over all T·B rows: gW += Σ_t gz_tᵀ h_{t-1}, gU += Σ_t gz_tᵀ x_t.
    const rows = T * B;
    const inputSide = this.inputSideProduct(gemm, D);
    gemm({
      transA: true,
      transB: false,
      M: N,
      N,
      K: rows,
      alpha: 1,
      A: gzs,
      lda: N,
      B: hs,
      ldb: N,
      beta: 1,
      C: gW,
      ldc: N,
    });
    inputSide({
      transA: true,
      transB: false,
      M: N,
      N: D,
      K: rows,
      alpha: 1,
      A: gzs,
      lda: N,
      B: xs,
      ldb: D,
      beta: 1,
      C: gU,
      ldc: D,
    });
    this.sumRows(rows, N, gzs, gb);
    if (gxs !== null) {
      inputSide({
        transA: false,
        transB: false,
        M: rows,
        N: D,
        K: N,
        alpha: 1,
        A: gzs,
        lda: N,
        B: U,
        ldb: D,
        beta: 0,
        C: gxs,
        ldc: D,
      });
    }
  }

  /**
   * The product for a backward pass's input side (the input weights' gradient, ∂loss/∂x): with one input
   * (D = 1) a matrix-vector product, bound by memory, so this.gemm (float32) whatever `gemm` is; else `gemm`.
   * The native kernels' `product(bf16 && D > 1, …)` (native/src/kernels_internal.h) is the same rule.
   */
  private inputSideProduct(gemm: (args: GemmArgs) => void, D: number): (args: GemmArgs) => void {
    return D === 1 ? (args) => this.gemm(args) : gemm;
  }

  // ---- the ROAF layer, stack and cell with bf16 products (--precision bf16, docs/precision.md) ----

  roafLayerForwardBf16(args: RoafLayerForwardArgs): void {
    this.layerForward((g) => this.gemmBf16(g), args);
  }

  roafLayerBackwardBf16(args: RoafLayerBackwardArgs): void {
    this.layerBackward((g) => this.gemmBf16(g), args);
  }

  roafMlpForwardBf16(args: RoafMlpForwardArgs): void {
    this.mlpForward((layer) => this.roafLayerForwardBf16(layer), args);
  }

  roafMlpBackwardBf16(args: RoafMlpBackwardArgs): void {
    this.mlpBackward((layer) => this.roafLayerBackwardBf16(layer), args);
  }

  roafCellForwardBf16(args: RoafCellForwardArgs): void {
    this.cellForward((g) => this.gemmBf16(g), args);
  }

  roafCellBackwardBf16(args: RoafCellBackwardArgs): void {
    this.cellBackward((g) => this.gemmBf16(g), args);
  }

  // ---- the LSTM and GRU with bf16 products (--precision bf16, docs/precision.md) ----

  lstmForwardBf16(args: LstmForwardArgs): void {
    this.lstmForwardOn((g) => this.gemmBf16(g), args);
  }

  lstmBackwardBf16(args: LstmBackwardArgs): void {
    this.lstmBackwardOn((g) => this.gemmBf16(g), args);
  }

  gruForwardBf16(args: GruForwardArgs): void {
    this.gruForwardOn((g) => this.gemmBf16(g), args);
  }

  gruBackwardBf16(args: GruBackwardArgs): void {
    this.gruBackwardOn((g) => this.gemmBf16(g), args);
  }

  // ---- LSTM over a whole sequence ----

  lstmForward(args: LstmForwardArgs): void {
    this.lstmForwardOn((g) => this.gemm(g), args);
  }

  /** The LSTM forward with its products on `gemm` (this.gemm, or this.gemmBf16 for lstmForwardBf16). */
  private lstmForwardOn(
    gemm: (args: GemmArgs) => void,
    { T, B, D, N, xs, Wx, Wh, b, hs, cs, gates }: LstmForwardArgs,
  ): void {
    const G = 4 * N;
    // The input side of every step at once: gates = xs Wxᵀ + b, (T·B, 4N).
    gemm({
      transA: false,
      transB: true,
      M: T * B,
      N: G,
      K: D,
      alpha: 1,
      A: xs,
      lda: D,
      B: Wx,
      ldb: D,
      beta: 0,
      C: gates,
      ldc: G,
    });
    this.addRowVector(T * B, G, gates, b);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * B * N, (t + 1) * B * N);
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      gemm({
        transA: false,
        transB: true,
        M: B,
        N: G,
        K: N,
        alpha: 1,
        A: hPrev,
        lda: N,
        B: Wh,
        ldb: N,
        beta: 1,
        C: g,
        ldc: G,
      });
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        const next = (t + 1) * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const i = sigmoid(g[go + j]!);
          const f = sigmoid(g[go + N + j]!);
          const gg = Math.tanh(g[go + 2 * N + j]!);
          const o = sigmoid(g[go + 3 * N + j]!);
          g[go + j] = i;
          g[go + N + j] = f;
          g[go + 2 * N + j] = gg;
          g[go + 3 * N + j] = o;
          const c = f * cs[prev + j]! + i * gg;
          cs[next + j] = c;
          hs[next + j] = o * Math.tanh(c);
        }
      }
    }
  }

  lstmBackward(args: LstmBackwardArgs): void {
    this.lstmBackwardOn((g) => this.gemm(g), args);
  }

  /** The LSTM backward with its products on `gemm` (this.gemm, or this.gemmBf16 for lstmBackwardBf16). */
  private lstmBackwardOn(
    gemm: (args: GemmArgs) => void,
    { T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly }: LstmBackwardArgs,
  ): void {
    const G = 4 * N;
    const gc = this.scratch('lstmBackward.gc', this.workDType(dtypeOf(xs)), B * N); // ∂loss/∂c_{t+1}, carried backwards
    gc.fill(0);
    const step = B * N;
    for (let t = T - 1; t >= 0; t--) {
      const gg = gGates.subarray(t * B * G, (t + 1) * B * G);
      lstmStepBackward(
        B,
        N,
        gates.subarray(t * B * G, (t + 1) * B * G),
        cs.subarray(t * step, (t + 1) * step),
        cs.subarray((t + 1) * step, (t + 2) * step),
        ghs.subarray(t * step, (t + 1) * step),
        gc,
        gg,
      );
      if (t > 0) {
        const ghPrev = ghs.subarray((t - 1) * B * N, t * B * N);
        recurrentInputGradient(gemm, B, N, G, gg, Wh, lastStepOnly ? 0 : 1, ghPrev);
      }
    }
    const rows = T * B;
    const inputSide = this.inputSideProduct(gemm, D);
    gemm({
      transA: true,
      transB: false,
      M: G,
      N,
      K: rows,
      alpha: 1,
      A: gGates,
      lda: G,
      B: hs,
      ldb: N,
      beta: 1,
      C: gWh,
      ldc: N,
    });
    inputSide({
      transA: true,
      transB: false,
      M: G,
      N: D,
      K: rows,
      alpha: 1,
      A: gGates,
      lda: G,
      B: xs,
      ldb: D,
      beta: 1,
      C: gWx,
      ldc: D,
    });
    this.sumRows(rows, G, gGates, gb);
    if (gxs !== null) {
      inputSide({
        transA: false,
        transB: false,
        M: rows,
        N: D,
        K: G,
        alpha: 1,
        A: gGates,
        lda: G,
        B: Wx,
        ldb: D,
        beta: 0,
        C: gxs,
        ldc: D,
      });
    }
  }

  // ---- GRU over a whole sequence ----

  gruForward(args: GruForwardArgs): void {
    this.gruForwardOn((g) => this.gemm(g), args);
  }

  /** The GRU forward with its products on `gemm` (this.gemm, or this.gemmBf16 for gruForwardBf16). */
  private gruForwardOn(
    gemm: (args: GemmArgs) => void,
    { T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn }: GruForwardArgs,
  ): void {
    const G = 3 * N;
    gemm({
      transA: false,
      transB: true,
      M: T * B,
      N: G,
      K: D,
      alpha: 1,
      A: xs,
      lda: D,
      B: Wx,
      ldb: D,
      beta: 0,
      C: gates,
      ldc: G,
    });
    this.addRowVector(T * B, G, gates, bx);
    // h_{t-1} Whᵀ of one step, (B, 3N): kept apart from the input side because r multiplies its n part.
    const hproj = this.scratch('gruForward.hproj', this.workDType(dtypeOf(xs)), B * G);
    for (let t = 0; t < T; t++) {
      const hPrev = hs.subarray(t * B * N, (t + 1) * B * N);
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      gemm({
        transA: false,
        transB: true,
        M: B,
        N: G,
        K: N,
        alpha: 1,
        A: hPrev,
        lda: N,
        B: Wh,
        ldb: N,
        beta: 0,
        C: hproj,
        ldc: G,
      });
      for (let r = 0; r < B; r++) {
        const go = r * G;
        const prev = t * B * N + r * N;
        const next = (t + 1) * B * N + r * N;
        for (let j = 0; j < N; j++) {
          const rg = sigmoid(g[go + j]! + hproj[go + j]! + bh[j]!);
          const z = sigmoid(g[go + N + j]! + hproj[go + N + j]! + bh[N + j]!);
          const hnj = hproj[go + 2 * N + j]! + bh[2 * N + j]!;
          const n = Math.tanh(g[go + 2 * N + j]! + rg * hnj);
          g[go + j] = rg;
          g[go + N + j] = z;
          g[go + 2 * N + j] = n;
          hn[t * B * N + r * N + j] = hnj;
          hs[next + j] = (1 - z) * n + z * hs[prev + j]!;
        }
      }
    }
  }

  gruBackward(args: GruBackwardArgs): void {
    this.gruBackwardOn((g) => this.gemm(g), args);
  }

  /** The GRU backward with its products on `gemm` (this.gemm, or this.gemmBf16 for gruBackwardBf16). */
  private gruBackwardOn(
    gemm: (args: GemmArgs) => void,
    { T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs, lastStepOnly }: GruBackwardArgs,
  ): void {
    const G = 3 * N;
    const work = this.workDType(dtypeOf(xs));
    // gGates holds the gradients of the input-side pre-activations [r, z, n]; the recurrent side differs
    // only in the candidate: ∂/∂(W_hn h + b_hn) = gn ⊙ r, so one step's recurrent rows are kept in ghRec.
    const ghRec = this.scratch('gruBackward.ghRec', work, B * G);
    const step = B * N;
    for (let t = T - 1; t >= 0; t--) {
      const g = gates.subarray(t * B * G, (t + 1) * B * G);
      gruStepBackward(
        B,
        N,
        g,
        hs.subarray(t * step, (t + 1) * step),
        hn.subarray(t * step, (t + 1) * step),
        ghs.subarray(t * step, (t + 1) * step),
        gGates.subarray(t * B * G, (t + 1) * B * G),
        gHn.subarray(t * step, (t + 1) * step),
        ghRec,
      );
      if (t > 0) {
        const ghPrev = ghs.subarray((t - 1) * B * N, t * B * N);
        recurrentInputGradient(gemm, B, N, G, ghRec, Wh, lastStepOnly ? 0 : 1, ghPrev);
        gruUpdateGateCarry(B, N, g, ghs.subarray(t * step, (t + 1) * step), ghPrev);
      }
    }
    // Recurrent-side pre-activation gradients of every step, [gr, gz, gn ⊙ r], for one product over all rows.
    const rows = T * B;
    const inputSide = this.inputSideProduct(gemm, D);
    const recurrent = this.scratch('gruBackward.recurrent', work, rows * G);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < 2 * N; j++) recurrent[i * G + j] = gGates[i * G + j]!;
      for (let j = 0; j < N; j++) recurrent[i * G + 2 * N + j] = gHn[i * N + j]!;
    }
    gemm({
      transA: true,
      transB: false,
      M: G,
      N,
      K: rows,
      alpha: 1,
      A: recurrent,
      lda: G,
      B: hs,
      ldb: N,
      beta: 1,
      C: gWh,
      ldc: N,
    });
    this.sumRows(rows, G, recurrent, gbh);
    inputSide({
      transA: true,
      transB: false,
      M: G,
      N: D,
      K: rows,
      alpha: 1,
      A: gGates,
      lda: G,
      B: xs,
      ldb: D,
      beta: 1,
      C: gWx,
      ldc: D,
    });
    this.sumRows(rows, G, gGates, gbx);
    if (gxs !== null) {
      inputSide({
        transA: false,
        transB: false,
        M: rows,
        N: D,
        K: G,
        alpha: 1,
        A: gGates,
        lda: G,
        B: Wx,
        ldb: D,
        beta: 0,
        C: gxs,
        ldc: D,
      });
    }
  }

  // ---- building the dense filters ----

  /**
   * One matrix at a time, by the reference Householder QR (src/nn/filter.ts), whose float64 operations and
   * their order every backend's version must keep: the filters of a seed are the same on every backend.
   */
  orthogonalFromQr({ count, N, signFix, a, q }: OrthogonalFromQrArgs): void {
    const nn = N * N;
    for (let m = 0; m < count; m++) {
      q.set(orthogonalFromQr(a.subarray(m * nn, (m + 1) * nn), N, signFix), m * nn);
    }
  }

  // ---- diagnostics ----

  /** The reference step in float64 TypeScript (src/diagnostics/product-spectrum.ts), which computes no product. */
  productSpectrumPush(args: ProductSpectrumPushArgs): void {
    productSpectrumPush(args);
  }
}
