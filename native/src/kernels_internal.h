// What the kernel files share: blocking parameters, lane helpers, the operands of the matrix product, the ROAF
// step tiles' arguments, and every function one kernel file calls in another.
//
// Each kernel file is compiled three times, once per instruction set (binding.gyp: AVX-512, AVX2+FMA, portable
// C, selected by ROAF_ISA_* and simd.h), and the three copies are linked into one addon. So every function
// shared between kernel files is given its instruction set's suffix below (gemm_serial is gemm_serial_avx2 in
// the AVX2 copy), and is hidden from the addon's exported symbols.
//
// The kernel files, by concern:
//   gemm.c         the packed matrix product: packing, micro-kernels, the threaded driver
//   gemm_bf16.c    the matrix product on bf16 operands with float32 accumulation (--precision bf16)
//   elementwise.c  row-vector sums, tanh, scale, axpy, sum of squares, losses
//   filters.c      applying a dense, permutation or identity filter
//   roaf_layer.c   one ROAF layer per call (forward, backward)
//   roaf_tiles.c   ROAF steps on register tiles: what the MLP stack and the cell run on
//   roaf_mlp.c     the whole ROAF MLP stack in one call, as row sweeps over its layers (float32 and bf16)
//   roaf_cell.c    the ROAF recurrent cell over a whole sequence, as row sweeps over its steps (float32 and bf16)
//   lstm_gru.c     the LSTM and GRU cells over a whole sequence (float32 and bf16)
//   optimizers.c   Adam(W) and SGD updates
//   fma_peak.c     the measured arithmetic peak
//   qr.c           the orthogonal factor of the Householder QR of many matrices (drawing dense filters)
//   kernels.c      the table of one instruction set's kernels (roaf_kernels_<isa>)

#ifndef ROAF_KERNELS_INTERNAL_H
#define ROAF_KERNELS_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"
#include "roaf_native.h"
#include "simd.h"

#pragma GCC visibility push(hidden)

// ---- blocking parameters ----

#if defined(ROAF_ISA_AVX512)
#define MR 8
#define NR 32  // 2 vectors: 16 accumulators
#elif defined(ROAF_ISA_AVX2)
#define MR 6
#define NR 16  // 2 vectors: 12 accumulators
#else
#define MR 4
#define NR 8
#endif
#define NV (NR / VL)
#define K_SPLIT_CHUNKS 8          // chunks of K in a K-split product (gemm.c, gemm_bf16.c), whatever the thread count
#define WHOLE_B_FLOATS (4 << 20)  // products split by rows pack op(B) whole per thread up to 16 MB, else per chunk
#define ROW_STRIP (2 * MR)        // rows of C a strip covers, op(B) packed whole (gemm_general, k_gemm_bf16)
#define KC 256
#define MC (MR * 24)
#define NC 4096
#define SNR (2 * VL)  // columns of a ROAF step tile: two vectors

// ---- index and lane helpers ----

static inline idx min_idx(idx a, idx b) { return a < b ? a : b; }
static inline idx max_idx(idx a, idx b) { return a > b ? a : b; }
static inline idx round_up(idx a, idx m) { return (a + m - 1) / m * m; }

/** Loads/stores w <= VL lanes (w == VL: a full vector). */
static inline vf loadw(const float *p, idx w) { return w == VL ? vload(p) : vloadn(p, (int)w); }
static inline void storew(float *p, vf v, idx w) {
  if (w == VL) vstore(p, v);
  else vstoren(p, v, (int)w);
}

/** Loops j over [0, n) a vector at a time, w the lanes of each step (VL, fewer in the last). */
#define FOR_LANES(j, n, w) for (idx j = 0, w = min_idx(VL, (n)); j < (n); j += VL, w = min_idx(VL, (n) - (j)))

/** Bytes of `count` floats (sizes are non-negative). */
static inline size_t float_bytes(idx count) { return (size_t)count * sizeof(float); }

// ---- the matrix product (gemm.c) ----

/**
 * The A operand of a product: op(A) is (M, K). With `p2` set (no transpose only), columns k >= k1 of op(A)
 * come from p2 (column k - k1): the concatenation [A1, A2] without copying it.
 */
typedef struct {
  const float *p;
  idx ld;
  int trans;
  const float *p2;
  idx ld2;
  idx k1;
} a_operand;

/**
 * The B operand: op(B) is (K, N). The stored matrix (op(B) or its transpose) may be two matrices stacked
 * vertically, rows r >= r1 from p2 (row r - r1); each part has its own scale, so [alpha O; W] packs directly.
 */
typedef struct {
  const float *p;
  idx ld;
  int trans;
  float scale;
  const float *p2;
  idx ld2;
  idx r1;
  float scale2;
} b_operand;

/** op(B) packed once (by pack_b_full) for many products: recurrent weights. */
typedef struct {
  float *data;  // K x Npad, blocks of KC rows, each block NR-column panels
  idx K, N, Npad;
} packed_b;

#define gemm_serial ROAF_SUFFIX(gemm_serial)
#define pack_b_full ROAF_SUFFIX(pack_b_full)
#define packed_b_size ROAF_SUFFIX(packed_b_size)
#define gemm_packed ROAF_SUFFIX(gemm_packed)
#define k_gemm ROAF_SUFFIX(k_gemm)

/** The product on one thread (tid's scratch): C = alpha op(A) op(B) + beta C, op(A) (M, K), op(B) (K, N). */
void gemm_serial(int tid, const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta,
                 float *c, idx ldc);
/** Packs all of op(B) (K, N) into `dst` (packed_b_size(K, N) floats). */
packed_b pack_b_full(const b_operand *b, idx K, idx N, float *dst);
size_t packed_b_size(idx K, idx N);
/** C = alpha op(A) B + beta C on one thread, with B packed by pack_b_full; op(A) is (M, pb->K). */
void gemm_packed(int tid, const a_operand *a, idx M, const packed_b *pb, float alpha, float beta, float *c, idx ldc);
void k_gemm(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B, idx ldb,
            float beta, float *C, idx ldc);
#define sum_partials ROAF_SUFFIX(sum_partials)
/**
 * C = alpha Σ partials + beta C after a product split along K into `chunks` partial products (M, N) stored one
 * after another, summed in chunk order: the chunks depend on the shape only, so the result does not depend on
 * the thread count.
 */
void sum_partials(idx chunks, idx M, idx N, const float *partials, float alpha, float beta, float *c, idx ldc);

// ---- the bf16 matrix product (gemm_bf16.c) ----

#define k_gemm_bf16 ROAF_SUFFIX(k_gemm_bf16)
#define k_bf16_hardware ROAF_SUFFIX(k_bf16_hardware)
#define bf16_round_rows ROAF_SUFFIX(bf16_round_rows)
#define bf16_packed_b_size ROAF_SUFFIX(bf16_packed_b_size)
#define bf16_pack_b_full ROAF_SUFFIX(bf16_pack_b_full)
#define bf16_tile ROAF_SUFFIX(bf16_tile)
#define k_gemm_packed_once ROAF_SUFFIX(k_gemm_packed_once)
#define gemm_bf16_thread ROAF_SUFFIX(gemm_bf16_thread)
#define bf16_pack_b ROAF_SUFFIX(bf16_pack_b)
#define gemm_bf16_packed ROAF_SUFFIX(gemm_bf16_packed)

/** The bf16 bits (high half of the float32) of x rounded to nearest even; NaN stays a (quiet) NaN. */
static inline uint32_t bf16_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/** One packed pair: lo in the low 16 bits, hi in the high 16 bits. */
static inline uint32_t bf16_pair(float lo, float hi) { return bf16_bits(lo) | (bf16_bits(hi) << 16); }

/** The float32 value of a bf16 held in the low 16 bits of h. */
static inline float bf16_value(uint32_t h) {
  uint32_t u = h << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/** x rounded to bf16 (nearest even), as a float32: the reference's bf16Round. */
static inline float bf16_round(float x) { return bf16_value(bf16_bits(x)); }

/** k_gemm with op(A), op(B) rounded to bf16 (nearest even) and float32 accumulation. */
void k_gemm_bf16(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B,
                 idx ldb, float beta, float *C, idx ldc);
/**
 * C = op(A) op(B) + beta C on k_gemm_bf16 when bf16, else k_gemm: a fused kernel's products over a whole
 * sequence (the input side, the weight gradients). Its callers pass bf16 && D > 1 for the gradients of the
 * input side: with one input (D = 1) those are matrix-vector products, bound by reading gz from memory, so they
 * stay float32 (k_gemm's matrix-vector loop) instead of packing gz into bf16 pairs for a tile that would use one
 * of its NR columns. BackendBase.inputSideProduct is the same rule.
 */
static inline void product(int bf16, int transA, int transB, idx M, idx N, idx K, const float *A, idx lda,
                           const float *B, idx ldb, float beta, float *C, idx ldc) {
  if (bf16) k_gemm_bf16(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else k_gemm(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/** 1 when this copy's k_gemm_bf16 runs vdpbf16ps on this CPU (AVX512_BF16), 0 when it runs the C fallback. */
int k_bf16_hardware(void);

// The pieces of the bf16 product the fused bf16 kernels (roaf_cell.c) build on: the weights packed once per
// call, each step's rows rounded into pairs, and one register tile of the product, accumulated in the order of
// k_gemm_bf16's micro-kernel (so for K <= 512, one block of k, the sums are k_gemm_bf16's bit for bit).

/**
 * dst[r·ldd + p] = the bf16 pair (x[r, 2p] low, x[r, 2p+1] high) for p < (N+1)/2, the high half 0 past column N,
 * for `rows` rows of x (row stride ldx): the A operand of bf16_tile.
 */
void bf16_round_rows(idx rows, idx N, const float *x, idx ldx, uint32_t *dst, idx ldd);
/** Words of op(B) (K, N) packed whole by bf16_pack_b_full: (K+1)/2 pairs x N rounded up to NR. */
size_t bf16_packed_b_size(idx K, idx N);
/**
 * Packs all of op(B) (K, N) (B stored (N, K) when trans) rounded to bf16 into `dst`: NR-column panels, panel q
 * at dst + q·NR·((K+1)/2), each (K+1)/2 pair rows of NR words, zero past column N and row K.
 */
void bf16_pack_b_full(const float *B, idx ldb, int trans, idx K, idx N, uint32_t *dst);
/**
 * out[i·NR + j] = Σ_p (a[i·lda + p]) · (b[p·NR + j]) over kp pairs, for i < MR, j < NR: one register tile of the
 * bf16 product (row i of A is the pair words at a + i·lda: all MR rows must be readable), on vdpbf16ps when `hw`
 * (k_bf16_hardware()), else in C with the same bits.
 */
void bf16_tile(int hw, idx kp, const uint32_t *a, idx lda, const uint32_t *b, float *out);
/** op(B) rounded and packed whole (bf16_pack_b_full) for many products: recurrent weights. */
typedef struct {
  const uint32_t *data;
  idx K, N;
} bf16_packed_b;

/** Packs op(B) (K, N) into `dst` (bf16_packed_b_size(K, N) words), as bf16_pack_b_full. */
bf16_packed_b bf16_pack_b(const float *B, idx ldb, int trans, idx K, idx N, uint32_t *dst);
/**
 * C (M, pb->N) = alpha A pb + beta C on one thread (tid's scratch; hw: k_bf16_hardware()), A (M, pb->K) row-major
 * with row stride lda, rounded to bf16 pairs per call: gemm_packed on bf16 operands.
 */
void gemm_bf16_packed(int tid, int hw, const float *A, idx lda, idx M, const bf16_packed_b *pb, float alpha, float beta,
                      float *C, idx ldc);
/** k_gemm_bf16 on the calling thread (tid's scratch): for a task that already runs on the pool. */
void gemm_bf16_thread(int tid, int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda,
                      const float *B, idx ldb, float beta, float *C, idx ldc);

/**
 * product() on thread tid alone (its scratch, no threads started): for a product inside a kernel's own threaded
 * work, such as a step's rows. Always the tiles, whose sums per element do not depend on the rows around it;
 * product() takes a matrix-vector loop instead for a few shapes (gemv_like in gemm.c).
 */
static inline void product_on_thread(int bf16, int tid, int transA, int transB, idx M, idx N, idx K, const float *A,
                                     idx lda, const float *B, idx ldb, float beta, float *C, idx ldc) {
  if (bf16) {
    gemm_bf16_thread(tid, transA, transB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  a_operand a = {.p = A, .ld = lda, .trans = transA};
  b_operand b = {.p = B, .ld = ldb, .trans = transB, .scale = 1.0f};
  gemm_serial(tid, &a, &b, M, N, K, 1.0f, beta, C, ldc);
}

/**
 * Benchmark support (bench/gemm.ts): `repeats` products C (M, N) = A (M, K) B (K, N) on the calling thread with B
 * packed once, in float32 (gemm_packed) or on bf16 operands (the fused bf16 cell's tiles, A rounded per product).
 */
void k_gemm_packed_once(int bf16, idx M, idx N, idx K, const float *A, const float *B, float *C, idx repeats);

// ---- elementwise kernels and losses (elementwise.c) ----

/** The elementwise body of a range task: elements [lo, hi). */
typedef void (*range_fn)(void *arg, idx lo, idx hi);

#define parallel_range ROAF_SUFFIX(parallel_range)
#define k_add_row_vector ROAF_SUFFIX(k_add_row_vector)
#define k_sum_rows ROAF_SUFFIX(k_sum_rows)
#define k_sum_rows_double ROAF_SUFFIX(k_sum_rows_double)
#define k_tanh ROAF_SUFFIX(k_tanh)
#define k_tanh_backward ROAF_SUFFIX(k_tanh_backward)
#define k_sum_squares ROAF_SUFFIX(k_sum_squares)
#define k_scale ROAF_SUFFIX(k_scale)
#define k_axpy ROAF_SUFFIX(k_axpy)
#define k_softmax_cross_entropy ROAF_SUFFIX(k_softmax_cross_entropy)
#define k_squared_error ROAF_SUFFIX(k_squared_error)

/** Runs fn over [0, n) split between threads when n is large (a few µs of work per thread at least). */
void parallel_range(range_fn fn, void *arg, idx n, double costPerElement);
void k_add_row_vector(idx rows, idx n, float *y, const float *bias);
void k_sum_rows(idx rows, idx n, const float *x, float *out);
void k_sum_rows_double(idx rows, idx n, const float *x, double *sums);
void k_tanh(idx n, const float *x, float *out);
void k_tanh_backward(idx n, const float *a, const float *gy, float *gx);
double k_sum_squares(idx n, const float *x);
void k_scale(idx n, float *x, float s);
void k_axpy(idx n, float s, const float *x, float *y);
double k_softmax_cross_entropy(idx B, idx K, const float *logits, const int32_t *labels, float gradScale, float *grad,
                               uint8_t *correct);
double k_squared_error(idx B, idx K, const float *pred, const float *target, float gradScale, float *grad);

// ---- filters (filters.c) ----

#define k_apply_filter ROAF_SUFFIX(k_apply_filter)

#if defined(ROAF_ISA_AVX512) || defined(ROAF_ISA_AVX2)
/**
 * The permutation filter (gather form, y[j] = betaY y[j] + (alpha s[j]) x[perm[j]]) on whole groups of 8 rows
 * without gathers: the group's x transposed into columns of 8 (8 x 8 blocks in registers), then each 8 output
 * columns read as the 8 whole columns perm[j] and transposed back. The same arithmetic as the gathers, which on
 * Zen 4 cost some 45 cycles each (perf: a tenth of the bf16 ROAF RNN step at N = 256, docs/native.md). N a
 * multiple of 8, at most 1,024; x and y may be the same rows. Returns the rows done.
 */
static inline idx permute_row_groups(const int32_t *perm, const float *s, idx rows, idx N, float alpha, const float *x,
                                     float betaY, float *y) {
  float columns[1024 * 8] __attribute__((aligned(32)));
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(betaY);
  idx r = 0;
  for (; r + 8 <= rows; r += 8, x += 8 * N, y += 8 * N) {
    for (idx k0 = 0; k0 < N; k0 += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; i++) v[i] = _mm256_loadu_ps(x + i * N + k0);
      transpose8x8(v);
      for (int c = 0; c < 8; c++) _mm256_store_ps(columns + (k0 + c) * 8, v[c]);
    }
    for (idx j0 = 0; j0 < N; j0 += 8) {
      __m256 v[8];
      for (int c = 0; c < 8; c++) v[c] = _mm256_load_ps(columns + (idx)perm[j0 + c] * 8);
      transpose8x8(v);
      const __m256 as = _mm256_mul_ps(va, _mm256_loadu_ps(s + j0));
      for (int i = 0; i < 8; i++) {
        __m256 o = _mm256_mul_ps(as, v[i]);
        if (betaY != 0.0f) o = _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + i * N + j0), o);
        _mm256_storeu_ps(y + i * N + j0, o);
      }
    }
  }
  return r;
}
#endif

/** Oᵀ of the signed permutation (perm, s) of n in gather form: inverse[perm[i]] = i, inverseSigns[perm[i]] = s[i]. */
static inline void invert_permutation(const int32_t *perm, const float *s, idx n, int32_t *inverse,
                                      float *inverseSigns) {
  for (idx i = 0; i < n; i++) {
    inverse[perm[i]] = (int32_t)i;
    inverseSigns[perm[i]] = s[i];
  }
}

/**
 * y = betaY y + alpha (O x) (or Oᵀ x) on `rows` rows (row stride N) for a permutation or identity filter, in
 * O(N) a row: (O x)[i] = s_i x[perm_i], (Oᵀ x)[perm_i] = s_i x[i]. betaY == 0 never reads y. Every copy rounds
 * the same way: (alpha s_i) x[perm_i] (exact sign flip, one rounding), then betaY y + that in one fused
 * multiply-add.
 *
 * The x86 copies take whole groups of 8 rows by 8 x 8 transposes in registers (permute_row_groups, N a
 * multiple of 8); the AVX-512 copy permutes the other rows in registers: N <= 16, one `vpermps` a row; wider,
 * gathers of 16. The transpose gathers through the inverse permutation (Oᵀ x)[j] = s_{inv j} x[inv j],
 * computed once for all the rows.
 * (A scalar loop here cost 40 % of a width-16 stack's training step, docs/reproduce.md.)
 */
static inline void filter_rows(const roaf_filter *f, int transpose, idx rows, idx N, float alpha, const float *x,
                               float betaY, float *y) {
  if (f->kind == FILTER_IDENTITY) {
    vf va = vset1(alpha), vb = vset1(betaY);
    for (idx r = 0; r < rows; r++, x += N, y += N)
      FOR_LANES(j, N, w) {
        vf v = vmul(va, loadw(x + j, w));
        if (betaY != 0.0f) v = vfma(vb, loadw(y + j, w), v);
        storew(y + j, v, w);
      }
    return;
  }
  const int32_t *perm = f->perm;
  const float *s = f->signs;
  if (transpose && f->inversePerm != NULL) {
    perm = f->inversePerm;
    s = f->inverseSigns;
    transpose = 0;
  }
#if defined(ROAF_ISA_AVX512) || defined(ROAF_ISA_AVX2)
  int32_t inverse[1024];
  float inverseSigns[1024];
  if (N <= 1024 && transpose) {  // gather through the inverse permutation
    invert_permutation(perm, s, N, inverse, inverseSigns);
    perm = inverse;
    s = inverseSigns;
    transpose = 0;
  }
#if defined(ROAF_ISA_AVX512)
  const int groups = N <= 1024 && N > 16 && N % 8 == 0;  // N <= 16: one vpermps a row is cheaper
#else
  const int groups = N <= 1024 && N % 8 == 0;
#endif
  if (groups) {
    idx done = permute_row_groups(perm, s, rows, N, alpha, x, betaY, y);
    rows -= done;
    x += done * N;
    y += done * N;
  }
#endif
#if defined(ROAF_ISA_AVX512)
  if (N <= 1024) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(betaY);
    if (N <= 16) {
      __mmask16 m = (__mmask16)((1u << N) - 1u);
      __m512i pv = _mm512_maskz_loadu_epi32(m, perm);
      __m512 as = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, s));
      for (idx r = 0; r < rows; r++, x += N, y += N) {
        __m512 v = _mm512_mul_ps(as, _mm512_permutexvar_ps(pv, _mm512_maskz_loadu_ps(m, x)));
        if (betaY != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, y), v);
        _mm512_mask_storeu_ps(y, m, v);
      }
      return;
    }
    for (idx r = 0; r < rows; r++, x += N, y += N)
      for (idx j = 0; j < N; j += 16) {
        __mmask16 m = (__mmask16)(N - j >= 16 ? 0xffffu : (1u << (N - j)) - 1u);
        __m512i pv = _mm512_maskz_loadu_epi32(m, perm + j);
        __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, pv, x, 4);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, s + j)), g);
        if (betaY != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, y + j), v);
        _mm512_mask_storeu_ps(y + j, m, v);
      }
    return;
  }
#endif
  for (idx r = 0; r < rows; r++, x += N, y += N) {
    if (!transpose) {
      for (idx i = 0; i < N; i++) {
        float v = (alpha * s[i]) * x[perm[i]];
        y[i] = betaY == 0.0f ? v : fmaf(betaY, y[i], v);
      }
    } else {
      for (idx i = 0; i < N; i++) {
        float v = (alpha * s[i]) * x[i];
        y[perm[i]] = betaY == 0.0f ? v : fmaf(betaY, y[perm[i]], v);
      }
    }
  }
}

/**
 * f with its inverse in gather form filled in (a permutation of n <= 1,024; inverse and inverseSigns hold n
 * each), for a caller that applies Oᵀ to many blocks of rows: filter_rows then does not invert it every call.
 */
static inline roaf_filter filter_with_inverse(const roaf_filter *f, int32_t *inverse, float *inverseSigns) {
  roaf_filter g = *f;
  if (f->kind == FILTER_PERMUTATION && f->inversePerm == NULL && f->n <= 1024) {
    invert_permutation(f->perm, f->signs, f->n, inverse, inverseSigns);
    g.inversePerm = inverse;
    g.inverseSigns = inverseSigns;
  }
  return g;
}

void k_apply_filter(const roaf_filter *f, int transpose, idx B, float alpha, const float *x, float betaY, float *y);

// ---- ROAF steps on register tiles (roaf_tiles.c) ----

/**
 * Software prefetch of what the next step (layer) will touch, one cache line every few iterations of the
 * current step's tile loops: an MLP layer's weights and filter and every step's outputs are in no cache (the
 * stack is far larger than L3), and waiting for them at the start of every step would cost more than the
 * step's arithmetic at small widths. Issued in bursts instead, the prefetches would fill the miss buffers and
 * stall the product.
 */
typedef struct {
  const char *start[4];
  idx lines[4];
  int regions, region;
  idx line, interval, countdown;
} prefetch_plan;

/** How a forward tile combines the product with the layer's elementwise terms. */
typedef struct {
  idx N;
  float alpha, beta;
  int identity;       // add alpha x in the epilogue (an identity filter with alpha != 0)
  const float *bias;  // (N) added to z; NULL: z += a, where a holds the cell's input drive on entry
  const float *u;     // (N), with bias: z += xd[r] u, the input drive of a cell with one input (D = 1)
  const float *xd;    // (rows): that input of each row
} roaf_forward_args;

/** How a backward tile forms ∂loss/∂x_l (or ∂loss/∂h_{t-1}) and the next gz. */
typedef struct {
  idx N;
  float alpha, beta;
  int identity;    // add alpha gy in the epilogue (an identity filter with alpha != 0)
  const float *O;  // a dense filter; NULL: none in the product
  const float *W;
  // Where a column panel's rows are: row k of columns j0..j0+SNR of O (of W) at O + (j0 / SNR)·panel + k·ld.
  // Read in place: ld = N, panel = SNR. Packed (roaf_pack_backward): ld = SNR, panel = the packed panel's size.
  idx ld, panel;
  int accumulate;  // out += the result (the cell's ∂loss/∂h_{t-1} holds its loss term), else out = the result
} roaf_backward_args;

/** What a thread of a ROAF row sweep keeps between the blocks of one step (roaf_row_sweep's `local`). */
typedef struct {
  idx planned;  // 1 + the step whose prefetches are planned (and, in the MLP, whose weights are packed); 0: none
  idx panels;
  prefetch_plan pl;
} sweep_local;

#define plan_add ROAF_SUFFIX(plan_add)
#define plan_spread ROAF_SUFFIX(plan_spread)
#define roaf_pack_forward ROAF_SUFFIX(roaf_pack_forward)
#define roaf_packed_size ROAF_SUFFIX(roaf_packed_size)
#define forward_iterations ROAF_SUFFIX(forward_iterations)
#define backward_iterations ROAF_SUFFIX(backward_iterations)
#define roaf_forward_rows ROAF_SUFFIX(roaf_forward_rows)
#define backward_in_place ROAF_SUFFIX(backward_in_place)
#define roaf_backward_packed_size ROAF_SUFFIX(roaf_backward_packed_size)
#define roaf_pack_backward ROAF_SUFFIX(roaf_pack_backward)
#define roaf_backward_rows ROAF_SUFFIX(roaf_backward_rows)
#define roaf_gz_rows ROAF_SUFFIX(roaf_gz_rows)
#define row_squares ROAF_SUFFIX(row_squares)
#define roaf_weight_tiles ROAF_SUFFIX(roaf_weight_tiles)

/** Adds `floats` floats from p to the plan. */
void plan_add(prefetch_plan *pl, const void *p, idx floats);
/** Spreads the plan's lines evenly over `steps` iterations of the tile loops. */
void plan_spread(prefetch_plan *pl, idx steps);
/**
 * Packs the forward operand of a ROAF step into `dst` (roaf_packed_size(N) floats): with a dense filter O,
 * panel p (N x SNR) = [Wᵀ columns p·VL.., Oᵀ columns p·VL..]; otherwise (O = NULL) panel p = Wᵀ columns
 * p·SNR... Returns the number of panels.
 */
idx roaf_pack_forward(const float *W, const float *O, idx N, float *dst);
size_t roaf_packed_size(idx N);
/** Iterations of the tile loops of a forward step over `rows` rows (to spread its prefetches over). */
idx forward_iterations(idx N, idx panels, idx rows);
/** Iterations of the tile loops of a backward step over `rows` rows, with or without a dense filter. */
idx backward_iterations(idx N, int dense, idx rows);
/**
 * The tiles of one forward step over `rows` rows: x (rows, N) -> a, y; permutation filters applied after.
 * `pl` was spread over the step's tile iterations (forward_iterations).
 */
void roaf_forward_rows(const roaf_forward_args *f, const roaf_filter *filter, int dense, idx rows, const float *packed,
                       idx panels, const float *x, float *a, float *y, prefetch_plan *pl);
/** Backward operands read in place: O (may be NULL) and W, (N, N) row-major. */
void backward_in_place(roaf_backward_args *f, const float *O, const float *W);
size_t roaf_backward_packed_size(idx N);
/**
 * Packs the backward operands once per call, for operands read by every step (the cell's W and O), into
 * `dst` (roaf_backward_packed_size(N) floats), and points `f` at them.
 */
void roaf_pack_backward(roaf_backward_args *f, const float *O, const float *W, float *dst);
/**
 * The tiles of one backward step over `rows` rows: gy, gz (rows, N) -> out (rows, N) and, unless gzNext is
 * NULL, the next gz from aNext; permutation filters applied after the tiles. `pl` was spread over the step's
 * tile iterations (backward_iterations).
 */
void roaf_backward_rows(const roaf_backward_args *f, const roaf_filter *filter, idx rows, const float *gy,
                        const float *gz, float *out, const float *aNext, float *gzNext, prefetch_plan *pl);
/** gz = beta gy ⊙ (1 - a²) for `rows` rows of N. */
void roaf_gz_rows(idx rows, idx N, float beta, const float *gy, const float *a, float *gz);
/** sq[r] = Σ_j g[r, j]² for `rows` rows of N, in double: the squares of gradients below 1e-19 underflow in float. */
void row_squares(idx rows, idx N, const float *g, double *sq);
/** gW (N, N) += gzᵀ x over B rows, gz and x (B, N) read in place, on tiles; `pl` spread over B·N²/(MR·SNR). */
void roaf_weight_tiles(idx B, idx N, const float *gz, const float *x, float *gW, prefetch_plan *pl);

// ---- ROAF steps on bf16 products (roaf_tiles.c): the --precision bf16 cell and stack ----

/**
 * What the tiles of a bf16 step share: W rounded and packed into pair panels (bf16_pack_b_full: op(B) = Wᵀ
 * forward, W backward), a dense filter's O packed in float32 (pack_b_full: Oᵀ forward, O backward), the
 * filter, and the forward's drive.
 */
typedef struct {
  idx N, pairs;
  float alpha, beta;
  const roaf_filter *f;
  int dense;       // a dense filter with alpha != 0: its product in float32 on `ob`
  int filterRows;  // a permutation or identity filter with alpha != 0: filter_rows after the tiles
  int hw;          // bf16_tile runs vdpbf16ps
  const uint32_t *wp;
  const packed_b *ob;
  // The forward's drive: z = acc + bias (+ bf16(xd[r]) ur[j], ur = U rounded: a cell with one input); with
  // bias = NULL, z = acc + a (a holds the drive on entry).
  const float *bias, *ur, *xd;
  const float *next[3];  // rows·N floats each that the next step touches (or NULL): prefetched over the tiles
} bf16_rows_args;

#define bf16_rows_setup ROAF_SUFFIX(bf16_rows_setup)
#define bf16_forward_rows ROAF_SUFFIX(bf16_forward_rows)
#define bf16_backward_rows ROAF_SUFFIX(bf16_backward_rows)

/** The arguments of a bf16 step with its filter settings; the caller points wp, ob, the drive and next. */
bf16_rows_args bf16_rows_setup(idx N, float alpha, float beta, const roaf_filter *f);
/**
 * One forward step over `rows` rows with bf16 products: a = tanh(x Wᵀ + drive), y = beta a + alpha O x, the
 * terms combined in the order of BackendBase's layer and cell (the dense O x first into y, in float32).
 */
void bf16_forward_rows(int tid, const bf16_rows_args *f, idx rows, const float *x, float *a, float *y);
/**
 * One backward step over `rows` rows: out (+)= gz W (bf16), then + alpha gy O (float32) or the O(N) filter, and,
 * unless gzNext is NULL, gzNext = beta out ⊙ (1 - aNext²).
 */
void bf16_backward_rows(int tid, const bf16_rows_args *f, idx rows, const float *gy, const float *gz, float *out,
                        int accumulate, const float *aNext, float *gzNext);

// ---- the kernels of the table (kernels.c), by file ----

#define k_roaf_layer_forward ROAF_SUFFIX(k_roaf_layer_forward)
#define k_roaf_layer_backward ROAF_SUFFIX(k_roaf_layer_backward)
#define k_roaf_mlp_forward ROAF_SUFFIX(k_roaf_mlp_forward)
#define k_roaf_mlp_backward ROAF_SUFFIX(k_roaf_mlp_backward)
#define k_roaf_mlp_forward_bf16 ROAF_SUFFIX(k_roaf_mlp_forward_bf16)
#define k_roaf_mlp_backward_bf16 ROAF_SUFFIX(k_roaf_mlp_backward_bf16)
#define k_roaf_cell_forward ROAF_SUFFIX(k_roaf_cell_forward)
#define k_roaf_cell_backward ROAF_SUFFIX(k_roaf_cell_backward)
#define k_roaf_cell_forward_bf16 ROAF_SUFFIX(k_roaf_cell_forward_bf16)
#define k_roaf_cell_backward_bf16 ROAF_SUFFIX(k_roaf_cell_backward_bf16)
#define k_lstm_forward ROAF_SUFFIX(k_lstm_forward)
#define k_lstm_backward ROAF_SUFFIX(k_lstm_backward)
#define k_gru_forward ROAF_SUFFIX(k_gru_forward)
#define k_gru_backward ROAF_SUFFIX(k_gru_backward)
#define k_lstm_forward_bf16 ROAF_SUFFIX(k_lstm_forward_bf16)
#define k_lstm_backward_bf16 ROAF_SUFFIX(k_lstm_backward_bf16)
#define k_gru_forward_bf16 ROAF_SUFFIX(k_gru_forward_bf16)
#define k_gru_backward_bf16 ROAF_SUFFIX(k_gru_backward_bf16)
#define k_adam_update ROAF_SUFFIX(k_adam_update)
#define k_sgd_update ROAF_SUFFIX(k_sgd_update)
#define k_fma_peak ROAF_SUFFIX(k_fma_peak)
#define k_orthogonal_from_qr ROAF_SUFFIX(k_orthogonal_from_qr)
#define k_product_spectrum_push ROAF_SUFFIX(k_product_spectrum_push)

// roaf_layer.c
void k_roaf_layer_forward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x, const float *W,
                          const float *b, float *a, float *y);
void k_roaf_layer_backward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x, const float *a,
                           const float *W, const float *gy, float *gx, float *gW, float *gb, float *gz);
// roaf_mlp.c
void k_roaf_mlp_forward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                        const float *bs, float *xs, float *as);
void k_roaf_mlp_backward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                         const float *xs, const float *as, float *gy, float *gWs, float *gbs, double *gradSquares);
void k_roaf_mlp_forward_bf16(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                             const float *bs, float *xs, float *as);
void k_roaf_mlp_backward_bf16(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                              const float *xs, const float *as, float *gy, float *gWs, float *gbs, double *gradSquares);
// roaf_cell.c
void k_roaf_cell_forward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                         const float *W, const float *U, const float *b, float *hs, float *as);
void k_roaf_cell_backward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                          const float *W, const float *U, const float *hs, const float *as, float *ghs, float *gzs,
                          float *gW, float *gU, float *gb, float *gh0, float *gxs, int lastStepOnly);
void k_roaf_cell_forward_bf16(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                              const float *xs, const float *W, const float *U, const float *b, float *hs, float *as);
void k_roaf_cell_backward_bf16(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                               const float *xs, const float *W, const float *U, const float *hs, const float *as,
                               float *ghs, float *gzs, float *gW, float *gU, float *gb, float *gh0, float *gxs,
                               int lastStepOnly);
// lstm_gru.c
void k_lstm_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *b,
                    float *hs, float *cs, float *gates);
void k_lstm_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                     const float *cs, const float *gates, float *ghs, float *gGates, float *gWx, float *gWh, float *gb,
                     float *gxs, int lastStepOnly);
void k_gru_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *bx,
                   const float *bh, float *hs, float *gates, float *hn);
void k_gru_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                    const float *gates, const float *hn, float *ghs, float *gGates, float *gHn, float *gWx, float *gWh,
                    float *gbx, float *gbh, float *gxs, int lastStepOnly);
void k_lstm_forward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *b,
                         float *hs, float *cs, float *gates);
void k_lstm_backward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                          const float *hs, const float *cs, const float *gates, float *ghs, float *gGates, float *gWx,
                          float *gWh, float *gb, float *gxs, int lastStepOnly);
void k_gru_forward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *bx,
                        const float *bh, float *hs, float *gates, float *hn);
void k_gru_backward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                         const float *gates, const float *hn, float *ghs, float *gGates, float *gHn, float *gWx,
                         float *gWh, float *gbx, float *gbh, float *gxs, int lastStepOnly);
// qr.c
void k_orthogonal_from_qr(idx count, idx N, int signFix, double *a, double *q);
// spectrum.c
void k_product_spectrum_push(idx n, int first, double *J, double *reflectors, double *tau, double *lyapunovSums,
                             double *m, double *s, double *work);
// optimizers.c
void k_adam_update(idx n, float *params, const float *grads, float *m, float *v, float lr, double beta1, double beta2,
                   float eps, float weightDecay, double t);
void k_sgd_update(idx n, float *params, const float *grads, float *velocity, float lr, float momentum);
// fma_peak.c
double k_fma_peak(double seconds);

#pragma GCC visibility pop

#endif
