// The backend boundary: every numeric kernel the models need, on flat typed arrays with explicit shapes.
//
// Two implementations exist: `reference` (plain TypeScript, float32 and float64, the specification) and
// `native` (C kernels behind an N-API addon, checked against the reference). Layers, cells and models call
// only this interface, so a faster backend never changes what is computed, only how fast.
//
// Conventions shared by every kernel:
// - Sizes: B batch, T steps, N width/units, D input dim, K classes/outputs, L depth.
// - Matrices are row-major. A batch of vectors is a (B, N) matrix, one row per sample.
// - A weight W of a layer N_in -> N_out is stored (N_out, N_in), so a forward product is `Y = X Wᵀ`.
// - Arrays are all of the model's one dtype (Float32Array or Float64Array); never mixed in one call.
// - "Accumulate" outputs add into what is there (gradients summed over layers, steps and batches);
//   every other output is overwritten. The doc comment of each kernel says which are which.
// - Views: pass `array.subarray(offset, end)` to address part of a larger buffer; kernels never keep them.

/** A floating-point buffer in the model's dtype. */
export type FloatArray = Float32Array | Float64Array;

/** The element types a model can be built in. */
export type DType = 'float32' | 'float64';

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

/** Per-sequence state saved by `lstmForward` for `lstmBackward`. */
export interface LstmSaved {
  /** (T+1, B, N) hidden states h_0..h_T. */
  hs: FloatArray;
  /** (T+1, B, N) cell states c_0..c_T. */
  cs: FloatArray;
  /** (T, B, 4N) gate activations after their nonlinearity, order [i, f, g, o]. */
  gates: FloatArray;
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

export interface Backend {
  /** 'reference' or 'native'. */
  readonly name: string;
  /** Human-readable detail: instruction set, threads. */
  describe(): string;
  /** Whether this backend implements the dtype (reference: both; native: float32). */
  supports(dtype: DType): boolean;

  // ---- dense linear algebra ----

  /**
   * C = alpha * op(A) op(B) + beta * C, row-major, with op(X) = Xᵀ when the flag is set.
   * op(A) is (M, K), op(B) is (K, N), C is (M, N). lda/ldb/ldc are row strides of A, B, C as stored.
   * beta = 0 overwrites C (its old contents may be NaN).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: FloatArray, lda: number, B: FloatArray, ldb: number,
    beta: number, C: FloatArray, ldc: number,
  ): void;

  /** y[r, :] += bias for each of the `rows` rows of y (rows, n). */
  addRowVector(rows: number, n: number, y: FloatArray, bias: FloatArray): void;

  /** out[j] += Σ_r x[r, j] over the `rows` rows of x (rows, n). Accumulates. */
  sumRows(rows: number, n: number, x: FloatArray, out: FloatArray): void;

  // ---- elementwise ----

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

  // ---- filter ----

  /**
   * Applies the filter to each of B rows: y = beta_y * y + alpha * (O x) (or Oᵀ x when `transpose`).
   * x, y: (B, N), must not alias. beta_y = 0 overwrites y.
   */
  applyFilter(
    filter: FilterOperand, transpose: boolean, B: number,
    alpha: number, x: FloatArray, betaY: number, y: FloatArray,
  ): void;

  // ---- ROAF layer: y = alpha O x + beta tanh(W x + b) ----

  /**
   * Forward of one ROAF layer on a batch.
   * x (B, N) input; W (N, N); b (N); writes a (B, N) = tanh(W x + b) and y (B, N) = alpha O x + beta a.
   */
  roafLayerForward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, W: FloatArray, b: FloatArray, a: FloatArray, y: FloatArray,
  ): void;

  /**
   * Backward of one ROAF layer. Inputs: x, a from the forward, W, gy (B, N).
   * Writes gx (B, N) = alpha Oᵀ gy + Wᵀ gz (gz = beta gy ⊙ (1 - a²)) unless gx is null;
   * accumulates gW (N, N) += gzᵀ x and gb (N) += Σ_batch gz. `gz` (B, N) is scratch.
   */
  roafLayerBackward(
    B: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    x: FloatArray, a: FloatArray, W: FloatArray, gy: FloatArray,
    gx: FloatArray | null, gW: FloatArray, gb: FloatArray, gz: FloatArray,
  ): void;

  // ---- ROAF MLP: the whole stack of L layers, x_{l+1} = alpha O_l x_l + beta tanh(W_l x_l + b_l) ----
  //
  // Two calls per training step instead of 2L: a backend runs every layer of a batch row without returning, so
  // per-layer costs (calls, thread hand-offs, packing) are paid once. Layer l's operands are slices of stacked
  // buffers: W_l = Ws[l·N·N, (l+1)·N·N), b_l = bs[l·N, (l+1)·N), x_l = xs[l·B·N, (l+1)·B·N), a_l likewise.

  /**
   * Forward of L ROAF layers: for l = 0..L-1, a_l = tanh(x_l W_lᵀ + b_l) and x_{l+1} = alpha O_l x_l + beta a_l
   * (the same as L calls of `roafLayerForward`).
   * filters (L): layer l's filter O_l (entries may be the same object: one shared filter; with alpha = 0 no
   * filter is applied); Ws (L, N, N); bs (L, N); xs (L+1, B, N) with x_0 given in xs[0], writes x_1..x_L;
   * writes as (L, B, N).
   */
  roafMlpForward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, bs: FloatArray, xs: FloatArray, as: FloatArray,
  ): void;

  /**
   * Backward of L ROAF layers after `roafMlpForward` (the same as L calls of `roafLayerBackward`, from layer L-1
   * down to 0). Inputs: filters, Ws, xs, as as in the forward (xs, as unchanged).
   * gy (B, N): ∂loss/∂x_L on entry, ∂loss/∂x_0 on return. Accumulates gWs (L, N, N) += Σ_batch gz_lᵀ x_l and
   * gbs (L, N) += Σ_batch gz_l, with gz_l = beta ∂loss/∂x_{l+1} ⊙ (1 - a_l²).
   * gradSquares (L+1), unless null: gradSquares[l] = ||∂loss/∂x_l||² (Frobenius, over the batch, summed in
   * float64), the gradient-norm curve of the diagnostics; gradSquares[L] is that of the entry value of gy.
   */
  roafMlpBackward(
    L: number, B: number, N: number, alpha: number, beta: number, filters: readonly FilterOperand[],
    Ws: FloatArray, xs: FloatArray, as: FloatArray, gy: FloatArray,
    gWs: FloatArray, gbs: FloatArray, gradSquares: Float64Array | null,
  ): void;

  // ---- ROAF cell over a whole sequence: h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b) ----

  /**
   * Forward of the ROAF cell over T steps.
   * xs (T, B, D); W (N, N); U (N, D); b (N); hs (T+1, B, N) with h_0 already in hs[0];
   * writes hs[1..T] and as (T, B, N) = tanh(z_t).
   */
  roafCellForward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, b: FloatArray, hs: FloatArray, as: FloatArray,
  ): void;

  /**
   * Backpropagation through time for the ROAF cell.
   * ghs (T, B, N): on entry, ∂loss/∂h_t for t = 1..T from the loss (zeros where a step has no loss term);
   * on return, the complete ∂loss/∂h_t for t = 1..T (loss term plus what flows back from later steps),
   * which the diagnostics read as the gradient-norm curve over time.
   * gzs (T, B, N) scratch (receives gz_t). Accumulates gW (N, N), gU (N, D), gb (N).
   * Writes gh0 (B, N) = ∂loss/∂h_0 unless null, and gxs (T, B, D) = ∂loss/∂x_t unless null.
   * `lastStepOnly`: the loss has a term at h_T only (a classifier reading the last state). Then only the last
   * step of ghs is read; the other steps' entries need not be zero, and on return they are unspecified (a
   * backend may use them as working rows). Models pass it when nothing reads the gradient curve: it saves
   * clearing, reading and storing (T-1)·B·N floats per training step.
   */
  roafCellBackward(
    T: number, B: number, D: number, N: number, alpha: number, beta: number, filter: FilterOperand,
    xs: FloatArray, W: FloatArray, U: FloatArray, hs: FloatArray, as: FloatArray,
    ghs: FloatArray, gzs: FloatArray, gW: FloatArray, gU: FloatArray, gb: FloatArray,
    gh0: FloatArray | null, gxs: FloatArray | null, lastStepOnly: boolean,
  ): void;

  // ---- LSTM over a whole sequence (PyTorch's gate order and equations) ----
  //   [i f g o] = x Wxᵀ + h Whᵀ + b;  i,f,o = sigmoid, g = tanh;  c' = f c + i g;  h' = o tanh(c')

  /** xs (T, B, D); Wx (4N, D); Wh (4N, N); b (4N); saved.hs[0] and saved.cs[0] hold h_0, c_0. */
  lstmForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, b: FloatArray, saved: LstmSaved,
  ): void;

  /**
   * ghs (T, B, N) and lastStepOnly as for roafCellBackward; gGates (T, B, 4N) scratch.
   * Accumulates gWx, gWh, gb. Writes gxs (T, B, D) unless null.
   */
  lstmBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: LstmSaved,
    ghs: FloatArray, gGates: FloatArray, gWx: FloatArray, gWh: FloatArray, gb: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void;

  // ---- GRU over a whole sequence (PyTorch's equations) ----
  //   r = σ(Wx_r x + b_ir + Wh_r h + b_hr); z = σ(Wx_z x + b_iz + Wh_z h + b_hz)
  //   n = tanh(Wx_n x + b_in + r ⊙ (Wh_n h + b_hn));  h' = (1 - z) ⊙ n + z ⊙ h

  /** xs (T, B, D); Wx (3N, D); Wh (3N, N); bx (3N); bh (3N); saved.hs[0] holds h_0. */
  gruForward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, bx: FloatArray, bh: FloatArray, saved: GruSaved,
  ): void;

  /**
   * ghs (T, B, N) and lastStepOnly as for roafCellBackward; gGates (T, B, 3N) and gHn (T, B, N) scratch.
   * Accumulates gWx, gWh, gbx, gbh. Writes gxs unless null.
   */
  gruBackward(
    T: number, B: number, D: number, N: number,
    xs: FloatArray, Wx: FloatArray, Wh: FloatArray, saved: GruSaved,
    ghs: FloatArray, gGates: FloatArray, gHn: FloatArray,
    gWx: FloatArray, gWh: FloatArray, gbx: FloatArray, gbh: FloatArray,
    gxs: FloatArray | null, lastStepOnly: boolean,
  ): void;

  // ---- losses ----

  /**
   * Softmax cross-entropy over B rows of K logits with integer labels.
   * Writes grad (B, K) = (softmax - onehot) * gradScale; returns Σ_rows loss (not the mean) in float64.
   * `correct` receives, if given, 1 in row r where argmax(logits[r]) == labels[r], else 0.
   */
  softmaxCrossEntropy(
    B: number, K: number, logits: FloatArray, labels: Int32Array, gradScale: number,
    grad: FloatArray | null, correct: Uint8Array | null,
  ): number;

  /**
   * Squared error over B rows of K outputs: returns Σ (pred - target)² in float64;
   * writes grad = 2 (pred - target) * gradScale unless null.
   */
  squaredError(
    B: number, K: number, pred: FloatArray, target: FloatArray, gradScale: number, grad: FloatArray | null,
  ): number;

  // ---- optimiser updates, on flat parameter buffers ----

  /**
   * Adam (weightDecay > 0: AdamW's decoupled decay), step t >= 1 for the bias correction:
   * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + lr wd p.
   */
  adamUpdate(
    n: number, params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, t: number,
  ): void;

  /** SGD with (heavy-ball) momentum: vel = momentum vel + g; p -= lr vel. */
  sgdUpdate(
    n: number, params: FloatArray, grads: FloatArray, velocity: FloatArray, lr: number, momentum: number,
  ): void;
}
