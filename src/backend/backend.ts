// The backend boundary: every numeric kernel the models need, on flat typed arrays with explicit shapes.
//
// A backend is a small required core (matrix product, row-vector and elementwise ops, filter application,
// losses, optimiser updates, reductions, and `allocate`) plus fused kernels (ROAF layer, ROAF MLP stack, ROAF
// cell, LSTM, GRU) that `BackendBase` implements on the core through `this`, so a backend that only has a
// faster core is faster everywhere, and overrides a fused kernel when it has something better still. Layers,
// cells and models call only this interface: a faster backend never changes what is computed, only how fast.
// docs/backend.md describes the boundary; src/backend/kernel-table.ts declares every kernel's arguments once
// (kinds, dtypes, required lengths) and the checks every backend runs before a kernel does.
//
// Conventions shared by every kernel:
// - Sizes: B batch, T steps, N width/units, D input dim, K classes/outputs, L depth.
// - Matrices are row-major. A batch of vectors is a (B, N) matrix, one row per sample.
// - A weight W of a layer N_in -> N_out is stored (N_out, N_in), so a forward product is `Y = X Wᵀ`.
// - The float arrays of one call are all of one dtype (Float32Array or Float64Array), the model's.
// - "Accumulates" means the output adds into what is there (gradients summed over layers, steps and
//   batches); every other output is overwritten. The doc comment of each kernel says which are which.
// - Views: pass `array.subarray(offset, end)` to address part of a larger buffer; kernels never keep them.
// - Kernels with more than four arguments take one argument object (the interfaces below, a doc comment per
//   field stating its shape); the small elementwise and row kernels keep positional arguments.

/** A floating-point buffer in the model's dtype. */
export type FloatArray = Float32Array | Float64Array;

/** The element types a model can be built in. */
export type DType = 'float32' | 'float64';

/** The dtype of a float array. */
export function dtypeOf(x: FloatArray): DType {
  return x instanceof Float64Array ? 'float64' : 'float32';
}

/**
 * Where model buffers come from. A backend owns the memory its kernels read: the reference and native
 * backends hand out ordinary typed arrays, a WebAssembly backend would hand out views of its linear memory.
 */
export interface BufferAllocator {
  /** A zero-filled buffer of `length` values of `dtype`, owned by the allocator. */
  allocate(dtype: DType, length: number): FloatArray;
}

/** Ordinary JavaScript typed arrays: the memory of the reference and native backends. */
export function allocateHost(dtype: DType, length: number): FloatArray {
  return dtype === 'float64' ? new Float64Array(length) : new Float32Array(length);
}

/** An allocator of ordinary typed arrays, for buffers drawn before a backend is chosen (tests, tools). */
export const hostMemory: BufferAllocator = { allocate: allocateHost };

/**
 * A random orthogonal filter O (N x N) in the form a kernel can apply.
 * - `dense`: O stored row-major (N, N); applied as a product (haar, qr-uniform).
 * - `permutation`: (O x)[i] = signs[i] * x[perm[i]]; exactly orthogonal, applied in O(N) (permutation, cycle).
 * - `identity`: O = I.
 */
export type FilterOperand =
  | { kind: 'dense'; n: number; matrix: FloatArray }
  | { kind: 'permutation'; n: number; perm: Int32Array; signs: FloatArray }
  | { kind: 'identity'; n: number };

// ---- argument objects ----

/** C = alpha · op(A) op(B) + beta · C, with op(X) = Xᵀ when the flag is set. */
export interface GemmArgs {
  /** op(A) = Aᵀ: A is stored (K, M). */
  transA: boolean;
  /** op(B) = Bᵀ: B is stored (N, K). */
  transB: boolean;
  /** Rows of op(A) and of C. */
  M: number;
  /** Columns of op(B) and of C. */
  N: number;
  /** Columns of op(A), rows of op(B). */
  K: number;
  alpha: number;
  /** (M, K), or (K, M) when transA; rows `lda` apart. */
  A: FloatArray;
  /** Row stride of A as stored, at least its row length. */
  lda: number;
  /** (K, N), or (N, K) when transB; rows `ldb` apart. */
  B: FloatArray;
  ldb: number;
  /** 0 overwrites C (its old contents may be NaN). */
  beta: number;
  /** (M, N), rows `ldc` apart. */
  C: FloatArray;
  ldc: number;
}

/** y = betaY · y + alpha · O x (or Oᵀ x) for each of B rows. */
export interface ApplyFilterArgs {
  /** O, of width N = filter.n. */
  filter: FilterOperand;
  /** Apply Oᵀ instead of O. */
  transpose: boolean;
  B: number;
  alpha: number;
  /** (B, N); must not overlap y. */
  x: FloatArray;
  /** 0 overwrites y. */
  betaY: number;
  /** (B, N). */
  y: FloatArray;
}

/** One ROAF layer on a batch: a = tanh(x Wᵀ + b), y = alpha O x + beta a. */
export interface RoafLayerForwardArgs {
  B: number;
  N: number;
  alpha: number;
  beta: number;
  /** O, of width N (not applied when alpha = 0). */
  filter: FilterOperand;
  /** (B, N) input. */
  x: FloatArray;
  /** (N, N). */
  W: FloatArray;
  /** (N). */
  b: FloatArray;
  /** (B, N) written: tanh(x Wᵀ + b). */
  a: FloatArray;
  /** (B, N) written: the layer's output. */
  y: FloatArray;
}

/** Backward of one ROAF layer, gz = beta gy ⊙ (1 - a²). */
export interface RoafLayerBackwardArgs {
  B: number;
  N: number;
  alpha: number;
  beta: number;
  filter: FilterOperand;
  /** (B, N) the forward's input. */
  x: FloatArray;
  /** (B, N) the forward's activation. */
  a: FloatArray;
  /** (N, N). */
  W: FloatArray;
  /** (B, N) ∂loss/∂y. */
  gy: FloatArray;
  /** (B, N) written unless null: alpha Oᵀ gy + gz W. */
  gx: FloatArray | null;
  /** (N, N) accumulates gzᵀ x. */
  gW: FloatArray;
  /** (N) accumulates Σ_batch gz. */
  gb: FloatArray;
  /** (B, N) scratch; holds gz on return. */
  gz: FloatArray;
}

/**
 * A stack of L ROAF layers. Layer l's operands are slices of stacked buffers: W_l = Ws[l·N·N, (l+1)·N·N),
 * b_l = bs[l·N, (l+1)·N), x_l = xs[l·B·N, (l+1)·B·N), a_l likewise.
 */
export interface RoafMlpForwardArgs {
  L: number;
  B: number;
  N: number;
  alpha: number;
  beta: number;
  /** (L) layer l's filter, of width N (entries may be one shared object; with alpha = 0 none is applied). */
  filters: readonly FilterOperand[];
  /** (L, N, N). */
  Ws: FloatArray;
  /** (L, N). */
  bs: FloatArray;
  /** (L+1, B, N): x_0 given, x_1..x_L written. */
  xs: FloatArray;
  /** (L, B, N) written: a_l = tanh(x_l W_lᵀ + b_l). */
  as: FloatArray;
}

export interface RoafMlpBackwardArgs {
  L: number;
  B: number;
  N: number;
  alpha: number;
  beta: number;
  /** (L) as in the forward. */
  filters: readonly FilterOperand[];
  /** (L, N, N). */
  Ws: FloatArray;
  /** (L+1, B, N) from the forward, unchanged. */
  xs: FloatArray;
  /** (L, B, N) from the forward, unchanged. */
  as: FloatArray;
  /** (B, N): ∂loss/∂x_L on entry, ∂loss/∂x_0 on return. */
  gy: FloatArray;
  /** (L, N, N) accumulates Σ_batch gz_lᵀ x_l. */
  gWs: FloatArray;
  /** (L, N) accumulates Σ_batch gz_l. */
  gbs: FloatArray;
  /**
   * (L+1) written unless null: gradSquares[l] = ||∂loss/∂x_l||² (over the batch, summed in float64), the
   * gradient-norm curve of the diagnostics; gradSquares[L] is that of the entry value of gy.
   */
  gradSquares: Float64Array | null;
}

/** The ROAF cell over T steps: h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b). */
export interface RoafCellForwardArgs {
  T: number;
  B: number;
  D: number;
  N: number;
  alpha: number;
  beta: number;
  /** O, of width N. */
  filter: FilterOperand;
  /** (T, B, D). */
  xs: FloatArray;
  /** (N, N). */
  W: FloatArray;
  /** (N, D). */
  U: FloatArray;
  /** (N). */
  b: FloatArray;
  /** (T+1, B, N): h_0 given in hs[0], h_1..h_T written. */
  hs: FloatArray;
  /** (T, B, N) written: tanh(z_t). */
  as: FloatArray;
}

/** Backpropagation through time for the ROAF cell. */
export interface RoafCellBackwardArgs {
  T: number;
  B: number;
  D: number;
  N: number;
  alpha: number;
  beta: number;
  filter: FilterOperand;
  /** (T, B, D). */
  xs: FloatArray;
  /** (N, N). */
  W: FloatArray;
  /** (N, D). */
  U: FloatArray;
  /** (T+1, B, N) from the forward. */
  hs: FloatArray;
  /** (T, B, N) from the forward. */
  as: FloatArray;
  /**
   * (T, B, N): on entry ∂loss/∂h_t for t = 1..T from the loss (zeros where a step has no loss term); on return
   * the complete ∂loss/∂h_t (loss term plus what flows back from later steps), the diagnostics' curve over time.
   */
  ghs: FloatArray;
  /** (T, B, N) scratch; holds gz_t on return. */
  gzs: FloatArray;
  /** (N, N) accumulates. */
  gW: FloatArray;
  /** (N, D) accumulates. */
  gU: FloatArray;
  /** (N) accumulates. */
  gb: FloatArray;
  /** (B, N) written unless null: ∂loss/∂h_0. */
  gh0: FloatArray | null;
  /** (T, B, D) written unless null: ∂loss/∂x_t. */
  gxs: FloatArray | null;
  /**
   * The loss has a term at h_T only (a classifier reading the last state). Then only the last step of ghs is
   * read; the other steps' entries need not be zero, and on return they are unspecified (a backend may use
   * them as working rows). Models pass it when nothing reads the gradient curve: it saves clearing, reading
   * and storing (T-1)·B·N floats per training step.
   */
  lastStepOnly: boolean;
}

/** Per-sequence state saved by `lstmForward` for `lstmBackward`. */
export interface LstmSaved {
  /** (T+1, B, N) hidden states h_0..h_T. */
  hs: FloatArray;
  /** (T+1, B, N) cell states c_0..c_T. */
  cs: FloatArray;
  /** (T, B, 4N) gate activations after their nonlinearity, order [i, f, g, o]. */
  gates: FloatArray;
}

/**
 * LSTM over a whole sequence (PyTorch's gate order and equations):
 *   [i f g o] = x Wxᵀ + h Whᵀ + b;  i, f, o = sigmoid, g = tanh;  c' = f c + i g;  h' = o tanh(c').
 * hs[0] and cs[0] hold h_0 and c_0; the rest of the saved state is written.
 */
export interface LstmForwardArgs extends LstmSaved {
  T: number;
  B: number;
  D: number;
  N: number;
  /** (T, B, D). */
  xs: FloatArray;
  /** (4N, D). */
  Wx: FloatArray;
  /** (4N, N). */
  Wh: FloatArray;
  /** (4N). */
  b: FloatArray;
}

export interface LstmBackwardArgs extends LstmSaved {
  T: number;
  B: number;
  D: number;
  N: number;
  /** (T, B, D). */
  xs: FloatArray;
  /** (4N, D). */
  Wx: FloatArray;
  /** (4N, N). */
  Wh: FloatArray;
  /** (T, B, N) as for roafCellBackward. */
  ghs: FloatArray;
  /** (T, B, 4N) scratch; the gates' pre-activation gradients on return. */
  gGates: FloatArray;
  /** (4N, D) accumulates. */
  gWx: FloatArray;
  /** (4N, N) accumulates. */
  gWh: FloatArray;
  /** (4N) accumulates. */
  gb: FloatArray;
  /** (T, B, D) written unless null. */
  gxs: FloatArray | null;
  /** As for roafCellBackward. */
  lastStepOnly: boolean;
}

/** Per-sequence state saved by `gruForward` for `gruBackward`. */
export interface GruSaved {
  /** (T+1, B, N) hidden states h_0..h_T. */
  hs: FloatArray;
  /** (T, B, 3N) gate activations [r, z, n] after their nonlinearity. */
  gates: FloatArray;
  /** (T, B, N) the recurrent part of the candidate before the reset gate: W_hn h_{t-1} + b_hn. */
  hn: FloatArray;
}

/**
 * GRU over a whole sequence (PyTorch's equations):
 *   r = σ(Wx_r x + b_ir + Wh_r h + b_hr); z = σ(Wx_z x + b_iz + Wh_z h + b_hz)
 *   n = tanh(Wx_n x + b_in + r ⊙ (Wh_n h + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h.
 * hs[0] holds h_0; the rest of the saved state is written.
 */
export interface GruForwardArgs extends GruSaved {
  T: number;
  B: number;
  D: number;
  N: number;
  /** (T, B, D). */
  xs: FloatArray;
  /** (3N, D). */
  Wx: FloatArray;
  /** (3N, N). */
  Wh: FloatArray;
  /** (3N). */
  bx: FloatArray;
  /** (3N). */
  bh: FloatArray;
}

export interface GruBackwardArgs extends GruSaved {
  T: number;
  B: number;
  D: number;
  N: number;
  /** (T, B, D). */
  xs: FloatArray;
  /** (3N, D). */
  Wx: FloatArray;
  /** (3N, N). */
  Wh: FloatArray;
  /** (T, B, N) as for roafCellBackward. */
  ghs: FloatArray;
  /** (T, B, 3N) scratch. */
  gGates: FloatArray;
  /** (T, B, N) scratch. */
  gHn: FloatArray;
  /** (3N, D) accumulates. */
  gWx: FloatArray;
  /** (3N, N) accumulates. */
  gWh: FloatArray;
  /** (3N) accumulates. */
  gbx: FloatArray;
  /** (3N) accumulates. */
  gbh: FloatArray;
  /** (T, B, D) written unless null. */
  gxs: FloatArray | null;
  /** As for roafCellBackward. */
  lastStepOnly: boolean;
}

/** Softmax cross-entropy over B rows of K logits with integer labels. */
export interface SoftmaxCrossEntropyArgs {
  B: number;
  /** At least 1 when B > 0. */
  K: number;
  /** (B, K). */
  logits: FloatArray;
  /** (B) entries in [0, K). */
  labels: Int32Array;
  gradScale: number;
  /** (B, K) written unless null: (softmax - onehot) · gradScale. */
  grad: FloatArray | null;
  /** (B) written unless null: 1 where argmax(logits[r]) = labels[r], else 0. */
  correct: Uint8Array | null;
}

/** Squared error over B rows of K outputs. */
export interface SquaredErrorArgs {
  B: number;
  K: number;
  /** (B, K). */
  pred: FloatArray;
  /** (B, K). */
  target: FloatArray;
  gradScale: number;
  /** (B, K) written unless null: 2 (pred - target) · gradScale. */
  grad: FloatArray | null;
}

/**
 * Adam (weightDecay > 0: AdamW's decoupled decay), step t >= 1 for the bias correction:
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + lr wd p.
 */
export interface AdamUpdateArgs {
  n: number;
  /** (n) updated in place. */
  params: FloatArray;
  /** (n). */
  grads: FloatArray;
  /** (n) first moments, updated. */
  m: FloatArray;
  /** (n) second moments, updated. */
  v: FloatArray;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step number, >= 1. */
  t: number;
}

/** SGD with (heavy-ball) momentum: vel = momentum vel + g; p -= lr vel. */
export interface SgdUpdateArgs {
  n: number;
  /** (n) updated in place. */
  params: FloatArray;
  /** (n). */
  grads: FloatArray;
  /** (n) updated. */
  velocity: FloatArray;
  lr: number;
  momentum: number;
}

/**
 * The orthogonal factor Q of the Householder QR of `count` square matrices (drawing the dense random filters:
 * src/nn/filter.ts), in float64 whatever the model's dtype. Every backend computes it bit for bit as the
 * reference does (docs/kernels.md), so a model's filters depend on its seed only.
 */
export interface OrthogonalFromQrArgs {
  count: number;
  N: number;
  /** Multiply column j of Q by sign(R_jj), which makes Q Haar-distributed for a Gaussian matrix. */
  signFix: boolean;
  /** (count, N, N) row-major, consumed (overwritten). */
  a: Float64Array;
  /** (count, N, N) written: the Q of each matrix, row-major. */
  q: Float64Array;
}

/**
 * One factor of the singular spectrum of a long product of Jacobians (src/diagnostics/product-spectrum.ts,
 * whose header gives the method): the product A = J_L ⋯ J_1 is carried as an orthonormal frame (Householder
 * reflectors) and a triangular product P = diag(e^s) M; this multiplies it on the left by one more factor J.
 * Float64 whatever the model's dtype. Backends agree to rounding, not bit for bit: the products are reordered
 * for the cache (docs/kernels.md, "The Jacobian product spectrum").
 */
export interface ProductSpectrumPushArgs {
  /** The factors' size. */
  n: number;
  /** Whether J is the first factor (the product starts at J; reflectors, tau, m and s are only written). */
  first: boolean;
  /** (n, n) row-major: the factor, consumed (overwritten). */
  J: Float64Array;
  /** (n, n) read (the previous frame, unless first) and written: row k holds reflector k in entries k..n-1. */
  reflectors: Float64Array;
  /** (n) read and written: 2 / v_kᵀv_k of each reflector, 0 where it is the identity. */
  tau: Float64Array;
  /** (n) accumulated: Σ log|R_kk| over the factors, the Lyapunov sums. */
  lyapunovSums: Float64Array;
  /** (n, n) read and written: M of P = diag(e^s) M, upper triangular, rows of max-norm 1. */
  m: Float64Array;
  /** (n) read and written: the rows' natural-log scales (-Infinity: a zero row). */
  s: Float64Array;
  /** (3n² + n) scratch, contents undefined on entry and exit. */
  work: Float64Array;
}

// ---- the interface ----

/** What every backend implements itself. */
export interface BackendCore extends BufferAllocator {
  /** 'reference', 'native', ... */
  readonly name: string;
  /** Human-readable detail: instruction set, threads. */
  describe(): string;
  /** Whether this backend implements the dtype (reference: both; native: float32). */
  supports(dtype: DType): boolean;

  /** C = alpha · op(A) op(B) + beta · C (see GemmArgs). */
  gemm(args: GemmArgs): void;
  /**
   * gemm with bf16 operands: every element of op(A) and op(B) is rounded to bf16 (round to nearest even, of its
   * float32 value) before it is multiplied; products and sums in float32 at least (the reference: float64).
   * What `--precision bf16` runs its products on (docs/precision.md).
   */
  gemmBf16(args: GemmArgs): void;
  /** y[r, :] += bias for each of the `rows` rows of y (rows, n). */
  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void;
  /** out[j] += Σ_r x[r, j] over the `rows` rows of x (rows, n). Accumulates. */
  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void;

  /** out = tanh(x), length n (out may alias x). */
  tanh(n: number, x: FloatArray, out: FloatArray): void;
  /** gx = gy ⊙ (1 - a²) for a = tanh(z), length n (gx may alias gy). */
  tanhBackward(n: number, a: FloatArray, gy: FloatArray, gx: FloatArray): void;
  /** Σ x², in float64. */
  sumSquares(n: number, x: FloatArray): number;
  /** x *= s, length n. */
  scale(n: number, x: FloatArray, s: number): void;
  /** y += s * x, length n. */
  axpy(n: number, s: number, x: FloatArray, y: FloatArray): void;

  /** y = betaY · y + alpha · O x (or Oᵀ x) row by row (see ApplyFilterArgs). */
  applyFilter(args: ApplyFilterArgs): void;

  /** Writes the gradient unless null; returns Σ_rows loss (not the mean) in float64. */
  softmaxCrossEntropy(args: SoftmaxCrossEntropyArgs): number;
  /** Returns Σ (pred - target)² in float64; writes the gradient unless null. */
  squaredError(args: SquaredErrorArgs): number;

  /** One Adam/AdamW step on flat buffers. */
  adamUpdate(args: AdamUpdateArgs): void;
  /** One SGD-with-momentum step on flat buffers. */
  sgdUpdate(args: SgdUpdateArgs): void;
}

/**
 * Whole layers and sequences in one call. BackendBase implements every one on the core; a backend overrides
 * those it can do faster (the native backend: all of them, so a step pays per-call costs once, not per layer
 * or per time step).
 */
export interface FusedKernels {
  /** One ROAF layer forward (see RoafLayerForwardArgs). */
  roafLayerForward(args: RoafLayerForwardArgs): void;
  /** One ROAF layer backward (see RoafLayerBackwardArgs). */
  roafLayerBackward(args: RoafLayerBackwardArgs): void;
  /** L ROAF layers forward: the same as L calls of roafLayerForward. */
  roafMlpForward(args: RoafMlpForwardArgs): void;
  /** L ROAF layers backward: the same as L calls of roafLayerBackward, from layer L-1 down to 0. */
  roafMlpBackward(args: RoafMlpBackwardArgs): void;
  /**
   * roafLayerForward with bf16 products (`--precision bf16`, docs/precision.md): W x on operands rounded to bf16
   * with float32 sums; the bias, tanh and the filter (a dense O x in float32) in float32. Its default is
   * roafLayerForward's on gemmBf16.
   */
  roafLayerForwardBf16(args: RoafLayerForwardArgs): void;
  /** roafLayerBackward with bf16 products (gz W and gzᵀ x), as roafLayerForwardBf16. */
  roafLayerBackwardBf16(args: RoafLayerBackwardArgs): void;
  /** roafMlpForward on roafLayerForwardBf16's arithmetic; the native backend fuses it (W packed once per call). */
  roafMlpForwardBf16(args: RoafMlpForwardArgs): void;
  /** roafMlpBackward on roafLayerBackwardBf16's arithmetic, as roafMlpForwardBf16. */
  roafMlpBackwardBf16(args: RoafMlpBackwardArgs): void;
  /** The ROAF cell over T steps. */
  roafCellForward(args: RoafCellForwardArgs): void;
  /** Backpropagation through time for the ROAF cell. */
  roafCellBackward(args: RoafCellBackwardArgs): void;
  /**
   * roafCellForward with bf16 products (`--precision bf16`, docs/precision.md): W h and the input product U x on
   * operands rounded to bf16 with float32 sums; tanh, the filter (a dense O h in float32), the state in float32.
   * Its default is roafCellForward's on gemmBf16; the native backend fuses it (W packed once per call).
   */
  roafCellForwardBf16(args: RoafCellForwardArgs): void;
  /** roafCellBackward with bf16 products (gz W and the weight gradients), as roafCellForwardBf16. */
  roafCellBackwardBf16(args: RoafCellBackwardArgs): void;
  /** The LSTM over T steps. */
  lstmForward(args: LstmForwardArgs): void;
  /** Backpropagation through time for the LSTM. */
  lstmBackward(args: LstmBackwardArgs): void;
  /** The GRU over T steps. */
  gruForward(args: GruForwardArgs): void;
  /** Backpropagation through time for the GRU. */
  gruBackward(args: GruBackwardArgs): void;
  /**
   * lstmForward with bf16 products (`--precision bf16`, docs/precision.md): the input and recurrent products on
   * operands rounded to bf16 with float32 sums; the gates, the cell state and the hidden state in float32. Its
   * default is lstmForward's on gemmBf16; the native backend fuses it (Wh packed once per call).
   */
  lstmForwardBf16(args: LstmForwardArgs): void;
  /** lstmBackward with bf16 products (the recurrent product and the weight gradients), as lstmForwardBf16. */
  lstmBackwardBf16(args: LstmBackwardArgs): void;
  /** gruForward with bf16 products, as lstmForwardBf16. */
  gruForwardBf16(args: GruForwardArgs): void;
  /** gruBackward with bf16 products, as lstmForwardBf16. */
  gruBackwardBf16(args: GruBackwardArgs): void;
  /** Q of the Householder QR of many matrices, for building the dense filters (see OrthogonalFromQrArgs). */
  orthogonalFromQr(args: OrthogonalFromQrArgs): void;
  /** One more factor of a Jacobian product's spectrum (see ProductSpectrumPushArgs). */
  productSpectrumPush(args: ProductSpectrumPushArgs): void;
}

/** A complete backend: its core and the fused kernels (its own or BackendBase's defaults). */
export interface Backend extends BackendCore, FusedKernels {}

/** The names of every kernel: the methods the kernel table declares. */
export type KernelName = Exclude<keyof Backend, 'name' | 'describe' | 'supports' | 'allocate'>;
