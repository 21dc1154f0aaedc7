// The matrix product with bf16 operands and float32 accumulation, C = alpha op(A) op(B) + beta C, for
// `--precision bf16` (docs/precision.md).
//
// Both operands are rounded to bf16 (round to nearest even) while they are packed, once per call, and packed
// as pairs along k: one 32-bit word holds op(A)[i, 2p] (low half) and op(A)[i, 2p+1] (high half), and likewise
// for op(B)[2p, j], op(B)[2p+1, j]. That is the operand layout of AVX512_BF16's `vdpbf16ps`, which adds both
// products of a pair into one float32 lane: 32 products per instruction, twice the float32 FMA's 16.
//
// With AVX512_BF16 (checked at run time in the AVX-512 copy) the micro-kernel is `vdpbf16ps` on MR x 2
// vectors of accumulators. Everywhere else the same arithmetic runs in plain C on the same packed words: the
// product of two bf16 values is exact in float32, so `acc += hi·hi; acc += lo·lo` in float32 (the order of
// the instruction's definition) gives what the instruction gives, except that the instruction treats bf16
// subnormals (below 2^-126) as zero; with the epilogue's one fused multiply-add (alpha·acc + beta·C) in every
// copy, every instruction set gives the same bits (test/bf16.test.ts checks it). The packing, blocking and
// threading are those of gemm.c, simplified: no concatenated operands, and rows or columns of C split between
// threads (each element of C is computed the same way on any number of threads).

#include "kernels_internal.h"

#define KP 256                // k pairs per packed block (512 values of k)
#define PAIR_PREFETCH_ROWS 8  // pack_across_k: rows read ahead of the pair being rounded

// ---- rounding and packing ----

/** A stored operand: element (r, c) of op(X) is p[c * ld + r] when transposed, else p[r * ld + c]. */
typedef struct {
  const float *p;
  idx ld;
  int trans;
} bf16_operand;

#if defined(ROAF_ISA_AVX512)
/** bf16_bits of 16 floats at once, in the low halves of the lanes: the same bits as the scalar function. */
static inline __m512i bf16_bits16(__m512i u) {
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))), 16);
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
  return _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(u, 16), quiet);
}
#endif

/** out[j] = bf16_pair(lo[j], hi[j]) for j < n; hi NULL: zero high halves. */
static void pair_two_rows(const float *lo, const float *hi, idx n, uint32_t *restrict out) {
  idx j = 0;
#if defined(ROAF_ISA_AVX512)
  for (; j + 16 <= n; j += 16) {
    __m512i l = bf16_bits16(_mm512_loadu_si512((const void *)(lo + j)));
    __m512i h = hi != NULL ? _mm512_slli_epi32(bf16_bits16(_mm512_loadu_si512((const void *)(hi + j))), 16)
                           : _mm512_setzero_si512();
    _mm512_storeu_si512((void *)(out + j), _mm512_or_si512(l, h));
  }
#endif
  for (; j < n; j++) out[j] = bf16_pair(lo[j], hi != NULL ? hi[j] : 0.0f);
}

/**
 * One panel of `width` words a pair row, kp pair rows, from an operand whose k pairs run along memory: panel word
 * (p, i) = pair(x[i·ld + 2p], x[i·ld + 2p + 1]) for i < n and 2p < kLeft (zero elsewhere, and for the odd
 * element past kLeft). Rounded a row at a time with vectors, KP pairs at a time (a whole operand packed at once
 * has more: bf16_pack_b_full), then transposed into the panel.
 */
static void pack_along_k(const float *x, idx ld, idx n, idx width, idx kp, idx kLeft, uint32_t *restrict panel) {
  uint32_t rows[NR * KP];  // width <= NR
  for (idx p0 = 0; p0 < kp; p0 += KP) {
    idx kpc = min_idx(KP, kp - p0), count = max_idx(0, min_idx(kLeft - 2 * p0, 2 * kpc)), pairs = (count + 1) / 2;
    if (count > 0) bf16_round_rows(n, count, x + 2 * p0, ld, rows, kpc);
    for (idx p = 0; p < kpc; p++) {
      uint32_t *out = panel + (p0 + p) * width;
      idx i = 0;
      if (p < pairs)
        for (; i < n; i++) out[i] = rows[i * kpc + p];
      for (; i < width; i++) out[i] = 0;
    }
  }
}

/**
 * Panels from an operand whose k pairs run across rows: panel q (at dst + q·width·kp) word (p, i) =
 * pair(x[2p·ld + q·width + i], x[(2p+1)·ld + q·width + i]) for q·width + i < n and 2p < kLeft, zero elsewhere.
 * Each pair of rows is read once, in memory order, and rounded with vectors; a loop over panels that read each
 * row a panel's width at a time ran at a few GB/s (rows 1 KB apart, a scalar tail when width < 16).
 */
static inline __attribute__((always_inline)) void pack_across_k(const float *x, idx ld, idx n, idx width, idx kp,
                                                                idx kLeft, uint32_t *restrict dst) {
  uint32_t words[NC];
  idx piece = NC / width * width;  // columns of whole panels at a time (a whole operand may be wider than NC)
  for (idx c0 = 0; c0 < n; c0 += piece) {
    idx nc = min_idx(piece, n - c0), panels = (nc + width - 1) / width;
    for (idx p = 0; p < kp; p++) {
      idx k = 2 * p;
      if (k + PAIR_PREFETCH_ROWS + 1 < kLeft) {
        // The weight gradient's h_{t-1} rows come from memory (written by the forward long before), and the
        // hardware prefetch left pair_two_rows stalled on its loads (a tenth of the bf16 step at N = 256,
        // B = 64): the rows a few pairs ahead are asked for in advance, a line at a time. perf, 10 steps: the
        // packing's samples 807 -> 683; 24 rows ahead: 860.
        const float *ahead = x + (k + PAIR_PREFETCH_ROWS) * ld + c0;
        for (idx j = 0; j < nc; j += 16) {
          prefetch_line(ahead + j);
          prefetch_line(ahead + ld + j);
        }
      }
      if (k < kLeft) pair_two_rows(x + k * ld + c0, k + 1 < kLeft ? x + (k + 1) * ld + c0 : NULL, nc, words);
      for (idx q = 0; q < panels; q++) {
        uint32_t *out = dst + (c0 + q * width) * kp + p * width;
        idx filled = k < kLeft ? min_idx(width, nc - q * width) : 0;
        const uint32_t *src = words + q * width;
        if (filled == width)  // a whole panel row: width is a constant here, so this is a few vector moves
          for (idx i = 0; i < width; i++) out[i] = src[i];
        else
          for (idx i = 0; i < width; i++) out[i] = i < filled ? src[i] : 0;
      }
    }
  }
}

/**
 * Packs the rows r0 .. r0+n of op(X) into panels of `width` rows (panel q at dst + q·width·kp), pairs p0 .. p0+kp
 * of K values.
 */
static inline __attribute__((always_inline)) void pack_panels(const bf16_operand *x, idx r0, idx n, idx width, idx p0,
                                                              idx kp, idx K, uint32_t *dst) {
  idx k0 = 2 * p0;
  if (x->trans) {
    pack_across_k(x->p + k0 * x->ld + r0, x->ld, n, width, kp, K - k0, dst);
    return;
  }
  for (idx r = 0; r < n; r += width)
    pack_along_k(x->p + (r0 + r) * x->ld + k0, x->ld, min_idx(width, n - r), width, kp, K - k0, dst + r * kp);
}

/**
 * Packs op(A)[i0 : i0+mc, 2·p0 : 2·(p0+kp)) (K columns in all) as MR-row panels, each kp x MR words, zero past
 * row mc and column K.
 */
static void pack_a_bf16(const bf16_operand *a, idx i0, idx mc, idx p0, idx kp, idx K, uint32_t *restrict dst) {
  pack_panels(a, i0, mc, MR, p0, kp, K, dst);
}

/**
 * Packs op(B)[2·p0 : 2·(p0+kp)), j0 : j0+nc) as NR-column panels, each kp x NR words, zero-padded. op(B) is
 * (K, N): its column j is a row of Bᵀ, so B itself packs like A transposed and back.
 */
static void pack_b_bf16(const bf16_operand *b, idx p0, idx kp, idx K, idx j0, idx nc, uint32_t *restrict dst) {
  bf16_operand bt = {b->p, b->ld, !b->trans};
  pack_panels(&bt, j0, nc, NR, p0, kp, K, dst);
}

// ---- the tile: an MR x NR block of float32 sums over kp pairs ----

/**
 * Writes an MR x NR tile of float32 sums (row stride NR) into C[0:mr, 0:nr]: alpha·sum, plus beta·C in one
 * fused multiply-add (beta == 0: C is not read). Every copy rounds the same way, so every copy gives the same
 * bits.
 */
static inline void store_tile(const float *tile, float *c, idx ldc, idx mr, idx nr, float alpha, float beta) {
  vf va = vset1(alpha), vb = vset1(beta);
  for (idx r = 0; r < mr; r++) {
    float *row = c + r * ldc;
    for (idx jj = 0; jj < nr; jj += VL) {
      idx w = min_idx(VL, nr - jj);
      vf v = vmul(va, vload(tile + r * NR + jj));
      if (beta != 0.0f) v = vfma(vb, loadw(row + jj, w), v);
      storew(row + jj, v, w);
    }
  }
}

/**
 * The tile in plain C: per pair, acc += hi·hi then acc += lo·lo, products exact in float32. A's word (i, p) is
 * a[i·asi + p·ask]: a packed panel has (asi, ask) = (1, MR), rows of pairs read in place (their stride, 1).
 */
static void tile_generic(idx kp, const uint32_t *a, idx asi, idx ask, const uint32_t *b, float *out) {
  for (int i = 0; i < MR * NR; i++) out[i] = 0.0f;
  for (idx p = 0; p < kp; p++) {
    float blo[NR], bhi[NR];
    for (int j = 0; j < NR; j++) {
      blo[j] = bf16_value(b[p * NR + j] & 0xffffu);
      bhi[j] = bf16_value(b[p * NR + j] >> 16);
    }
    for (int i = 0; i < MR; i++) {
      uint32_t w = a[i * asi + p * ask];
      float alo = bf16_value(w & 0xffffu), ahi = bf16_value(w >> 16);
      for (int j = 0; j < NR; j++) {
        float s = out[i * NR + j] + ahi * bhi[j];
        out[i * NR + j] = s + alo * blo[j];
      }
    }
  }
}

#if defined(ROAF_ISA_AVX512)
#define BF16_HARDWARE 1
/** The tile on `vdpbf16ps`: MR x 2 vectors of accumulators (NR = 2 vectors of 16 in the AVX-512 copy). */
__attribute__((target("avx512bf16"))) static void tile_hardware(idx kp, const uint32_t *a, idx asi, idx ask,
                                                                const uint32_t *b, float *out) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
  for (idx p = 0; p < kp; p++) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(b + v * VL));
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i * asi]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
    }
    a += ask;
    b += NR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(out + i * NR + v * VL, acc[i][v]);
}
#endif

static void tile_bf16(int hw, idx kp, const uint32_t *a, idx asi, idx ask, const uint32_t *b, float *out) {
#if defined(BF16_HARDWARE)
  if (hw) {
    tile_hardware(kp, a, asi, ask, b, out);
    return;
  }
#endif
  (void)hw;
  tile_generic(kp, a, asi, ask, b, out);
}

/** Whether this copy runs `vdpbf16ps` on this CPU (only the AVX-512 copy has it). */
static int bf16_hardware(void) {
#if defined(BF16_HARDWARE)
  return __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}

int k_bf16_hardware(void) { return bf16_hardware(); }

// ---- the driver ----

/**
 * op(B) (K, N) rounded and packed block after block as gemm_bf16_blocks reads it: the blocks of NC columns in
 * order, each its KP-pair blocks in order (block (jc, pc) at jc (K+1)/2 + pc round_up(nc, NR) words).
 */
static void pack_b_bf16_blocks(const bf16_operand *b, idx K, idx N, uint32_t *dst) {
  idx pairs = (K + 1) / 2;
  for (idx jc = 0; jc < N; jc += NC) {
    idx nc = min_idx(NC, N - jc);
    for (idx pc = 0; pc < pairs; pc += KP)
      pack_b_bf16(b, pc, min_idx(KP, pairs - pc), K, jc, nc, dst + jc * pairs + pc * round_up(nc, NR));
  }
}

/**
 * C (M, N) = alpha op(A) op(B) + beta C on one thread, tid's scratch; hw: use vdpbf16ps. op(B)'s blocks come
 * from `packed` (pack_b_bf16_blocks) when given, else each is packed when needed: the same sums either way.
 */
static void gemm_bf16_blocks(int tid, int hw, const bf16_operand *a, const bf16_operand *b, idx M, idx N, idx K,
                             float alpha, float beta, float *c, idx ldc, const uint32_t *packed) {
  if (M <= 0 || N <= 0) return;
  idx pairs = (K + 1) / 2;
  if (pairs == 0 || alpha == 0.0f) {
    for (idx i = 0; i < M; i++)
      for (idx j = 0; j < N; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  uint32_t *bp = packed != NULL
                     ? NULL
                     : (uint32_t *)roaf_scratch(tid, SCRATCH_PACK_B, (size_t)(KP * round_up(min_idx(N, NC), NR)));
  uint32_t *ap = (uint32_t *)roaf_scratch(tid, SCRATCH_PACK_A, (size_t)KP * MC);
  float tile[MR * NR] __attribute__((aligned(64)));
  for (idx jc = 0; jc < N; jc += NC) {
    idx nc = min_idx(NC, N - jc);
    for (idx pc = 0; pc < pairs; pc += KP) {
      idx kp = min_idx(KP, pairs - pc);
      float betaBlock = pc == 0 ? beta : 1.0f;
      const uint32_t *block = packed != NULL ? packed + jc * pairs + pc * round_up(nc, NR) : bp;
      if (packed == NULL) pack_b_bf16(b, pc, kp, K, jc, nc, bp);
      for (idx ic = 0; ic < M; ic += MC) {
        idx mc = min_idx(MC, M - ic), asi = 1, ask = MR;
        if (!a->trans) {  // rows of pairs, read in place by the tile: no transposition into panels
          idx k0 = 2 * pc, padded = round_up(mc, MR);
          bf16_round_rows(mc, min_idx(K - k0, 2 * kp), a->p + ic * a->ld + k0, a->ld, ap, kp);
          memset(ap + mc * kp, 0, (size_t)((padded - mc) * kp) * sizeof(uint32_t));
          asi = kp;
          ask = 1;
        } else {
          pack_a_bf16(a, ic, mc, pc, kp, K, ap);
        }
        for (idx jr = 0; jr < nc; jr += NR) {
          for (idx ir = 0; ir < mc; ir += MR) {
            tile_bf16(hw, kp, ap + ir * kp, asi, ask, block + jr * kp, tile);
            store_tile(tile, c + (ic + ir) * ldc + jc + jr, ldc, min_idx(MR, mc - ir), min_idx(NR, nc - jr), alpha,
                       betaBlock);
          }
        }
      }
    }
  }
  (void)hw;
}

static void gemm_bf16_serial(int tid, int hw, const bf16_operand *a, const bf16_operand *b, idx M, idx N, idx K,
                             float alpha, float beta, float *c, idx ldc) {
  gemm_bf16_blocks(tid, hw, a, b, M, N, K, alpha, beta, c, ldc, NULL);
}

typedef struct {
  bf16_operand a, b;
  idx M, N, K;
  float alpha, beta;
  float *c;
  idx ldc;
  int split;     // 0: rows of C, 1: columns of C, 2: the K dimension (a partial sum per chunk, reduced after)
  int packOnce;  // rows split: each thread packs op(B) once, whole, for all the chunks it claims (gemm.c)
  int hw;
  work_queue q;
  float *partials;  // K split: one (M, N) partial product per chunk of K
} gemm_bf16_task;

static void gemm_bf16_run(void *arg, int tid, int nt) {
  (void)nt;
  gemm_bf16_task *g = arg;
  idx lo, hi;
  uint32_t *packed = NULL;
  while (queue_claim(&g->q, &lo, &hi)) {
    bf16_operand a = g->a, b = g->b;
    if (g->split == 0) {
      if (g->packOnce && packed == NULL) {
        packed = (uint32_t *)roaf_scratch(tid, SCRATCH_WHOLE_B, (size_t)((g->K + 1) / 2 * round_up(g->N, NR)));
        pack_b_bf16_blocks(&b, g->K, g->N, packed);
      }
      a.p += a.trans ? lo : lo * a.ld;
      gemm_bf16_blocks(tid, g->hw, &a, &b, hi - lo, g->N, g->K, g->alpha, g->beta, g->c + lo * g->ldc, g->ldc, packed);
    } else if (g->split == 1) {
      b.p += b.trans ? lo * b.ld : lo;
      gemm_bf16_serial(tid, g->hw, &a, &b, g->M, hi - lo, g->K, g->alpha, g->beta, g->c + lo, g->ldc);
    } else {
      a.p += a.trans ? lo * a.ld : lo;
      b.p += b.trans ? lo : lo * b.ld;
      float *partial = g->partials + (lo / g->q.chunk) * g->M * g->N;
      gemm_bf16_serial(tid, g->hw, &a, &b, g->M, g->N, hi - lo, 1.0f, 0.0f, partial, g->N);
    }
  }
}

void k_gemm_bf16(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B,
                 idx ldb, float beta, float *C, idx ldc) {
  if (M <= 0 || N <= 0) return;
  gemm_bf16_task g = {.a = {A, lda, transA},
                      .b = {B, ldb, transB},
                      .M = M,
                      .N = N,
                      .K = K,
                      .alpha = alpha,
                      .beta = beta,
                      .c = C,
                      .ldc = ldc,
                      .hw = bf16_hardware()};
  double work = (double)M * (double)N * (double)K;
  roaf_plan plan;
  if (K >= 4 * (M + N) && K >= 4 * KP && work >= roaf_min_parallel_work) {
    // Long and thin (weight gradients over T·B rows): split K, as k_gemm does. Chunks of whole pair blocks keep
    // the pairs of k those of the unsplit product; otherwise each thread would pack all of op(B) per chunk.
    g.split = 2;
    plan = roaf_parallel_plan(NULL, work, K / (2 * KP));
    idx chunk = round_up((K + K_SPLIT_CHUNKS - 1) / K_SPLIT_CHUNKS, 2 * KP), chunks = (K + chunk - 1) / chunk;
    queue_init(&g.q, K, chunk);
    g.partials = roaf_scratch(0, SCRATCH_PARTIAL, (size_t)(chunks * M * N));
    roaf_parallel_run(&plan, gemm_bf16_run, &g);
    sum_partials(chunks, M, N, g.partials, alpha, beta, C, ldc);
    return;
  }
  int rowStrips = 0;  // as k_gemm: strips of ROW_STRIP rows when op(B) is packed whole and K has several blocks
  if (M >= N) {
    plan = roaf_parallel_plan(NULL, work, (M + MR - 1) / MR);
    g.packOnce = (double)((K + 1) / 2) * (double)round_up(N, NR) <= WHOLE_B_FLOATS;
    rowStrips = g.packOnce && (K + 1) / 2 > KP;
    queue_init(&g.q, M, rowStrips ? ROW_STRIP : chunk_for(M, plan.threads, 4, MR));
  } else {
    g.split = 1;
    plan = roaf_parallel_plan(NULL, work, (N + NR - 1) / NR);
    queue_init(&g.q, N, chunk_for(N, plan.threads, 4, NR));
  }
  if (plan.threads <= 1 && !rowStrips) {
    gemm_bf16_serial(0, g.hw, &g.a, &g.b, M, N, K, alpha, beta, C, ldc);
    return;
  }
  roaf_parallel_run(&plan, gemm_bf16_run, &g);
}

// ---- the pieces of the fused bf16 kernels (kernels_internal.h) ----

void bf16_round_rows(idx rows, idx N, const float *x, idx ldx, uint32_t *dst, idx ldd) {
  idx pairs = (N + 1) / 2;
  for (idx r = 0; r < rows; r++) {
    const float *row = x + r * ldx;
    uint32_t *out = dst + r * ldd;
    idx p = 0;
#if defined(ROAF_ISA_AVX512)
    // 16 values a vector, rounded; then each pair of 32-bit lanes folded into the low word of its 64-bit lane,
    // and the 64-bit lanes narrowed to 8 words.
    for (; 2 * p + 16 <= N; p += 8) {
      __m512i rounded = bf16_bits16(_mm512_loadu_si512((const void *)(row + 2 * p)));
      __m512i folded = _mm512_or_si512(rounded, _mm512_srli_epi64(rounded, 16));
      _mm256_storeu_si256((__m256i *)(out + p), _mm512_cvtepi64_epi32(folded));
    }
#endif
    for (; p < pairs; p++) out[p] = bf16_pair(row[2 * p], 2 * p + 1 < N ? row[2 * p + 1] : 0.0f);
  }
}

size_t bf16_packed_b_size(idx K, idx N) { return (size_t)(((K + 1) / 2) * round_up(N, NR)); }

void bf16_pack_b_full(const float *B, idx ldb, int trans, idx K, idx N, uint32_t *dst) {
  bf16_operand b = {B, ldb, trans};
  pack_b_bf16(&b, 0, (K + 1) / 2, K, 0, N, dst);
}

void bf16_tile(int hw, idx kp, const uint32_t *a, idx lda, const uint32_t *b, float *out) {
  tile_bf16(hw, kp, a, lda, 1, b, out);
}

// ---- benchmark support: products with the weight operand packed once ----

void k_gemm_packed_once(int bf16, idx M, idx N, idx K, const float *A, const float *B, float *C, idx repeats) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  if (!bf16) {  // float32: B packed once (pack_b_full), then gemm_packed, as the fused float32 kernels do
    b_operand b = {.p = B, .ld = N, .scale = 1.0f};
    packed_b pb = pack_b_full(&b, K, N, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(K, N)));
    a_operand a = {.p = A, .ld = K};
    for (idx r = 0; r < repeats; r++) gemm_packed(0, &a, M, &pb, 1.0f, 0.0f, C, N);
    return;
  }
  // bf16: B rounded and packed once, then per product A's rows rounded into pairs and the tiles of the fused
  // bf16 kernels (roaf_cell.c, lstm_gru.c), one block of k.
  uint32_t *dst = (uint32_t *)roaf_scratch(0, SCRATCH_SHARED_B, bf16_packed_b_size(K, N));
  bf16_packed_b pb = bf16_pack_b(B, N, 0, K, N, dst);
  int hw = bf16_hardware();
  for (idx r = 0; r < repeats; r++) gemm_bf16_packed(0, hw, A, K, M, &pb, 1.0f, 0.0f, C, N);
}

void gemm_bf16_thread(int tid, int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda,
                      const float *B, idx ldb, float beta, float *C, idx ldc) {
  bf16_operand a = {A, lda, transA}, b = {B, ldb, transB};
  gemm_bf16_serial(tid, bf16_hardware(), &a, &b, M, N, K, alpha, beta, C, ldc);
}

bf16_packed_b bf16_pack_b(const float *B, idx ldb, int trans, idx K, idx N, uint32_t *dst) {
  bf16_pack_b_full(B, ldb, trans, K, N, dst);
  return (bf16_packed_b){dst, K, N};
}

void gemm_bf16_packed(int tid, int hw, const float *A, idx lda, idx M, const bf16_packed_b *pb, float alpha, float beta,
                      float *C, idx ldc) {
  if (M <= 0 || pb->N <= 0) return;
  idx K = pb->K, N = pb->N, pairs = (K + 1) / 2, padded = round_up(M, MR);
  uint32_t *ap = (uint32_t *)roaf_scratch(tid, SCRATCH_PACK_A, (size_t)(padded * pairs));
  bf16_round_rows(M, K, A, lda, ap, pairs);
  memset(ap + M * pairs, 0, (size_t)((padded - M) * pairs) * sizeof(uint32_t));
  float tile[MR * NR] __attribute__((aligned(64)));
  for (idx j0 = 0; j0 < N; j0 += NR)
    for (idx i = 0; i < M; i += MR) {
      tile_bf16(hw, pairs, ap + i * pairs, pairs, 1, pb->data + j0 * pairs, tile);
      store_tile(tile, C + i * ldc + j0, ldc, min_idx(MR, M - i), min_idx(NR, N - j0), alpha, beta);
    }
}
