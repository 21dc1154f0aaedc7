// The packed matrix product C = alpha op(A) op(B) + beta C, in the style of BLIS/GotoBLAS: op(B) is packed
// into NR-wide column panels and op(A) into MR-tall row panels, KC deep, so the register-blocked micro-kernel
// (MR x NR accumulators) streams both from cache. Packing handles every transpose combination, so one
// micro-kernel serves all four. Also: products against a matrix packed once per call (recurrent weights read
// at every step), matrix-vector shapes, and the threaded driver, which splits rows, columns or K.

#include "kernels_internal.h"

#ifndef A_IN_PLACE
#define A_IN_PLACE 1  // read a transposed A in place instead of packing it (0: always pack, to compare)
#endif

// ---- packing ----

/** Row r of the stored B matrix (of its second part past r1), and that part's scale in *s. */
static inline const float *b_row(const b_operand *b, idx r, float *s) {
  if (b->p2 != NULL && r >= b->r1) {
    *s = b->scale2;
    return b->p2 + (r - b->r1) * b->ld2;
  }
  *s = b->scale;
  return b->p + r * b->ld;
}

/** Packs op(A)[i0 : i0+mc, p0 : p0+kc] as MR-row panels, each kc x MR (k-major), zero-padded to MR rows. */
static void pack_a(const a_operand *a, idx i0, idx mc, idx p0, idx kc, float *restrict dst) {
  for (idx ir = 0; ir < mc; ir += MR) {
    idx mr = min_idx(MR, mc - ir);
    float *panel = dst + ir * kc;
    if (a->trans) {
      for (idx k = 0; k < kc; k++) {
        const float *src = a->p + (p0 + k) * a->ld + i0 + ir;
        idx i = 0;
        for (; i < mr; i++) panel[k * MR + i] = src[i];
        for (; i < MR; i++) panel[k * MR + i] = 0.0f;
      }
    } else {
      idx kEnd1 = a->p2 != NULL ? max_idx(0, min_idx(kc, a->k1 - p0)) : kc;  // columns from p, then from p2
      idx kVector = 0;  // columns [0, kVector) packed by register transposes
#if defined(ROAF_ISA_AVX512)
      // A whole panel of MR = 8 rows goes 8 columns at a time through an 8 x 8 transpose: element by element,
      // packing A took 6 % of a 1,024³ product on two threads (perf), as much as packing B; now 2 %.
      if (mr == 8) {
        const float *src = a->p + (i0 + ir) * a->ld + p0;
        for (; kVector + 8 <= kEnd1; kVector += 8) {
          __m256 r[8];
          for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * a->ld + kVector);
          transpose8x8(r);
          for (int j = 0; j < 8; j++) _mm256_storeu_ps(panel + (kVector + j) * MR, r[j]);
        }
      }
#endif
      for (idx i = 0; i < mr; i++) {
        const float *src = a->p + (i0 + ir + i) * a->ld + p0;
        for (idx k = kVector; k < kEnd1; k++) panel[k * MR + i] = src[k];
        if (kEnd1 < kc) {
          const float *src2 = a->p2 + (i0 + ir + i) * a->ld2 + (p0 + kEnd1 - a->k1);
          for (idx k = kEnd1; k < kc; k++) panel[k * MR + i] = src2[k - kEnd1];
        }
      }
      for (idx i = mr; i < MR; i++)
        for (idx k = 0; k < kc; k++) panel[k * MR + i] = 0.0f;
    }
  }
}

/** Packs op(B)[p0 : p0+kc, j0 : j0+nc] as NR-column panels, each kc x NR (k-major), zero-padded to NR. */
static void pack_b(const b_operand *b, idx p0, idx kc, idx j0, idx nc, float *restrict dst) {
  if (!b->trans) {
    for (idx k = 0; k < kc; k++) {
      float s;
      const float *row = b_row(b, p0 + k, &s) + j0;
      vf vs = vset1(s);
      for (idx jr = 0; jr < nc; jr += NR) {
        float *out = dst + jr * kc + k * NR;
        idx nr = min_idx(NR, nc - jr);
        for (int v = 0; v < NV; v++) {
          idx left = nr - v * VL;
          int w = (int)(left >= VL ? VL : left > 0 ? left : 0);
          vf x = w == VL ? vload(row + jr + v * VL) : w > 0 ? vloadn(row + jr + v * VL, w) : vzero();
          vstore(out + v * VL, vmul(x, vs));
        }
      }
    }
  } else {
    for (idx jr = 0; jr < nc; jr += NR) {
      idx nr = min_idx(NR, nc - jr);
      float *panel = dst + jr * kc;
      for (idx j = 0; j < nr; j++) {
        float s;
        const float *row = b_row(b, j0 + jr + j, &s) + p0;
        for (idx k = 0; k < kc; k++) panel[k * NR + j] = s * row[k];
      }
      for (idx j = nr; j < NR; j++)
        for (idx k = 0; k < kc; k++) panel[k * NR + j] = 0.0f;
    }
  }
}

// ---- micro-kernel ----

/**
 * C[0:mr, 0:nr] = alpha * (a-panel x b-panel) + beta * C (beta == 0: C is not read).
 * Element (i, k) of the a-panel is a[k*ask + i*asi]: (MR, 1) for a packed panel, or the strides of A itself
 * when a full panel is read in place. b: kc x NR packed. The MR x NV accumulators live in registers.
 */
static inline __attribute__((always_inline)) void micro_kernel(idx kc, const float *restrict a, idx ask, idx asi,
                                                               const float *restrict b, float *restrict c, idx ldc,
                                                               idx mr, idx nr, float alpha, float beta) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = vzero();
  for (idx k = 0; k < kc; k++) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = vload(b + v * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      vf ai = vset1(a[i * asi]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] = vfma(ai, bv[v], acc[i][v]);
    }
    a += ask;
    b += NR;
  }
  vf va = vset1(alpha), vb = vset1(beta);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) {
        float *cp = c + i * ldc + v * VL;
        vf r = vmul(acc[i][v], va);
        if (beta != 0.0f) r = vfma(vload(cp), vb, r);
        vstore(cp, r);
      }
    }
  } else {
    for (int i = 0; i < mr; i++) {
      for (int v = 0; v < NV; v++) {
        idx left = nr - v * VL;
        if (left <= 0) break;
        int w = (int)(left >= VL ? VL : left);
        float *cp = c + i * ldc + v * VL;
        vf r = vmul(acc[i][v], va);
        if (beta != 0.0f) r = vfma(loadw(cp, w), vb, r);
        storew(cp, r, w);
      }
    }
  }
}

/** C[0:mc, 0:nc] (+)= packed A block (mc x kc) times packed B block (kc x nc). */
static void macro_kernel(idx mc, idx nc, idx kc, float alpha, const float *ap, const float *bp, float beta, float *c,
                         idx ldc) {
  for (idx jr = 0; jr < nc; jr += NR) {
    idx nr = min_idx(NR, nc - jr);
    for (idx ir = 0; ir < mc; ir += MR) {
      micro_kernel(kc, ap + ir * kc, MR, 1, bp + jr * kc, c + ir * ldc + jr, ldc, min_idx(MR, mc - ir), nr, alpha,
                   beta);
    }
  }
}

/**
 * The same with A read in place (no packing: one operand of a per-step product is small and already in
 * cache, and packing it would cost as much as the streaming it saves): `a` points at op(A)[0, 0] of the
 * block, element (i, k) at a[k*ask + i*asi]. A last partial panel of rows is packed into `edge`.
 */
static void macro_kernel_direct(idx mc, idx nc, idx kc, float alpha, const float *a, idx ask, idx asi, const float *bp,
                                float beta, float *c, idx ldc, float *edge) {
  idx full = mc / MR * MR;
  if (full < mc) {
    idx mr = mc - full;
    for (idx k = 0; k < kc; k++) {
      idx i = 0;
      for (; i < mr; i++) edge[k * MR + i] = a[k * ask + (full + i) * asi];
      for (; i < MR; i++) edge[k * MR + i] = 0.0f;
    }
  }
  for (idx jr = 0; jr < nc; jr += NR) {
    idx nr = min_idx(NR, nc - jr);
    for (idx ir = 0; ir < full; ir += MR) {
      if (asi == 1) micro_kernel(kc, a + ir, ask, 1, bp + jr * kc, c + ir * ldc + jr, ldc, MR, nr, alpha, beta);
      else micro_kernel(kc, a + ir * asi, 1, asi, bp + jr * kc, c + ir * ldc + jr, ldc, MR, nr, alpha, beta);
    }
    if (full < mc) micro_kernel(kc, edge, MR, 1, bp + jr * kc, c + full * ldc + jr, ldc, mc - full, nr, alpha, beta);
  }
}

/** The block of A at rows ic, columns pc of op(A), read in place: returns its strides in *ask, *asi. */
static const float *a_block(const a_operand *a, idx ic, idx pc, idx *ask, idx *asi) {
  if (a->trans) {
    *ask = a->ld;
    *asi = 1;
    return a->p + pc * a->ld + ic;
  }
  *ask = 1;
  *asi = a->ld;
  return a->p + ic * a->ld + pc;
}

/** C = beta * C for an (M, N) block; beta == 0 writes zeros without reading C. */
static void scale_block(idx M, idx N, float beta, float *c, idx ldc) {
  if (beta == 1.0f) return;
  for (idx i = 0; i < M; i++) {
    float *row = c + i * ldc;
    if (beta == 0.0f) memset(row, 0, (size_t)N * sizeof(float));
    else
      for (idx j = 0; j < N; j++) row[j] *= beta;
  }
}

/**
 * op(B) packed block after block as gemm_blocks reads it: the blocks of NC columns in order, each its KC-row
 * blocks in order (block (jc, pc) at jc K + pc round_up(nc, NR)); K round_up(N, NR) floats in all.
 */
static void pack_b_blocks(const b_operand *b, idx K, idx N, float *dst) {
  for (idx jc = 0; jc < N; jc += NC) {
    idx nc = min_idx(NC, N - jc);
    for (idx pc = 0; pc < K; pc += KC) pack_b(b, pc, min_idx(KC, K - pc), jc, nc, dst + jc * K + pc * round_up(nc, NR));
  }
}

/**
 * The product on one thread, block by block. op(B)'s blocks come from `packed` (pack_b_blocks) when given,
 * else each is packed when needed into tid's buffer. Either way every element of C gets the same sums in the
 * same order.
 */
static void gemm_blocks(int tid, const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta,
                        float *c, idx ldc, const float *packed) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_block(M, N, beta, c, ldc);
    return;
  }
  float *bp = packed != NULL ? NULL : roaf_scratch(tid, SCRATCH_PACK_B, (size_t)(KC * round_up(min_idx(N, NC), NR)));
  float *ap = roaf_scratch(tid, SCRATCH_PACK_A, (size_t)KC * MC);
  for (idx jc = 0; jc < N; jc += NC) {
    idx nc = min_idx(NC, N - jc);
    for (idx pc = 0; pc < K; pc += KC) {
      idx kc = min_idx(KC, K - pc);
      float betaBlock = pc == 0 ? beta : 1.0f;
      const float *block = packed != NULL ? packed + jc * K + pc * round_up(nc, NR) : bp;
      if (packed == NULL) pack_b(b, pc, kc, jc, nc, bp);
      for (idx ic = 0; ic < M; ic += MC) {
        idx mc = min_idx(MC, M - ic);
        if (a->p2 == NULL && a->trans && A_IN_PLACE) {
          idx ask, asi;
          const float *ab = a_block(a, ic, pc, &ask, &asi);
          macro_kernel_direct(mc, nc, kc, alpha, ab, ask, asi, block, betaBlock, c + ic * ldc + jc, ldc, ap);
        } else {
          pack_a(a, ic, mc, pc, kc, ap);
          macro_kernel(mc, nc, kc, alpha, ap, block, betaBlock, c + ic * ldc + jc, ldc);
        }
      }
    }
  }
}

void gemm_serial(int tid, const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta,
                 float *c, idx ldc) {
  gemm_blocks(tid, a, b, M, N, K, alpha, beta, c, ldc, NULL);
}

// ---- products against a matrix packed once (recurrent weights) ----

packed_b pack_b_full(const b_operand *b, idx K, idx N, float *dst) {
  packed_b pb = {dst, K, N, round_up(N, NR)};
  for (idx pc = 0; pc < K; pc += KC) pack_b(b, pc, min_idx(KC, K - pc), 0, N, dst + pc * pb.Npad);
  return pb;
}

size_t packed_b_size(idx K, idx N) { return (size_t)(K * round_up(N, NR)); }

void gemm_packed(int tid, const a_operand *a, idx M, const packed_b *pb, float alpha, float beta, float *c, idx ldc) {
  if (M <= 0) return;
  float *ap = roaf_scratch(tid, SCRATCH_PACK_A, (size_t)KC * MC);
  for (idx pc = 0; pc < pb->K; pc += KC) {
    idx kc = min_idx(KC, pb->K - pc);
    float betaBlock = pc == 0 ? beta : 1.0f;
    for (idx ic = 0; ic < M; ic += MC) {
      idx mc = min_idx(MC, M - ic);
      if (a->p2 == NULL && a->trans && A_IN_PLACE) {
        idx ask, asi;
        const float *ab = a_block(a, ic, pc, &ask, &asi);
        macro_kernel_direct(mc, pb->N, kc, alpha, ab, ask, asi, pb->data + pc * pb->Npad, betaBlock, c + ic * ldc, ldc,
                            ap);
      } else {
        pack_a(a, ic, mc, pc, kc, ap);
        macro_kernel(mc, pb->N, kc, alpha, ap, pb->data + pc * pb->Npad, betaBlock, c + ic * ldc, ldc);
      }
    }
  }
}

// ---- the public product ----

typedef struct {
  a_operand a;
  b_operand b;
  idx M, N, K;
  float alpha, beta;
  float *c;
  idx ldc;
  int split;  // 0: rows of C, 1: columns of C, 2: the K dimension (a partial sum per chunk, reduced after)
  work_queue q;
  int packOnce;     // rows split: each thread packs op(B) once, whole, for all the chunks it claims
  float *partials;  // K split: one (M, N) partial product per chunk of K
} gemm_task;

static void gemm_task_run(void *arg, int tid, int nt) {
  (void)nt;
  gemm_task *g = arg;
  idx lo, hi;
  float *packed = NULL;
  while (queue_claim(&g->q, &lo, &hi)) {
    a_operand a = g->a;
    b_operand b = g->b;
    if (g->split == 0) {
      if (g->packOnce && packed == NULL) {
        packed = roaf_scratch(tid, SCRATCH_WHOLE_B, (size_t)(g->K * round_up(g->N, NR)));
        pack_b_blocks(&b, g->K, g->N, packed);
      }
      a.p += a.trans ? lo : lo * a.ld;
      gemm_blocks(tid, &a, &b, hi - lo, g->N, g->K, g->alpha, g->beta, g->c + lo * g->ldc, g->ldc, packed);
    } else if (g->split == 1) {
      b.p += b.trans ? lo * b.ld : lo;
      gemm_serial(tid, &a, &b, g->M, hi - lo, g->K, g->alpha, g->beta, g->c + lo, g->ldc);
    } else {
      a.p += a.trans ? lo * a.ld : lo;
      b.p += b.trans ? lo : lo * b.ld;
      float *partial = g->partials + (lo / g->q.chunk) * g->M * g->N;
      gemm_serial(tid, &a, &b, g->M, g->N, hi - lo, 1.0f, 0.0f, partial, g->N);
    }
  }
}

void sum_partials(idx chunks, idx M, idx N, const float *partials, float alpha, float beta, float *c, idx ldc) {
  vf va = vset1(alpha), vb = vset1(beta);
  for (idx i = 0; i < M; i++) {
    float *row = c + i * ldc;
    FOR_LANES(j, N, w) {
      vf sum = vzero();
      for (idx t = 0; t < chunks; t++) sum = vadd(sum, loadw(partials + t * M * N + i * N + j, w));
      vf r = vmul(va, sum);
      if (beta != 0.0f) r = vfma(vb, loadw(row + j, w), r);
      storew(row + j, r, w);
    }
  }
}

#define GEMV_COLUMNS 10  // gemv_like: op(A) = Aᵀ products with at most this many columns of op(B) ...
#define GEMV_SUMS 8192   // ... and M·N sums at most (32 KB on the stack, in L1 while they are added to)

/**
 * Skinny products (op(B) one column or a few with op(A) = Aᵀ, or op(A) one row) as matrix-vector loops: a tile
 * would waste most of its NR lanes.
 */
static int gemv_like(const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta, float *c,
                     idx ldc) {
  if (N == 1 && !a->trans) {
    // c[i] = alpha Σ_k op(A)[i,k] op(B)[k] + beta c[i]; op(B)[k] = B[k*ldb] (no transpose) or B[k] (transpose).
    idx strideB = b->trans ? 1 : b->ld;
    for (idx i = 0; i < M; i++) {
      const float *row = a->p + i * a->ld;
      float s = 0.0f;
      if (strideB == 1) {
        vf acc = vzero();
        FOR_LANES(k, K, w) acc = vfma(loadw(row + k, w), loadw(b->p + k, w), acc);
        s = vsum(acc);
      } else {
        for (idx k = 0; k < K; k++) s += row[k] * b->p[k * strideB];
      }
      float *out = c + i * ldc;
      *out = beta == 0.0f ? alpha * s : alpha * s + beta * *out;
    }
    return 1;
  }
  if (a->trans && N <= GEMV_COLUMNS && M * N <= GEMV_SUMS) {
    // op(A) = Aᵀ with a few columns of op(B): the input side's weight gradient Σ gzᵀ x (D = 1 for psMNIST, 2
    // for the adding problem, 10 for the copy task). Each row of A, scaled by the N values op(B)[k, :], is
    // added into N vectors of M sums, in order of k: A is read once, in memory order. A register tile would
    // use N of its NR columns: 512 x 2 x 500,000 (the LSTM's gWx on the adding problem) ran at 2.6 GFLOPS.
    float acc[GEMV_SUMS];
    memset(acc, 0, (size_t)(M * N) * sizeof(float));
    for (idx k = 0; k < K; k++) {
      vf bk[GEMV_COLUMNS];
      for (idx j = 0; j < N; j++) bk[j] = vset1(b->trans ? b->p[j * b->ld + k] : b->p[k * b->ld + j]);
      const float *row = a->p + k * a->ld;
      FOR_LANES(i, M, w) {
        vf r = loadw(row + i, w);
        for (idx j = 0; j < N; j++) storew(acc + j * M + i, vfma(r, bk[j], loadw(acc + j * M + i, w)), w);
      }
    }
    for (idx i = 0; i < M; i++)
      for (idx j = 0; j < N; j++) {
        float *out = c + i * ldc + j;
        *out = beta == 0.0f ? alpha * acc[j * M + i] : alpha * acc[j * M + i] + beta * *out;
      }
    return 1;
  }
  if (K == 1 && !b->trans && b->p2 == NULL) {
    // Outer product: C[i, :] = alpha op(A)[i,0] B[0, :] + beta C[i, :] (the input drive when D = 1).
    for (idx i = 0; i < M; i++) {
      float ai = alpha * (a->trans ? a->p[i] : a->p[i * a->ld]);
      vf va = vset1(ai), vb = vset1(beta);
      float *row = c + i * ldc;
      FOR_LANES(j, N, w) {
        vf r = vmul(va, loadw(b->p + j, w));
        if (beta != 0.0f) r = vfma(loadw(row + j, w), vb, r);
        storew(row + j, r, w);
      }
    }
    return 1;
  }
  if (K == 1 && b->trans && b->p2 == NULL && b->ld == 1) {
    b_operand flat = *b;
    flat.trans = 0;
    flat.ld = N;
    return gemv_like(a, &flat, M, N, K, alpha, beta, c, ldc);
  }
  return 0;
}

static void gemm_general(const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta, float *c,
                         idx ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_block(M, N, beta, c, ldc);
    return;
  }
  if (b->p2 == NULL && gemv_like(a, b, M, N, K, alpha, beta, c, ldc)) return;
  double work = (double)M * (double)N * (double)K;
  gemm_task g = {.a = *a, .b = *b, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta, .c = c, .ldc = ldc};
  roaf_plan plan;
  if (K >= 4 * (M + N) && K >= 2 * KC && work >= roaf_min_parallel_work) {
    // Long and thin (weight gradients over T·B rows): split K. The chunks and the order their partial sums
    // are added in depend on the shape only, so the result is the same bit for bit on any number of threads.
    g.split = 2;
    plan = roaf_parallel_plan(NULL, work, K / KC);
    idx chunk = round_up((K + K_SPLIT_CHUNKS - 1) / K_SPLIT_CHUNKS, KC);
    queue_init(&g.q, K, chunk);
    g.partials = roaf_scratch(0, SCRATCH_PARTIAL, (size_t)((K + chunk - 1) / chunk) * (size_t)(M * N));
    roaf_parallel_run(&plan, gemm_task_run, &g);
    sum_partials((K + chunk - 1) / chunk, M, N, g.partials, alpha, beta, c, ldc);
    return;
  }
  int rowStrips = 0;  // rows split into strips of ROW_STRIP rows, on any number of threads
  if (M >= N) {
    g.split = 0;
    plan = roaf_parallel_plan(NULL, work, (M + MR - 1) / MR);
    // Chunks that each packed all of op(B) again cost the second thread a quarter of its time at 1024³;
    // packed once per thread, it costs what one thread's product costs (within a per-thread memory bound).
    g.packOnce = (double)K * (double)round_up(N, NR) <= WHOLE_B_FLOATS;
    // With op(B) packed whole and more than one KC block of K, thin strips of rows beat big chunks: a strip's
    // rows of C stay in cache from one KC block to the next, where a chunk's (128 rows x N at 1,024³) went back
    // to memory between blocks, and the packed op(B) streams from the shared cache. 1,024³ (a C harness, the
    // builds alternated 3-4 times): one thread 90-96 -> 99-108 GFLOPS, two threads 163-179 -> 184-205; 256³
    // and 512³ the same within noise. Every element still gets the same sums in the same order.
    rowStrips = g.packOnce && K > KC;
    queue_init(&g.q, M, rowStrips ? ROW_STRIP : chunk_for(M, plan.threads, 4, MR));
  } else {
    g.split = 1;
    plan = roaf_parallel_plan(NULL, work, (N + NR - 1) / NR);
    queue_init(&g.q, N, chunk_for(N, plan.threads, 4, NR));
  }
  if (plan.threads <= 1 && !rowStrips) {
    gemm_serial(0, a, b, M, N, K, alpha, beta, c, ldc);
    return;
  }
  roaf_parallel_run(&plan, gemm_task_run, &g);
}

void k_gemm(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B, idx ldb,
            float beta, float *C, idx ldc) {
  a_operand a = {.p = A, .ld = lda, .trans = transA};
  b_operand b = {.p = B, .ld = ldb, .trans = transB, .scale = 1.0f};
  gemm_general(&a, &b, M, N, K, alpha, beta, C, ldc);
}
