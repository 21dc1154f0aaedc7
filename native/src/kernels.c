// Every float32 kernel of the Backend interface (src/backend/backend.ts), written once on the SIMD vocabulary
// of simd.h and compiled once per instruction set (AVX-512, AVX2+FMA, portable C). The reference backend
// (src/backend/reference.ts) is the specification; test/backend-native.test.ts checks each kernel against it.
//
// Structure:
// - A packed matrix product in the style of BLIS/GotoBLAS: op(B) is packed into NR-wide column panels and
//   op(A) into MR-tall row panels, KC deep, so the register-blocked micro-kernel (MR x NR accumulators)
//   streams both from cache. Packing handles every transpose combination, so one micro-kernel serves all four.
// - Whole-sequence recurrent kernels (ROAF cell, LSTM, GRU) pack their recurrent weights once per call and run
//   one product per step. Batch rows are independent in a recurrence, so threads split the batch and each
//   runs the whole time loop on its own rows, with no synchronisation per step. Weight gradients are one large
//   product over all T·B rows after the sweep.
// - The ROAF MLP runs its whole stack of layers in one call the same way (a layer is a time step with its own
//   weights). ROAF steps (the MLP's layers, the cell's time steps) use small register tiles on operands read in
//   place, with the step's elementwise work fused into the tile's epilogue, and their row sweeps re-balance
//   between threads by stealing rows at step boundaries.
// - Nothing is allocated in a loop: packing and work buffers come from per-thread scratch (pool.c).

#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "roaf_native.h"
#include "simd.h"

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
#define KC 256
#define MC (MR * 24)
#define NC 4096
#define K_SPLIT_CHUNKS 8  // chunks of K in a K-split product, whatever the thread count
#ifndef A_IN_PLACE
#define A_IN_PLACE 1
#endif

/** Work (multiply-adds) below which a product runs on one thread: waking a worker costs a few µs. */
extern double roaf_min_parallel_work;

static inline idx min_idx(idx a, idx b) { return a < b ? a : b; }
static inline idx max_idx(idx a, idx b) { return a > b ? a : b; }
static inline idx round_up(idx a, idx m) { return (a + m - 1) / m * m; }

/** Loads/stores w <= VL lanes (w == VL: a full vector). */
static inline vf loadw(const float *p, int w) { return w == VL ? vload(p) : vloadn(p, w); }
static inline void storew(float *p, vf v, int w) {
  if (w == VL) vstore(p, v);
  else vstoren(p, v, w);
}
#define FOR_LANES(j, n, w) for (idx j = 0, w = (int)min_idx(VL, (n)); j < (n); j += VL, w = (int)min_idx(VL, (n) - j))

// ---- packing ----

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
      for (idx i = 0; i < mr; i++) {
        const float *src = a->p + (i0 + ir + i) * a->ld + p0;
        for (idx k = 0; k < kEnd1; k++) panel[k * MR + i] = src[k];
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
static void macro_kernel(idx mc, idx nc, idx kc, float alpha, const float *ap, const float *bp, float beta,
                         float *c, idx ldc) {
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
static void macro_kernel_direct(idx mc, idx nc, idx kc, float alpha, const float *a, idx ask, idx asi,
                                const float *bp, float beta, float *c, idx ldc, float *edge) {
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
    if (full < mc)
      micro_kernel(kc, edge, MR, 1, bp + jr * kc, c + full * ldc + jr, ldc, mc - full, nr, alpha, beta);
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

/** The product on one thread: C = alpha op(A) op(B) + beta C, op(A) (M, K), op(B) (K, N). */
static void gemm_serial(int tid, const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha,
                        float beta, float *c, idx ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_block(M, N, beta, c, ldc);
    return;
  }
  float *bp = roaf_scratch(tid, SCRATCH_PACK_B, (size_t)KC * round_up(min_idx(N, NC), NR));
  float *ap = roaf_scratch(tid, SCRATCH_PACK_A, (size_t)KC * MC);
  for (idx jc = 0; jc < N; jc += NC) {
    idx nc = min_idx(NC, N - jc);
    for (idx pc = 0; pc < K; pc += KC) {
      idx kc = min_idx(KC, K - pc);
      float betaBlock = pc == 0 ? beta : 1.0f;
      pack_b(b, pc, kc, jc, nc, bp);
      for (idx ic = 0; ic < M; ic += MC) {
        idx mc = min_idx(MC, M - ic);
        if (a->p2 == NULL && a->trans && A_IN_PLACE) {
          idx ask, asi;
          const float *ab = a_block(a, ic, pc, &ask, &asi);
          macro_kernel_direct(mc, nc, kc, alpha, ab, ask, asi, bp, betaBlock, c + ic * ldc + jc, ldc, ap);
        } else {
          pack_a(a, ic, mc, pc, kc, ap);
          macro_kernel(mc, nc, kc, alpha, ap, bp, betaBlock, c + ic * ldc + jc, ldc);
        }
      }
    }
  }
}

// ---- products against a matrix packed once (recurrent weights) ----

typedef struct {
  float *data;  // K x Npad, blocks of KC rows, each block NR-column panels
  idx K, N, Npad;
} packed_b;

/** Packs all of op(B) (K, N) into `dst` (K * round_up(N, NR) floats). */
static packed_b pack_b_full(const b_operand *b, idx K, idx N, float *dst) {
  packed_b pb = {dst, K, N, round_up(N, NR)};
  for (idx pc = 0; pc < K; pc += KC) pack_b(b, pc, min_idx(KC, K - pc), 0, N, dst + pc * pb.Npad);
  return pb;
}

static size_t packed_b_size(idx K, idx N) { return (size_t)K * round_up(N, NR); }

/** C = alpha op(A) B + beta C with B packed by pack_b_full; op(A) is (M, pb->K). */
static void gemm_packed(int tid, const a_operand *a, idx M, const packed_b *pb, float alpha, float beta,
                        float *c, idx ldc) {
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

// ---- threading helpers ----

/**
 * A queue of work in chunks, claimed dynamically by whichever threads take part: a thread whose core is busy
 * with another process simply claims fewer chunks, and the caller alone can complete any task.
 */
typedef struct {
  atomic_long next;
  idx total, chunk;
} work_queue;

static void queue_init(work_queue *q, idx total, idx chunk) {
  atomic_init(&q->next, 0);
  q->total = total;
  q->chunk = chunk < 1 ? 1 : chunk;
}

static int queue_claim(work_queue *q, idx *lo, idx *hi) {
  idx start = atomic_fetch_add_explicit(&q->next, q->chunk, memory_order_relaxed);
  if (start >= q->total) return 0;
  *lo = start;
  *hi = min_idx(q->total, start + q->chunk);
  return 1;
}

/** Chunks of `total` for nt threads: about `per_thread` chunks each, multiples of `align`. */
static idx chunk_for(idx total, int nt, int per_thread, idx align) {
  if (nt <= 1) return round_up(max_idx(total, 1), align);
  return max_idx(align, round_up((total + (idx)nt * per_thread - 1) / ((idx)nt * per_thread), align));
}

/** Threads worth using for `work` multiply-adds that split into `units` independent pieces. */
static int threads_for(double work, idx units) {
  int nt = roaf_pool_available_threads();
  if (nt <= 1 || work < roaf_min_parallel_work) return 1;
  double byWork = work / roaf_min_parallel_work;
  if (byWork < nt) nt = (int)byWork;
  if (units < nt) nt = (int)units;
  return nt < 1 ? 1 : nt;
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
  float *partials;  // K split: one (M, N) partial product per chunk of K
} gemm_task;

static void gemm_task_run(void *arg, int tid, int nt) {
  gemm_task *g = arg;
  idx lo, hi;
  while (queue_claim(&g->q, &lo, &hi)) {
    a_operand a = g->a;
    b_operand b = g->b;
    if (g->split == 0) {
      a.p += a.trans ? lo : lo * a.ld;
      gemm_serial(tid, &a, &b, hi - lo, g->N, g->K, g->alpha, g->beta, g->c + lo * g->ldc, g->ldc);
    } else if (g->split == 1) {
      b.p += b.trans ? lo * b.ld : lo;
      gemm_serial(tid, &a, &b, g->M, hi - lo, g->K, g->alpha, g->beta, g->c + lo, g->ldc);
    } else {
      a.p += a.trans ? lo * a.ld : lo;
      b.p += b.trans ? lo : lo * b.ld;
      float *partial = g->partials + (size_t)(lo / g->q.chunk) * g->M * g->N;
      gemm_serial(tid, &a, &b, g->M, g->N, hi - lo, 1.0f, 0.0f, partial, g->N);
    }
  }
}

/** C = alpha Σ partials + beta C after a K-split product, summed in chunk order (deterministic). */
static void gemm_reduce(gemm_task *g) {
  vf va = vset1(g->alpha), vb = vset1(g->beta);
  idx chunks = (g->K + g->q.chunk - 1) / g->q.chunk;
  for (idx i = 0; i < g->M; i++) {
    float *row = g->c + i * g->ldc;
    FOR_LANES(j, g->N, w) {
      vf sum = vzero();
      for (idx t = 0; t < chunks; t++) sum = vadd(sum, loadw(g->partials + (size_t)t * g->M * g->N + i * g->N + j, w));
      vf r = vmul(va, sum);
      if (g->beta != 0.0f) r = vfma(vb, loadw(row + j, w), r);
      storew(row + j, r, w);
    }
  }
}

/** Skinny products (op(B) one column, or op(A) one row) as matrix-vector loops: a tile would waste NR-1 lanes. */
static int gemv_like(const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta, float *c,
                     idx ldc) {
  if (N == 1) {
    // c[i] = alpha Σ_k op(A)[i,k] op(B)[k] + beta c[i]; op(B)[k] = B[k*ldb] (no transpose) or B[k] (transpose).
    idx strideB = b->trans ? 1 : b->ld;
    if (!a->trans) {
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
    if (M > 4096) return 0;
    // op(A) = Aᵀ: accumulate rows of A scaled by op(B)[k] into a contiguous vector (the gU product when D = 1).
    float acc[4096];
    memset(acc, 0, (size_t)M * sizeof(float));
    for (idx k = 0; k < K; k++) {
      vf bk = vset1(b->p[k * strideB]);
      const float *row = a->p + k * a->ld;
      FOR_LANES(i, M, w) storew(acc + i, vfma(loadw(row + i, w), bk, loadw(acc + i, w)), w);
    }
    for (idx i = 0; i < M; i++) c[i * ldc] = beta == 0.0f ? alpha * acc[i] : alpha * acc[i] + beta * c[i * ldc];
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

static void gemm_general(const a_operand *a, const b_operand *b, idx M, idx N, idx K, float alpha, float beta,
                         float *c, idx ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_block(M, N, beta, c, ldc);
    return;
  }
  if (b->p2 == NULL && gemv_like(a, b, M, N, K, alpha, beta, c, ldc)) return;
  double work = (double)M * N * K;
  gemm_task g = {.a = *a, .b = *b, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta, .c = c, .ldc = ldc};
  int nt;
  if (K >= 4 * (M + N) && K >= 2 * KC && work >= roaf_min_parallel_work) {
    // Long and thin (weight gradients over T·B rows): split K. The chunks and the order their partial sums
    // are added in depend on the shape only, so the result is the same bit for bit on any number of threads.
    g.split = 2;
    nt = threads_for(work, K / KC);
    idx chunk = round_up((K + K_SPLIT_CHUNKS - 1) / K_SPLIT_CHUNKS, KC);
    queue_init(&g.q, K, chunk);
    g.partials = roaf_scratch(0, SCRATCH_PARTIAL, (size_t)((K + chunk - 1) / chunk) * M * N);
    roaf_pool_run(gemm_task_run, &g, nt);
    gemm_reduce(&g);
    return;
  } else if (M >= N) {
    g.split = 0;
    nt = threads_for(work, (M + MR - 1) / MR);
    queue_init(&g.q, M, chunk_for(M, nt, 4, MR));
  } else {
    g.split = 1;
    nt = threads_for(work, (N + NR - 1) / NR);
    queue_init(&g.q, N, chunk_for(N, nt, 4, NR));
  }
  if (nt <= 1) {
    gemm_serial(0, a, b, M, N, K, alpha, beta, c, ldc);
    return;
  }
  roaf_pool_run(gemm_task_run, &g, nt);
}

static void k_gemm(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda,
                   const float *B, idx ldb, float beta, float *C, idx ldc) {
  a_operand a = {.p = A, .ld = lda, .trans = transA};
  b_operand b = {.p = B, .ld = ldb, .trans = transB, .scale = 1.0f};
  gemm_general(&a, &b, M, N, K, alpha, beta, C, ldc);
}

// ---- range-parallel elementwise kernels ----

typedef void (*range_fn)(void *arg, idx lo, idx hi);
typedef struct {
  range_fn fn;
  void *arg;
  work_queue q;
} range_task;

static void range_task_run(void *p, int tid, int nt) {
  range_task *r = p;
  idx lo, hi;
  while (queue_claim(&r->q, &lo, &hi)) r->fn(r->arg, lo, hi);
}

/** Runs fn over [0, n) split between threads when n is large (a few µs of work per thread at least). */
static void parallel_range(range_fn fn, void *arg, idx n, double costPerElement) {
  int nt = threads_for((double)n * costPerElement, n / 4096);
  if (nt <= 1) {
    fn(arg, 0, n);
    return;
  }
  range_task r = {.fn = fn, .arg = arg};
  queue_init(&r.q, n, chunk_for(n, nt, 4, 64));
  roaf_pool_run(range_task_run, &r, nt);
}

static void k_add_row_vector(idx rows, idx n, float *y, const float *bias) {
  for (idx r = 0; r < rows; r++) {
    float *row = y + r * n;
    FOR_LANES(j, n, w) storew(row + j, vadd(loadw(row + j, w), loadw(bias + j, w)), w);
  }
}

/** out[j] += Σ rows, summed in float per block of rows and in double across blocks. */
static void k_sum_rows(idx rows, idx n, const float *x, float *out) {
  double *sums = (double *)roaf_scratch(0, SCRATCH_WORK2, (size_t)2 * n);
  float *block = roaf_scratch(0, SCRATCH_WORK, (size_t)n);
  memset(sums, 0, (size_t)n * sizeof(double));
  for (idx r0 = 0; r0 < rows; r0 += 64) {
    memset(block, 0, (size_t)n * sizeof(float));
    idx r1 = min_idx(rows, r0 + 64);
    for (idx r = r0; r < r1; r++) {
      const float *row = x + r * n;
      FOR_LANES(j, n, w) storew(block + j, vadd(loadw(block + j, w), loadw(row + j, w)), w);
    }
    for (idx j = 0; j < n; j++) sums[j] += block[j];
  }
  for (idx j = 0; j < n; j++) out[j] = (float)(out[j] + sums[j]);
}

typedef struct {
  const float *x, *a, *gy;
  float *out;
  float s;
} ew_args;

static void tanh_range(void *p, idx lo, idx hi) {
  ew_args *e = p;
  FOR_LANES(i, hi - lo, w) storew(e->out + lo + i, vtanh(loadw(e->x + lo + i, w)), w);
}
static void k_tanh(idx n, const float *x, float *out) {
  ew_args e = {.x = x, .out = out};
  parallel_range(tanh_range, &e, n, 8);
}

static void tanh_backward_range(void *p, idx lo, idx hi) {
  ew_args *e = p;
  vf one = vset1(1.0f);
  FOR_LANES(i, hi - lo, w) {
    vf a = loadw(e->a + lo + i, w);
    storew(e->out + lo + i, vmul(loadw(e->gy + lo + i, w), vnmadd(a, a, one)), w);
  }
}
static void k_tanh_backward(idx n, const float *a, const float *gy, float *gx) {
  ew_args e = {.a = a, .gy = gy, .out = gx};
  parallel_range(tanh_backward_range, &e, n, 2);
}

/** Σ x² in float64, as the interface promises: squares of entries below ~1e-19 would vanish in float32. */
static double k_sum_squares(idx n, const float *x) {
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  idx i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; k++) acc[k] += (double)x[i + k] * (double)x[i + k];
  }
  for (; i < n; i++) acc[0] += (double)x[i] * (double)x[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static void scale_range(void *p, idx lo, idx hi) {
  ew_args *e = p;
  vf s = vset1(e->s);
  FOR_LANES(i, hi - lo, w) storew(e->out + lo + i, vmul(loadw(e->out + lo + i, w), s), w);
}
static void k_scale(idx n, float *x, float s) {
  ew_args e = {.out = x, .s = s};
  parallel_range(scale_range, &e, n, 1);
}

static void axpy_range(void *p, idx lo, idx hi) {
  ew_args *e = p;
  vf s = vset1(e->s);
  FOR_LANES(i, hi - lo, w) storew(e->out + lo + i, vfma(loadw(e->x + lo + i, w), s, loadw(e->out + lo + i, w)), w);
}
static void k_axpy(idx n, float s, const float *x, float *y) {
  ew_args e = {.x = x, .out = y, .s = s};
  parallel_range(axpy_range, &e, n, 1);
}

// ---- filters ----

/**
 * One row of y = betaY y + alpha (O x) (or Oᵀ x) for a permutation or identity filter, in O(N).
 * betaY == 0 never reads y.
 */
static void filter_row(const roaf_filter *f, int transpose, idx N, float alpha, const float *x, float betaY,
                       float *y) {
  if (f->kind == FILTER_IDENTITY) {
    vf va = vset1(alpha), vb = vset1(betaY);
    FOR_LANES(j, N, w) {
      vf r = vmul(va, loadw(x + j, w));
      if (betaY != 0.0f) r = vfma(vb, loadw(y + j, w), r);
      storew(y + j, r, w);
    }
    return;
  }
  const int32_t *perm = f->perm;
  const float *s = f->signs;
  if (!transpose) {  // (O x)[i] = s_i x[perm_i]
    if (betaY == 0.0f)
      for (idx i = 0; i < N; i++) y[i] = alpha * s[i] * x[perm[i]];
    else
      for (idx i = 0; i < N; i++) y[i] = betaY * y[i] + alpha * s[i] * x[perm[i]];
  } else {  // (Oᵀ x)[perm_i] = s_i x[i]
    if (betaY == 0.0f)
      for (idx i = 0; i < N; i++) y[perm[i]] = alpha * s[i] * x[i];
    else
      for (idx i = 0; i < N; i++) y[perm[i]] = betaY * y[perm[i]] + alpha * s[i] * x[i];
  }
}

static void k_apply_filter(const roaf_filter *f, int transpose, idx B, float alpha, const float *x, float betaY,
                           float *y) {
  idx N = f->n;
  if (f->kind == FILTER_DENSE) {
    // Rows are vectors: Y = X Oᵀ, and the transposed filter Y = X O.
    k_gemm(0, !transpose, B, N, N, alpha, x, N, f->matrix, N, betaY, y, N);
    return;
  }
  for (idx r = 0; r < B; r++) filter_row(f, transpose, N, alpha, x + r * N, betaY, y + r * N);
}

// ---- ROAF layer: one layer per call (the per-layer path, when every ∂loss/∂x_l is observed) ----

/**
 * For `rows` rows: z = P[:, :N] + bias; a = tanh(z); h = beta a + alpha (O hPrev), where O hPrev is P[:, N:2N]
 * for a dense filter (`dense`) or is applied here in O(N) otherwise.
 */
static void roaf_step_rows(idx rows, idx N, float alpha, float beta, const roaf_filter *f, int dense,
                           const float *P, idx ldp, const float *bias, const float *hPrev, float *a, float *h) {
  vf vbeta = vset1(beta), valpha = vset1(alpha);
  for (idx r = 0; r < rows; r++) {
    const float *p = P + r * ldp;
    float *ar = a + r * N, *hr = h + r * N;
    FOR_LANES(j, N, w) {
      vf z = vadd(loadw(p + j, w), loadw(bias + j, w));
      vf av = vtanh(z);
      storew(ar + j, av, w);
      vf hv = vmul(vbeta, av);
      if (dense) hv = vfma(valpha, loadw(p + N + j, w), hv);
      storew(hr + j, hv, w);
    }
    if (!dense && alpha != 0.0f) filter_row(f, 0, N, alpha, hPrev + r * N, 1.0f, hr);
  }
}

/** The B operand x Wᵀ (or x [W; O]ᵀ when the filter is dense and used): op(B) is (N, N or 2N). */
static b_operand forward_weights(const float *W, idx N, const roaf_filter *f, int dense) {
  b_operand b = {.p = W, .ld = N, .trans = 1, .scale = 1.0f};
  if (dense) {
    b.p2 = f->matrix;
    b.ld2 = N;
    b.r1 = N;
    b.scale2 = 1.0f;
  }
  return b;
}

/** The B operand of the backward product: [alpha O; W] (2N, N) for a dense filter, else W (N, N). */
static b_operand backward_weights(const float *W, idx N, float alpha, const roaf_filter *f, int dense) {
  if (!dense) return (b_operand){.p = W, .ld = N, .trans = 0, .scale = 1.0f};
  return (b_operand){.p = f->matrix, .ld = N, .trans = 0, .scale = alpha, .p2 = W, .ld2 = N, .r1 = N, .scale2 = 1.0f};
}

typedef struct {
  idx B, N;
  float alpha, beta;
  const roaf_filter *f;
  int dense;
  packed_b pb;
  const float *x, *W, *b, *a, *gy;
  float *aOut, *y, *gx, *gW, *gz;
  work_queue rows, wrows;  // batch rows; rows of gW (backward)
} layer_task;

static void layer_forward_run(void *p, int tid, int nt) {
  layer_task *L = p;
  idx r0, r1, ncols = L->pb.N;
  while (queue_claim(&L->rows, &r0, &r1)) {
    float *P = roaf_scratch(tid, SCRATCH_WORK, (size_t)(r1 - r0) * ncols);
    a_operand a = {.p = L->x + r0 * L->N, .ld = L->N};
    gemm_packed(tid, &a, r1 - r0, &L->pb, 1.0f, 0.0f, P, ncols);
    roaf_step_rows(r1 - r0, L->N, L->alpha, L->beta, L->f, L->dense, P, ncols, L->b, L->x + r0 * L->N,
                   L->aOut + r0 * L->N, L->y + r0 * L->N);
  }
}

static void k_roaf_layer_forward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x,
                                 const float *W, const float *b, float *a, float *y) {
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  idx ncols = dense ? 2 * N : N;
  b_operand bw = forward_weights(W, N, f, dense);
  float *buf = roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(N, ncols));
  layer_task L = {.B = B, .N = N, .alpha = alpha, .beta = beta, .f = f, .dense = dense, .x = x, .b = b,
                  .aOut = a, .y = y};
  L.pb = pack_b_full(&bw, N, ncols, buf);
  int nt = threads_for((double)B * N * ncols, (B + MR - 1) / MR);
  queue_init(&L.rows, B, chunk_for(B, nt, 2, MR));
  roaf_pool_run(layer_forward_run, &L, nt);
}

static void layer_backward_run(void *p, int tid, int nt) {
  layer_task *L = p;
  idx N = L->N, r0, r1;
  // gx rows [r0, r1) of the batch: gx = [gy, gz] [alpha O; W] (dense) or gz W + alpha Oᵀ gy.
  while (L->gx != NULL && queue_claim(&L->rows, &r0, &r1)) {
    a_operand a = {.p = L->gy + r0 * N, .ld = N};
    if (L->dense) {
      a.p2 = L->gz + r0 * N;
      a.ld2 = N;
      a.k1 = N;
    } else {
      a.p = L->gz + r0 * N;
    }
    gemm_packed(tid, &a, r1 - r0, &L->pb, 1.0f, 0.0f, L->gx + r0 * N, N);
    if (!L->dense && L->alpha != 0.0f)
      for (idx r = r0; r < r1; r++) filter_row(L->f, 1, N, L->alpha, L->gy + r * N, 1.0f, L->gx + r * N);
  }
  // gW rows [m0, m1): gW[m0:m1, :] += gz[:, m0:m1]ᵀ x.
  idx m0, m1;
  while (queue_claim(&L->wrows, &m0, &m1)) {
    a_operand a = {.p = L->gz + m0, .ld = N, .trans = 1};
    b_operand b = {.p = L->x, .ld = N, .scale = 1.0f};
    gemm_serial(tid, &a, &b, m1 - m0, N, L->B, 1.0f, 1.0f, L->gW + m0 * N, N);
  }
}

static void k_roaf_layer_backward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x,
                                  const float *a, const float *W, const float *gy, float *gx, float *gW, float *gb,
                                  float *gz) {
  vf vbeta = vset1(beta), one = vset1(1.0f);
  FOR_LANES(i, B * N, w) {
    vf av = loadw(a + i, w);
    storew(gz + i, vmul(vmul(vbeta, loadw(gy + i, w)), vnmadd(av, av, one)), w);
  }
  k_sum_rows(B, N, gz, gb);
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  layer_task L = {.B = B, .N = N, .alpha = alpha, .beta = beta, .f = f, .dense = dense, .x = x, .gy = gy,
                  .gx = gx, .gW = gW, .gz = gz};
  if (gx != NULL) {
    b_operand bw = backward_weights(W, N, alpha, f, dense);
    idx K = dense ? 2 * N : N;
    L.pb = pack_b_full(&bw, K, N, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(K, N)));
  }
  double work = (double)B * N * N * (gx != NULL ? (dense ? 3 : 2) : 1);
  int nt = threads_for(work, (min_idx(B, N) + MR - 1) / MR);
  queue_init(&L.rows, B, chunk_for(B, nt, 2, MR));
  queue_init(&L.wrows, N, chunk_for(N, nt, 2, MR));
  roaf_pool_run(layer_backward_run, &L, nt);
}

// ---- ROAF steps on register tiles (the MLP's layers, the cell's time steps) ----
//
// A ROAF step's products are small (rows x N x N, N ~ 64-256), so instead of the general packed product they use
// one register tile (MR rows x 2 vectors) on operands read in place, and the step's elementwise work is done in
// the tile's epilogue while the results are in registers:
// - forward: Wᵀ and Oᵀ are packed interleaved (VL columns of each per panel), so a tile holds z = x Wᵀ and O x
//   for the same VL columns and its epilogue writes a = tanh(z + b) and y = beta a + alpha O x;
// - backward: gx = alpha gy O + gz W reads the rows of O and W (the k of the product) in place in the MLP, whose
//   layers each read their weights once, and packed once per call in column panels in the cell; the epilogue
//   writes gx and already the next step's gz = beta gx ⊙ (1 - a²);
// - the MLP's weight gradients gzᵀ x read both operands in place.
// Permutation filters are applied per row in O(N) after a step's tiles, identity ones inside the epilogue.

#define SNR (2 * VL)  // columns of a step tile: two vectors

/**
 * dst[k * SNR + off + c] = M[(j0 + c) * N + k] for c < width (zero where j0 + c >= N), k < N: `width` columns of
 * Mᵀ, transposed VL x VL blocks at a time in registers.
 */
static void pack_transposed(const float *M, idx N, idx j0, idx width, float *dst, idx off) {
  for (idx c0 = 0; c0 < width; c0 += VL) {
    int valid = (int)max_idx(0, min_idx(VL, N - j0 - c0));
    for (idx k0 = 0; k0 < N; k0 += VL) {
      int kw = (int)min_idx(VL, N - k0);
      vf r[VL];
      for (int c = 0; c < VL; c++) r[c] = c < valid ? loadw(M + (j0 + c0 + c) * N + k0, kw) : vzero();
      vtranspose(r);
      for (int k = 0; k < kw; k++) vstore(dst + (k0 + k) * SNR + off + c0, r[k]);
    }
  }
}

/**
 * Packs the forward operand of a ROAF step into `dst` (N x round_up(N, VL) x 2 floats at most): with a dense
 * filter O, panel p (N x SNR) = [Wᵀ columns p·VL.., Oᵀ columns p·VL..]; otherwise (O = NULL) panel
 * p = Wᵀ columns p·SNR... Returns the number of panels.
 */
static idx roaf_pack_forward(const float *W, const float *O, idx N, float *dst) {
  if (O != NULL) {
    idx panels = (N + VL - 1) / VL;
    for (idx p = 0; p < panels; p++) {
      pack_transposed(W, N, p * VL, VL, dst + p * N * SNR, 0);
      pack_transposed(O, N, p * VL, VL, dst + p * N * SNR, VL);
    }
    return panels;
  }
  idx panels = (N + SNR - 1) / SNR;
  for (idx p = 0; p < panels; p++) pack_transposed(W, N, p * SNR, SNR, dst + p * N * SNR, 0);
  return panels;
}

static size_t roaf_packed_size(idx N) { return (size_t)N * round_up(N, VL) * 2; }

/**
 * Software prefetch of what the next step (layer) will touch, one cache line every few iterations of the current
 * step's tile loops: an MLP layer's weights and filter and every step's outputs are in no cache (the stack is
 * far larger than L3), and waiting for them at the start of every step would cost more than the step's
 * arithmetic at small widths. Issued in bursts instead, the prefetches would fill the miss buffers and stall
 * the product.
 */
typedef struct {
  const char *start[4];
  idx lines[4];
  int write[4];
  int regions, region;
  idx line, interval, countdown;
} prefetch_plan;

static void plan_add(prefetch_plan *pl, const void *p, idx floats, int write) {
  if (p == NULL || floats <= 0) return;
  uintptr_t first = (uintptr_t)p / 64, last = ((uintptr_t)p + (uintptr_t)floats * sizeof(float) - 1) / 64;
  pl->start[pl->regions] = (const char *)(first * 64);
  pl->lines[pl->regions] = (idx)(last - first + 1);
  pl->write[pl->regions] = write;
  pl->regions++;
}

/** Spreads the plan's lines evenly over `steps` steps of the tile loops. */
static void plan_spread(prefetch_plan *pl, idx steps) {
  idx total = 0;
  for (int i = 0; i < pl->regions; i++) total += pl->lines[i];
  pl->interval = pl->countdown = max_idx(1, steps / max_idx(total, 1));
}

/** Issues the plan's next prefetch (tiles call it every pl->interval steps, counting in a register). */
static inline void plan_fire(prefetch_plan *pl) {
  if (pl->region >= pl->regions) return;
  const char *p = pl->start[pl->region] + pl->line * 64;
  if (pl->write[pl->region]) __builtin_prefetch(p, 1, 3);
  else __builtin_prefetch(p, 0, 3);
  if (++pl->line == pl->lines[pl->region]) {
    pl->region++;
    pl->line = 0;
  }
}

/** Row pointers of a tile of mr < MR rows starting at `a` with row stride `ld`; rows past mr repeat the last. */
static inline __attribute__((always_inline)) void tile_rows(const float *ar[MR], const float *a, idx ld, idx mr) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : mr - 1) * ld;
}

/**
 * acc[i][v] += Σ_k A[i, k] b_k[v] for k < K, with A[i, k] at a[i·si + k·sk] (full tiles, `fullRows`: one base
 * and two strides keep the registers free) or ar[i][k·sk] (edge tiles: rows past the last repeat it); b_k is
 * two vectors at b + k·ldb, masked to w0, w1 lanes unless `fullCols`. Counts the prefetch plan's steps in a
 * register and fires one prefetch every pl->interval steps.
 */
#define TILE_ACCUMULATE(fullRows, fullCols, a, ar, si, sk, K, b, ldb, w0, w1, acc, pl)                      \
  do {                                                                                                      \
    idx cd_ = (pl)->countdown;                                                                              \
    const float *bk_ = (b);                                                                                 \
    for (idx k = 0; k < (K); k++, bk_ += (ldb)) {                                                           \
      if (--cd_ <= 0) {                                                                                     \
        cd_ = (pl)->interval;                                                                               \
        plan_fire(pl);                                                                                      \
      }                                                                                                     \
      vf b0 = (fullCols) ? vload(bk_) : loadw(bk_, (w0));                                                   \
      vf b1 = (fullCols) ? vload(bk_ + VL) : loadw(bk_ + VL, (w1));                                         \
      _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                               \
        vf ai = vset1((fullRows) ? (a)[i * (si) + k * (sk)] : (ar)[i][k * (sk)]);                           \
        acc[i][0] = vfma(ai, b0, acc[i][0]);                                                                \
        acc[i][1] = vfma(ai, b1, acc[i][1]);                                                                \
      }                                                                                                     \
    }                                                                                                       \
    (pl)->countdown = cd_;                                                                                  \
  } while (0)

/** How a forward tile combines the product with the layer's elementwise terms. */
typedef struct {
  idx N;
  float alpha, beta;
  int identity;       // add alpha x in the epilogue (an identity filter with alpha != 0)
  const float *bias;  // (N) added to z; NULL: z += a, where a holds the cell's input drive on entry
  const float *u;     // (N), with bias: z += xd[r] u, the input drive of a cell with one input (D = 1)
  const float *xd;    // (rows): that input of each row
} roaf_forward_args;

/**
 * Forward tile: rows [0, mr) of x (stride N) against one packed panel (N x SNR); writes a = tanh(z) and
 * y = beta a + alpha O x of the panel's columns. Dense panels hold [z | O x] for columns j0..j0+VL; the others
 * z for columns j0..j0+SNR (then O x is added here for an identity filter, after the tiles for a permutation).
 */
static inline __attribute__((always_inline)) void roaf_forward_tile(const roaf_forward_args *f, int dense, idx mr,
                                                                     const float *x, const float *panel, idx j0,
                                                                     float *a, float *y, prefetch_plan *pl) {
  idx N = f->N;
  const float *bias = f->bias, *u = f->u, *xd = f->xd;
  int identity = f->identity;
  const float *ar[MR];
  if (mr < MR) tile_rows(ar, x, N, mr);
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  if (mr == MR) TILE_ACCUMULATE(1, 1, x, ar, N, 1, N, panel, SNR, VL, VL, acc, pl);
  else TILE_ACCUMULATE(0, 1, x, ar, N, 1, N, panel, SNR, VL, VL, acc, pl);
  vf vbeta = vset1(f->beta), valpha = vset1(f->alpha);
  for (int v = 0; v < 2; v++) {
    idx j = j0 + v * VL;
    if (j >= N) break;
    int w = (int)min_idx(VL, N - j);
    vf bv = bias != NULL ? loadw(bias + j, w) : vzero(), uv = u != NULL ? loadw(u + j, w) : vzero();
    for (idx i = 0; i < mr; i++) {
      vf z = vadd(acc[i][v], bias != NULL ? bv : loadw(a + i * N + j, w));
      if (u != NULL) z = vfma(vset1(xd[i]), uv, z);
      vf av = vtanh(z);
      storew(a + i * N + j, av, w);
      vf yv = vmul(vbeta, av);
      if (dense) yv = vfma(valpha, acc[i][1], yv);
      else if (identity) yv = vfma(valpha, loadw(x + i * N + j, w), yv);
      storew(y + i * N + j, yv, w);
    }
    if (dense) break;
  }
}

/** Iterations of the tile loops of a forward step over `rows` rows (to spread its prefetches over). */
static idx forward_iterations(idx N, idx panels, idx rows) { return panels * ((rows + MR - 1) / MR) * N; }

/** Iterations of the tile loops of a backward step over `rows` rows, with or without a dense filter. */
static idx backward_iterations(idx N, int dense, idx rows) {
  return ((N + SNR - 1) / SNR) * ((rows + MR - 1) / MR) * N * (dense ? 2 : 1);
}

/**
 * The tiles of one forward step over `rows` rows: x (rows, N) -> a, y; permutation filters applied after.
 * `pl` was spread over the step's tile iterations (forward_iterations).
 */
static void roaf_forward_rows(const roaf_forward_args *f, const roaf_filter *filter, int dense, idx rows,
                              const float *packed, idx panels, const float *x, float *a, float *y,
                              prefetch_plan *pl) {
  idx N = f->N, width = dense ? VL : SNR;
  for (idx p = 0; p < panels; p++) {
    const float *panel = packed + p * N * SNR;
    for (idx i = 0; i < rows; i += MR) {
      idx mr = min_idx(MR, rows - i);
      roaf_forward_args fi = *f;
      if (fi.xd != NULL) fi.xd += i;
      if (dense) roaf_forward_tile(&fi, 1, mr, x + i * N, panel, p * width, a + i * N, y + i * N, pl);
      else roaf_forward_tile(&fi, 0, mr, x + i * N, panel, p * width, a + i * N, y + i * N, pl);
    }
  }
  if (filter->kind == FILTER_PERMUTATION && f->alpha != 0.0f)
    for (idx r = 0; r < rows; r++) filter_row(filter, 0, N, f->alpha, x + r * N, 1.0f, y + r * N);
}

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

/** Backward operands read in place: O (may be NULL) and W, (N, N) row-major. */
static void backward_in_place(roaf_backward_args *f, const float *O, const float *W) {
  f->O = O;
  f->W = W;
  f->ld = f->N;
  f->panel = SNR;
}

static size_t roaf_backward_packed_size(idx N) { return (size_t)2 * N * round_up(N, SNR); }

/**
 * Packs the backward operands once per call, for operands read by every step (the cell's W and O): column panel p
 * (columns p·SNR..) is O's rows then W's rows, SNR floats each, zero past column N, so every tile streams one
 * contiguous block instead of N rows a matrix row apart. Points `f` at them.
 */
static void roaf_pack_backward(roaf_backward_args *f, const float *O, const float *W, float *dst) {
  idx N = f->N, parts = O != NULL ? 2 : 1;
  f->ld = SNR;
  f->panel = parts * N * SNR;
  for (idx j0 = 0; j0 < N; j0 += SNR) {
    float *panel = dst + (j0 / SNR) * f->panel;
    int w0 = (int)min_idx(VL, N - j0), w1 = (int)max_idx(0, min_idx(VL, N - j0 - VL));
    for (idx part = 0; part < parts; part++) {
      const float *M = part == 0 && O != NULL ? O : W;
      float *out = panel + part * N * SNR;
      for (idx k = 0; k < N; k++) {
        vstore(out + k * SNR, loadw(M + k * N + j0, w0));
        vstore(out + k * SNR + VL, w1 > 0 ? loadw(M + k * N + j0 + VL, w1) : vzero());
      }
    }
  }
  f->O = O != NULL ? dst : NULL;
  f->W = dst + (O != NULL ? N * SNR : 0);
}

/**
 * Backward tile: out[rows, j0..j0+SNR) (+)= alpha (gy O)[...] + (gz W)[...] for mr rows; the rows of O and W are
 * the k of the product, read where `f` says (`full`: all SNR columns exist, else loads are masked). The
 * epilogue adds alpha gy for an identity filter, writes out and, when `gzNext` is set, the next gz =
 * beta out ⊙ (1 - aNext²).
 */
static inline __attribute__((always_inline)) void roaf_backward_tile(const roaf_backward_args *f, int full, idx mr,
                                                                      const float *gy, const float *gz, idx j0,
                                                                      float *out, const float *aNext,
                                                                      float *gzNext, prefetch_plan *pl) {
  idx N = f->N;
  idx offset = (j0 / SNR) * f->panel, ld = f->ld;
  const float *O = f->O != NULL ? f->O + offset : NULL, *W = f->W + offset;
  int identity = f->identity, accumulate = f->accumulate;
  int w0 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0)), w1 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0 - VL));
  const float *ar[MR];
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  if (O != NULL) {
    if (mr < MR) tile_rows(ar, gy, N, mr);
    if (mr == MR) TILE_ACCUMULATE(1, full, gy, ar, N, 1, N, O, ld, w0, w1, acc, pl);
    else TILE_ACCUMULATE(0, full, gy, ar, N, 1, N, O, ld, w0, w1, acc, pl);
    vf valpha = vset1(f->alpha);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      acc[i][0] = vmul(acc[i][0], valpha);
      acc[i][1] = vmul(acc[i][1], valpha);
    }
  }
  if (mr < MR) tile_rows(ar, gz, N, mr);
  if (mr == MR) TILE_ACCUMULATE(1, full, gz, ar, N, 1, N, W, ld, w0, w1, acc, pl);
  else TILE_ACCUMULATE(0, full, gz, ar, N, 1, N, W, ld, w0, w1, acc, pl);
  vf valpha = vset1(f->alpha), vbeta = vset1(f->beta), one = vset1(1.0f);
  for (int v = 0; v < 2; v++) {
    int w = v == 0 ? w0 : w1;
    if (w <= 0) break;
    idx j = j0 + v * VL;
    for (idx i = 0; i < mr; i++) {
      vf g = acc[i][v];
      if (identity) g = vfma(valpha, loadw(gy + i * N + j, w), g);
      if (accumulate) g = vadd(g, loadw(out + i * N + j, w));
      storew(out + i * N + j, g, w);
      if (gzNext != NULL) {
        vf av = loadw(aNext + i * N + j, w);
        storew(gzNext + i * N + j, vmul(vmul(vbeta, g), vnmadd(av, av, one)), w);
      }
    }
  }
}

/** gz = beta gy ⊙ (1 - a²) for `rows` rows of N. */
static void roaf_gz_rows(idx rows, idx N, float beta, const float *gy, const float *a, float *gz) {
  vf vbeta = vset1(beta), one = vset1(1.0f);
  FOR_LANES(i, rows * N, w) {
    vf av = loadw(a + i, w);
    storew(gz + i, vmul(vmul(vbeta, loadw(gy + i, w)), vnmadd(av, av, one)), w);
  }
}

/** sq[r] = Σ_j g[r, j]² for `rows` rows of N, in double: the squares of gradients below 1e-19 underflow in float. */
static void row_squares(idx rows, idx N, const float *g, double *sq) {
  for (idx r = 0; r < rows; r++) {
    const float *row = g + r * N;
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    idx j = 0;
    for (; j + 4 <= N; j += 4)
      for (int u = 0; u < 4; u++) s[u] += (double)row[j + u] * row[j + u];
    for (; j < N; j++) s[0] += (double)row[j] * row[j];
    sq[r] = (s[0] + s[1]) + (s[2] + s[3]);
  }
}

/**
 * The tiles of one backward step over `rows` rows: gy, gz (rows, N) -> out (rows, N) and, unless gzNext is NULL,
 * the next gz from aNext; permutation filters applied after the tiles. `pl` was spread over the step's tile
 * iterations (backward_iterations).
 */
static void roaf_backward_rows(const roaf_backward_args *f, const roaf_filter *filter, idx rows, const float *gy,
                               const float *gz, float *out, const float *aNext, float *gzNext, prefetch_plan *pl) {
  idx N = f->N;
  int permutation = filter->kind == FILTER_PERMUTATION && f->alpha != 0.0f;
  for (idx j = 0; j < N; j += SNR) {
    for (idx i = 0; i < rows; i += MR) {
      idx mr = min_idx(MR, rows - i);
      float *gzn = gzNext != NULL && !permutation ? gzNext + i * N : NULL;
      const float *an = gzn != NULL ? aNext + i * N : NULL;
      if (j + SNR <= N) roaf_backward_tile(f, 1, mr, gy + i * N, gz + i * N, j, out + i * N, an, gzn, pl);
      else roaf_backward_tile(f, 0, mr, gy + i * N, gz + i * N, j, out + i * N, an, gzn, pl);
    }
  }
  if (permutation) {
    for (idx r = 0; r < rows; r++) filter_row(filter, 1, N, f->alpha, gy + r * N, 1.0f, out + r * N);
    if (gzNext != NULL) roaf_gz_rows(rows, N, f->beta, out, aNext, gzNext);
  }
}

// ---- row sweeps: rows split between threads once, re-balanced by stealing ----
//
// A sweep runs `steps` dependent steps (layers or time steps) over B independent rows. Each thread takes a slot
// of rows and runs it through every step, with no synchronisation between threads per step. Within a step, the
// owner claims its rows a block (MR rows) at a time, so a thread that runs out of work can steal, without
// waiting for anyone, the upper rows that another slot's owner has not begun in its current step: those rows
// move to a new slot, from that step on. A thread whose core is busy with another process thus keeps fewer rows
// instead of keeping the others waiting, even while it is descheduled. Rows are computed the same way whoever
// computes them, so results are identical on any number of threads.

#define SWEEP_SLOTS 64

typedef struct {
  _Alignas(64) atomic_int lock;  // a cache line per slot: owners claim rows often, each in its own slot
  int owner;   // the thread running it, or -1 (not taken yet)
  idx lo, hi;  // its rows (hi shrinks when a thief takes the upper ones)
  idx step;    // the step its rows are in
  idx cursor;  // rows [lo, cursor) are claimed in that step
} sweep_slot;

/** What a thread keeps between the blocks of one step; the step function sets it up on the step's first block. */
typedef struct {
  idx step;  // the step set up for, or -1
  idx panels;
  prefetch_plan pl;
} sweep_local;

/** Runs `step` on rows [r0, r1); [lo, hi) are the rows of the slot (what the step's prefetches are for). */
typedef void (*sweep_step_fn)(void *task, int tid, sweep_local *local, idx step, idx r0, idx r1, idx lo, idx hi);

typedef struct {
  sweep_step_fn fn;
  void *task;
  idx steps, align;
  int initial, count;  // slots of the initial split; slots in use
  atomic_int lock;     // held to take a slot (rare); an owner claiming its rows takes only its slot's lock
  sweep_slot slots[SWEEP_SLOTS];
} row_sweep;

static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void spin_lock(atomic_int *l) {
  while (atomic_exchange_explicit(l, 1, memory_order_acquire)) spin_pause();
}

static void spin_unlock(atomic_int *l) { atomic_store_explicit(l, 0, memory_order_release); }

/** Runs slot k, owned by thread tid, until its rows have done every step or it has been taken over. */
static void sweep_own(row_sweep *sw, int tid, int k, sweep_local *local) {
  sweep_slot *s = &sw->slots[k];
  for (;;) {
    spin_lock(&s->lock);
    if (s->owner == tid && s->cursor >= s->hi) {  // the owner has done every block of this step
      s->step++;
      s->cursor = s->lo;
    }
    if (s->owner != tid || s->step >= sw->steps || s->lo >= s->hi) {
      spin_unlock(&s->lock);
      return;
    }
    idx step = s->step, r0 = s->cursor, r1 = min_idx(r0 + sw->align, s->hi), lo = s->lo, hi = s->hi;
    s->cursor = r1;
    spin_unlock(&s->lock);
    sw->fn(sw->task, tid, local, step, r0, r1, lo, hi);
  }
}

/** Where a thief would split slot s (locked): the upper half of its rows, or what is unclaimed of it. */
static idx steal_split(const row_sweep *sw, const sweep_slot *s) {
  return max_idx(s->cursor, s->lo + round_up((s->hi - s->lo) / 2, sw->align));
}

/**
 * Takes a slot for thread tid: an untaken one of the initial split, else rows stolen from the slot that would
 * give the most work. Returns the slot, -1 when no work is left to take, -2 when some may be soon (a slot whose
 * owner is in the last block of a step with steps left: its rows become claimable at the next step).
 */
static int sweep_take(row_sweep *sw, int tid) {
  spin_lock(&sw->lock);
  int taken = -1, later = 0, victim = -1, spare = -1;
  double most = 0;
  for (int i = 0; i < sw->count && taken < 0; i++) {
    sweep_slot *s = &sw->slots[i];
    spin_lock(&s->lock);
    if (s->owner < 0) {
      s->owner = tid;
      taken = i;
    } else if (s->step >= sw->steps || s->lo >= s->hi) {
      if (spare < 0) spare = i;  // finished, and its owner has left it: reusable
    } else {
      idx mid = steal_split(sw, s);
      double work = s->hi - mid >= sw->align ? (double)(s->hi - mid) * (double)(sw->steps - s->step) : 0;
      if (work > most) {
        most = work;
        victim = i;
      }
      if (s->hi - s->lo >= 2 * sw->align && s->step + 1 < sw->steps) later = 1;
    }
    spin_unlock(&s->lock);
  }
  if (taken < 0 && victim >= 0 && (spare >= 0 || sw->count < SWEEP_SLOTS)) {
    sweep_slot *v = &sw->slots[victim], *t = &sw->slots[spare >= 0 ? spare : sw->count];
    spin_lock(&v->lock);
    idx mid = steal_split(sw, v);
    if (v->step < sw->steps && v->hi - mid >= sw->align) {
      if (spare >= 0) spin_lock(&t->lock);
      else atomic_init(&t->lock, 1);
      t->owner = tid;
      t->lo = t->cursor = mid;
      t->hi = v->hi;
      t->step = v->step;
      v->hi = mid;
      spin_unlock(&t->lock);
      taken = spare >= 0 ? spare : sw->count++;
    }
    spin_unlock(&v->lock);
  }
  spin_unlock(&sw->lock);
  return taken >= 0 ? taken : later ? -2 : -1;
}

/**
 * A thread's part of a sweep: slots and stolen rows until none are left. When rows may become stealable soon it
 * retries for a few µs, no longer: a slot owner that keeps its rows that long is descheduled, and the pool then
 * sees that the thread waited (its measure of what parallel runs achieve must not count waiting as work).
 */
static void sweep_run(void *p, int tid, int nt) {
  row_sweep *sw = p;
  sweep_local local = {.step = -1};
  for (int retries = 0;;) {
    int k = sweep_take(sw, tid);
    if (k == -1 || (k == -2 && ++retries > 32)) return;
    if (k >= 0) {
      sweep_own(sw, tid, k, &local);
      retries = 0;
    } else {
      for (int i = 0; i < 64; i++) spin_pause();
    }
  }
}

/**
 * Whether a kind of long parallel task (a sweep, the MLP's weight-gradient pass) runs faster on several threads
 * than on one, measured: on a shared machine the other core may be busy, or be given to another virtual
 * machine, and then two threads can take longer than one while both look busy (the pool's own check, CPU time
 * over wall time, cannot see that). Each kind keeps the time per multiply-add of its recent runs on one thread
 * and on several and uses the faster; now and then it runs the other way to notice when things change. A probe
 * costs a run at the slower speed, so the pause between probes starts at TASK_PROBE runs and doubles, up to
 * TASK_PROBE_MAX, while probes keep confirming the choice by a wide margin.
 */
#define TASK_PROBE 16
#define TASK_PROBE_MAX 256
#define TASK_CLEAR_MARGIN 1.3  // a probe this much slower than the choice confirms it

typedef struct {
  const void *kind;
  double cost[2];  // ns per multiply-add on one thread, on several (0: not measured yet)
  int runs;        // the first run is not measured: it touches fresh memory
  int untilProbe;  // runs before the next probe
  int interval;    // runs between probes
  int probing;     // the current run is a probe, on cost index probing - 1
} task_choice;

static task_choice task_choices[8];  // kernels are called from one JavaScript thread

static long long task_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** The record of tasks of this kind, or NULL when the table is full. */
static task_choice *task_choice_for(const void *kind) {
  for (int i = 0; i < 8; i++) {
    if (task_choices[i].kind == kind) return &task_choices[i];
    if (task_choices[i].kind == NULL) {
      task_choices[i].kind = kind;
      return &task_choices[i];
    }
  }
  return NULL;
}

/** Threads for the next task of a kind that could use `available`: see task_choice. */
static int task_threads(task_choice *c, int available) {
  if (c != NULL) c->probing = 0;
  if (available <= 1 || c == NULL || roaf_min_parallel_work <= 0) return available;  // 0: tests, always split
  if (c->runs++ < 1) return available;
  if (c->cost[0] == 0) {  // measure one thread first: the first runs of a training loop are its warm-up
    c->untilProbe = c->interval = TASK_PROBE;
    return 1;
  }
  if (c->cost[1] == 0) return available;
  int several = c->cost[1] < c->cost[0];
  if (--c->untilProbe <= 0) {
    several = !several;
    c->probing = 1 + several;
  }
  return several ? available : 1;
}

/** Records how long a task of `work` multiply-adds took on nt threads since `start`; schedules the next probe. */
static void task_record(task_choice *c, int nt, long long start, double work) {
  if (c == NULL || c->runs <= 1 || work <= 0) return;
  double cost = (double)(task_now_ns() - start) / work, *old = &c->cost[nt > 1];
  *old = *old == 0 ? cost : 0.5 * *old + 0.5 * cost;
  if (c->probing) {
    double probed = c->cost[c->probing - 1], chosen = c->cost[2 - c->probing];
    int clear = chosen > 0 && probed > TASK_CLEAR_MARGIN * chosen;
    c->interval = clear ? (c->interval * 2 < TASK_PROBE_MAX ? c->interval * 2 : TASK_PROBE_MAX) : TASK_PROBE;
    c->untilProbe = c->interval;
  }
}

/** Runs `steps` steps over B rows on up to the threads worth using for `work` multiply-adds. */
static void row_sweep_run(sweep_step_fn fn, void *task, idx steps, idx B, idx align, double work) {
  row_sweep *sw = (row_sweep *)roaf_scratch(0, SCRATCH_SWEEP, sizeof(row_sweep) / sizeof(float) + 1);
  task_choice *choice = task_choice_for((const void *)fn);
  int nt = task_threads(choice, threads_for(work, (B + align - 1) / align));
  sw->fn = fn;
  sw->task = task;
  sw->steps = steps;
  sw->align = align;
  idx chunk = chunk_for(B, nt, 1, align);
  sw->initial = sw->count = (int)((B + chunk - 1) / chunk);
  atomic_init(&sw->lock, 0);
  for (int i = 0; i < sw->initial; i++) {
    sweep_slot *s = &sw->slots[i];
    atomic_init(&s->lock, 0);
    s->owner = -1;
    s->lo = s->cursor = i * chunk;
    s->hi = min_idx(B, (i + 1) * chunk);
    s->step = 0;
  }
  long long start = task_now_ns();
  roaf_pool_run(sweep_run, sw, nt);
  task_record(choice, nt, start, work);
}

// ---- ROAF MLP: the whole stack of layers in one call ----
//
// x_{l+1} = alpha O_l x_l + beta tanh(W_l x_l + b_l) for l = 0..L-1, forward and backward, one call each, as row
// sweeps over the layers: no synchronisation per layer. Only the weight gradients mix rows: the backward sweep
// stores gz_l = ∂loss/∂z_l of every layer, and after it gW_l += gz_lᵀ x_l and gb_l += Σ gz_l are computed one
// whole layer per task, so each is summed in the same order on any number of threads. The forward packs each
// layer's Wᵀ and Oᵀ once per thread (a layer's weights are read once per call, as they stream from memory).

typedef struct {
  idx L, B, N;
  float alpha, beta;
  const roaf_filter *filters;  // (L)
  const float *Ws, *bs;        // (L, N, N), (L, N)
  float *xs, *as;              // (L+1, B, N), (L, B, N)
  float *gy;                   // (B, N): ∂loss/∂x_L on entry, ∂loss/∂x_0 on return
  float *gWs, *gbs;            // (L, N, N), (L, N), accumulated
  float *gzs;                  // (L, B, N) scratch: gz_l of every layer
  float *ping[2];              // (B, N) each: ∂loss/∂x_l, alternating between layers
  double *rowSq;               // (L+1, B): ||∂loss/∂x_l[r]||², or NULL
  work_queue layers;           // the weight-gradient pass
} mlp_task;

static inline int mlp_dense(const mlp_task *m, idx l) {
  return m->filters[l].kind == FILTER_DENSE && m->alpha != 0.0f;
}

/** Layer l of the forward for rows [r0, r1) of the slot [lo, hi) (a block of a step of the forward sweep). */
static void mlp_forward_step(void *p, int tid, sweep_local *local, idx l, idx r0, idx r1, idx lo, idx hi) {
  const mlp_task *m = p;
  idx N = m->N, step = m->B * N;
  const roaf_filter *filter = &m->filters[l];
  int dense = mlp_dense(m, l);
  float *packed = roaf_scratch(tid, SCRATCH_PACK_B, roaf_packed_size(N));
  if (local->step != l) {  // the thread's first rows of layer l: pack its weights, plan the prefetches
    local->step = l;
    local->panels = roaf_pack_forward(m->Ws + l * N * N, dense ? filter->matrix : NULL, N, packed);
    local->pl = (prefetch_plan){0};
    if (l + 1 < m->L) {
      plan_add(&local->pl, m->Ws + (l + 1) * N * N, N * N, 0);
      if (mlp_dense(m, l + 1) && m->filters[l + 1].matrix != filter->matrix)
        plan_add(&local->pl, m->filters[l + 1].matrix, N * N, 0);
      plan_add(&local->pl, m->as + (l + 1) * step + lo * N, (hi - lo) * N, 1);
      plan_add(&local->pl, m->xs + (l + 2) * step + lo * N, (hi - lo) * N, 1);
    }
    plan_spread(&local->pl, forward_iterations(N, local->panels, hi - lo));
  }
  roaf_forward_args f = {.N = N, .alpha = m->alpha, .beta = m->beta, .bias = m->bs + l * N,
                         .identity = filter->kind == FILTER_IDENTITY && m->alpha != 0.0f};
  roaf_forward_rows(&f, filter, dense, r1 - r0, packed, local->panels, m->xs + l * step + r0 * N,
                    m->as + l * step + r0 * N, m->xs + (l + 1) * step + r0 * N, &local->pl);
}

static void k_roaf_mlp_forward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters,
                               const float *Ws, const float *bs, float *xs, float *as) {
  if (L <= 0 || B <= 0 || N <= 0) return;
  mlp_task m = {.L = L, .B = B, .N = N, .alpha = alpha, .beta = beta, .filters = filters, .Ws = Ws, .bs = bs,
                .xs = xs, .as = as};
  row_sweep_run(mlp_forward_step, &m, L, B, MR, (double)L * B * N * N * 2);
}

/**
 * Step s of the backward sweep for rows [r0, r1) of the slot [lo, hi): layer l = L-1-s, from ∂loss/∂x_{l+1} (gy at
 * s = 0, then the ping-pong buffers) to ∂loss/∂x_l, storing gz_{l-1} for the next step and the weight gradients.
 */
static void mlp_backward_step(void *p, int tid, sweep_local *local, idx s, idx r0, idx r1, idx lo, idx hi) {
  const mlp_task *m = p;
  idx L = m->L, N = m->N, B = m->B, step = B * N, rows = r1 - r0, l = L - 1 - s;
  const float *gy = (s == 0 ? m->gy : m->ping[(s + 1) & 1]) + r0 * N;  // ∂loss/∂x_{l+1}
  float *out = m->ping[s & 1] + r0 * N;                                 // ∂loss/∂x_l
  if (s == 0) {
    if (m->rowSq != NULL) row_squares(rows, N, gy, m->rowSq + L * B + r0);
    roaf_gz_rows(rows, N, m->beta, gy, m->as + l * step + r0 * N, m->gzs + l * step + r0 * N);
  }
  const roaf_filter *filter = &m->filters[l];
  if (local->step != s) {  // the thread's first rows of this layer: plan the prefetches for the next
    local->step = s;
    local->pl = (prefetch_plan){0};
    if (l > 0) {
      plan_add(&local->pl, m->Ws + (l - 1) * N * N, N * N, 0);
      if (mlp_dense(m, l - 1) && m->filters[l - 1].matrix != filter->matrix)
        plan_add(&local->pl, m->filters[l - 1].matrix, N * N, 0);
      if (l > 1) {
        plan_add(&local->pl, m->as + (l - 2) * step + lo * N, (hi - lo) * N, 0);
        plan_add(&local->pl, m->gzs + (l - 2) * step + lo * N, (hi - lo) * N, 1);
      }
    }
    plan_spread(&local->pl, backward_iterations(N, mlp_dense(m, l), hi - lo));
  }
  const float *aNext = l > 0 ? m->as + (l - 1) * step + r0 * N : NULL;
  float *gzNext = l > 0 ? m->gzs + (l - 1) * step + r0 * N : NULL;
  roaf_backward_args f = {.N = N, .alpha = m->alpha, .beta = m->beta,
                          .identity = filter->kind == FILTER_IDENTITY && m->alpha != 0.0f};
  backward_in_place(&f, mlp_dense(m, l) ? filter->matrix : NULL, m->Ws + l * N * N);
  roaf_backward_rows(&f, filter, rows, gy, m->gzs + l * step + r0 * N, out, aNext, gzNext, &local->pl);
  if (m->rowSq != NULL) row_squares(rows, N, out, m->rowSq + l * B + r0);
  if (l == 0) memcpy(m->gy + r0 * N, out, (size_t)rows * N * sizeof(float));
}

/** gW[0:mr, j0..j0+SNR) += Σ_k gz[k, i0+i] x[k, j] over the B rows, gz and x read in place. */
static inline __attribute__((always_inline)) void mlp_weight_tile(idx B, idx N, int full, idx mr, const float *gz,
                                                                   const float *x, idx j0, float *gW,
                                                                   prefetch_plan *pl) {
  int w0 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0)), w1 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0 - VL));
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  const float *ar[MR];
  if (mr < MR) {
    tile_rows(ar, gz, 1, mr);
    TILE_ACCUMULATE(0, full, gz, ar, 1, N, B, x + j0, N, w0, w1, acc, pl);
  } else {
    TILE_ACCUMULATE(1, full, gz, ar, 1, N, B, x + j0, N, w0, w1, acc, pl);
  }
  for (idx i = 0; i < mr; i++) {
    float *c = gW + i * N + j0;
    if (full) {
      vstore(c, vadd(vload(c), acc[i][0]));
      vstore(c + VL, vadd(vload(c + VL), acc[i][1]));
    } else {
      if (w0 > 0) storew(c, vadd(loadw(c, w0), acc[i][0]), w0);
      if (w1 > 0) storew(c + VL, vadd(loadw(c + VL, w1), acc[i][1]), w1);
    }
  }
}

/** gb[j] += Σ_r gz[r, j], in float per block of 64 rows and in double across blocks (as k_sum_rows). */
static void mlp_bias_sum(idx B, idx N, const float *gz, float *gb) {
  FOR_LANES(j, N, w) {
    double total[VL] = {0};
    float block[VL];
    for (idx r0 = 0; r0 < B; r0 += 64) {
      vf acc = vzero();
      for (idx r = r0; r < min_idx(B, r0 + 64); r++) acc = vadd(acc, loadw(gz + r * N + j, w));
      vstore(block, acc);
      for (int c = 0; c < w; c++) total[c] += block[c];
    }
    for (int c = 0; c < w; c++) gb[j + c] = (float)(gb[j + c] + total[c]);
  }
}

/** gW_l += gz_lᵀ x_l and gb_l += Σ_rows gz_l for layers [l0, l1). */
static void mlp_weight_layers(const mlp_task *m, idx l0, idx l1) {
  idx B = m->B, N = m->N, step = B * N;
  for (idx l = l0; l < l1; l++) {
    const float *gz = m->gzs + l * step, *x = m->xs + l * step;
    float *gW = m->gWs + l * N * N;
    prefetch_plan pl = {0};
    if (l + 1 < l1) {
      plan_add(&pl, gz + step, step, 0);
      plan_add(&pl, x + step, step, 0);
      plan_add(&pl, gW + N * N, N * N, 1);
    }
    plan_spread(&pl, ((N + SNR - 1) / SNR) * ((N + MR - 1) / MR) * B);
    for (idx i = 0; i < N; i += MR) {
      idx mr = min_idx(MR, N - i);
      for (idx j = 0; j < N; j += SNR) {
        if (j + SNR <= N && mr == MR) mlp_weight_tile(B, N, 1, MR, gz + i, x, j, gW + i * N, &pl);
        else mlp_weight_tile(B, N, 0, mr, gz + i, x, j, gW + i * N, &pl);
      }
    }
    mlp_bias_sum(B, N, gz, m->gbs + l * N);
  }
}

static void mlp_weight_run(void *p, int tid, int nt) {
  mlp_task *m = p;
  idx l0, l1;
  while (queue_claim(&m->layers, &l0, &l1)) mlp_weight_layers(m, l0, l1);
}

static void k_roaf_mlp_backward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters,
                                const float *Ws, const float *xs, const float *as, float *gy, float *gWs,
                                float *gbs, double *gradSquares) {
  if (N <= 0) return;
  if (L <= 0 || B <= 0) {
    if (gradSquares != NULL) gradSquares[0] = B > 0 ? k_sum_squares(B * N, gy) : 0.0;
    return;
  }
  mlp_task m = {.L = L, .B = B, .N = N, .alpha = alpha, .beta = beta, .filters = filters, .Ws = Ws,
                .xs = (float *)xs, .as = (float *)as, .gy = gy, .gWs = gWs, .gbs = gbs};
  m.gzs = roaf_scratch(0, SCRATCH_STACK, (size_t)L * B * N + 2 * B * N);
  m.ping[0] = m.gzs + L * B * N;
  m.ping[1] = m.ping[0] + B * N;
  if (gradSquares != NULL) m.rowSq = (double *)roaf_scratch(0, SCRATCH_STACK_ROWS, (size_t)2 * (L + 1) * B);
  row_sweep_run(mlp_backward_step, &m, L, B, MR, (double)L * B * N * N * 2);
  task_choice *choice = task_choice_for((const void *)mlp_weight_run);
  int nt = task_threads(choice, threads_for((double)L * B * N * N, L));
  queue_init(&m.layers, L, chunk_for(L, nt, 32, 1));
  long long start = task_now_ns();
  roaf_pool_run(mlp_weight_run, &m, nt);
  task_record(choice, nt, start, (double)L * B * N * N);
  if (gradSquares != NULL) {
    for (idx l = 0; l <= L; l++) {
      double total = 0.0;
      for (idx r = 0; r < B; r++) total += m.rowSq[l * B + r];
      gradSquares[l] = total;
    }
  }
}

// ---- recurrent sweeps: shared pieces ----
//
// Batch rows are independent in a recurrence, so a sweep's work queue hands out groups of batch rows and
// each thread runs the whole time loop on the groups it claims: no synchronisation per step at all.

/**
 * Groups of batch rows in a sweep: more balance the load when a core is busy, fewer give larger products.
 * The grouping depends on B only (not on the threads available), so bias-gradient sums, accumulated per group
 * and added in group order, are the same bit for bit on any number of threads.
 */
#define SWEEP_CHUNKS 4

/** Threads for a sweep whose per-step product is B x cols x K, and the work queue of its batch rows. */
static int sweep_setup(work_queue *q, idx T, idx B, idx cols, idx K) {
  queue_init(q, B, max_idx(MR, round_up((B + SWEEP_CHUNKS - 1) / SWEEP_CHUNKS, MR)));
  return threads_for((double)T * B * cols * K, B / MR);
}

/** acc[j] += Σ_r x[r, j] over `rows` rows of stride ld (float within the step, double across steps). */
static void accumulate_columns(idx rows, idx n, const float *x, idx ld, double *acc, float *tmp) {
  memset(tmp, 0, (size_t)n * sizeof(float));
  for (idx r = 0; r < rows; r++) {
    const float *row = x + r * ld;
    FOR_LANES(j, n, w) storew(tmp + j, vadd(loadw(tmp + j, w), loadw(row + j, w)), w);
  }
  for (idx j = 0; j < n; j++) acc[j] += tmp[j];
}

/** Bias-gradient sums in double, one row of n per group of batch rows (see sweep_setup). */
typedef struct {
  double *acc;
  idx n, groups;
} bias_sums;

static bias_sums bias_sums_new(int slot, const work_queue *q, idx n) {
  bias_sums s = {.n = n, .groups = (q->total + q->chunk - 1) / q->chunk};
  s.acc = (double *)roaf_scratch(0, slot, (size_t)2 * s.groups * n + 2 * VL);
  memset(s.acc, 0, (size_t)(s.groups * n) * sizeof(double));
  return s;
}

static double *group_sums(const bias_sums *s, const work_queue *q, idx r0) { return s->acc + (r0 / q->chunk) * s->n; }

static void add_bias_sums(const bias_sums *s, float *out) {
  for (idx j = 0; j < s->n; j++) {
    double total = 0.0;
    for (idx g = 0; g < s->groups; g++) total += s->acc[g * s->n + j];
    out[j] = (float)(out[j] + total);
  }
}

// ---- ROAF cell ----
//
// The steps of a sequence are the layers of a ROAF MLP that share W, O and whose bias is the step's input
// drive, so the cell runs on the stack's tiles and row sweeps: [Wᵀ | Oᵀ] packed once per call for the forward,
// W and O read in place by the backward, each step's elementwise work in the tiles' epilogues.

typedef struct {
  idx T, B, N;
  float alpha, beta;
  const roaf_filter *f;
  int dense;
  const float *packed;  // forward: the packed [Wᵀ | Oᵀ] (or Wᵀ) panels
  idx panels;
  const float *xs, *U, *b;  // forward with D = 1: the input drive is formed in the tiles (else b = U = NULL)
  float *hs, *as, *ghs, *gzs, *gh0;
  roaf_backward_args backward;  // the backward's operands, packed once per call
  int lastStepOnly;             // backward: only ghs's last step is read; ghs's steps 0 and 1 serve as ping-pong rows
} cell_task;

/** Step t of the forward for rows [r0, r1) of the slot [lo, hi): h_t from h_{t-1}. */
static void cell_forward_step(void *p, int tid, sweep_local *local, idx t, idx r0, idx r1, idx lo, idx hi) {
  const cell_task *c = p;
  idx N = c->N, step = c->B * N;
  if (local->step != t) {  // the thread's first rows of step t: plan the prefetches for the next
    local->step = t;
    local->pl = (prefetch_plan){0};
    if (t + 1 < c->T) {
      plan_add(&local->pl, c->as + (t + 1) * step + lo * N, (hi - lo) * N, 1);
      plan_add(&local->pl, c->hs + (t + 2) * step + lo * N, (hi - lo) * N, 1);
    }
    plan_spread(&local->pl, forward_iterations(N, c->panels, hi - lo));
  }
  roaf_forward_args f = {.N = N, .alpha = c->alpha, .beta = c->beta, .bias = c->b, .u = c->U,
                         .xd = c->U != NULL ? c->xs + t * c->B + r0 : NULL,
                         .identity = c->f->kind == FILTER_IDENTITY && c->alpha != 0.0f};
  roaf_forward_rows(&f, c->f, c->dense, r1 - r0, c->packed, c->panels, c->hs + t * step + r0 * N,
                    c->as + t * step + r0 * N, c->hs + (t + 1) * step + r0 * N, &local->pl);
}

static void k_roaf_cell_forward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                                const float *xs, const float *W, const float *U, const float *b, float *hs,
                                float *as) {
  if (T <= 0 || B <= 0 || N <= 0) return;
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  float *packed = roaf_scratch(0, SCRATCH_SHARED_B, roaf_packed_size(N));
  cell_task c = {.T = T, .B = B, .N = N, .alpha = alpha, .beta = beta, .f = f, .dense = dense, .packed = packed,
                 .hs = hs, .as = as};
  if (D == 1) {  // x_t Uᵀ + b is one multiply-add per element: the tiles form it (psMNIST, the adding problem)
    c.xs = xs;
    c.U = U;
    c.b = b;
  } else {  // the input drive of every step at once: as = xs Uᵀ + b, (T·B, N)
    k_gemm(0, 1, T * B, N, D, 1.0f, xs, D, U, D, 0.0f, as, N);
    k_add_row_vector(T * B, N, as, b);
  }
  c.panels = roaf_pack_forward(W, dense ? f->matrix : NULL, N, packed);
  row_sweep_run(cell_forward_step, &c, T, B, MR, (double)T * B * N * N * (dense ? 2 : 1));
}

/**
 * Step s of backpropagation through time for rows [r0, r1) of the slot [lo, hi), t = T-1-s: ∂loss/∂h_{t-1} += what
 * flows back through step t (∂loss/∂h_0 = it, when asked for), and gz_{t-1} for the next step.
 */
static void cell_backward_step(void *p, int tid, sweep_local *local, idx s, idx r0, idx r1, idx lo, idx hi) {
  const cell_task *c = p;
  idx N = c->N, step = c->B * N, rows = r1 - r0, t = c->T - 1 - s;
  // ∂loss/∂h_t lives in ghs's step t-1, or, with lastStepOnly, alternates between ghs's steps 0 and 1 after the
  // first step (which reads the last): T·B·N floats of gradients never go to memory, and no loss terms are read.
  float *ping = c->lastStepOnly ? c->ghs : NULL;
  const float *gh = (s == 0 || ping == NULL ? c->ghs + t * step : ping + ((s + 1) & 1) * step) + r0 * N;
  float *gz = c->gzs + t * step + r0 * N;
  if (s == 0) roaf_gz_rows(rows, N, c->beta, gh, c->as + t * step + r0 * N, gz);
  float *target = t == 0 ? (c->gh0 != NULL ? c->gh0 + r0 * N : NULL)
                  : (ping == NULL ? c->ghs + (t - 1) * step : ping + (s & 1) * step) + r0 * N;
  if (target == NULL) return;
  if (local->step != s) {  // the thread's first rows of step t: plan the prefetches for the next
    local->step = s;
    local->pl = (prefetch_plan){0};
    if (t > 1) {
      plan_add(&local->pl, c->as + (t - 2) * step + lo * N, (hi - lo) * N, 0);
      if (ping == NULL) plan_add(&local->pl, c->ghs + (t - 2) * step + lo * N, (hi - lo) * N, 1);
      plan_add(&local->pl, c->gzs + (t - 2) * step + lo * N, (hi - lo) * N, 1);
    }
    plan_spread(&local->pl, backward_iterations(N, c->dense, hi - lo));
  }
  const float *aNext = t > 0 ? c->as + (t - 1) * step + r0 * N : NULL;
  float *gzNext = t > 0 ? c->gzs + (t - 1) * step + r0 * N : NULL;
  roaf_backward_args f = c->backward;
  f.accumulate = t > 0 && ping == NULL;  // add the loss term of h_{t-1}
  roaf_backward_rows(&f, c->f, rows, gh, gz, target, aNext, gzNext, &local->pl);
}

static void k_roaf_cell_backward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                                 const float *xs, const float *W, const float *U, const float *hs, const float *as,
                                 float *ghs, float *gzs, float *gW, float *gU, float *gb, float *gh0, float *gxs,
                                 int lastStepOnly) {
  if (T <= 0 || N <= 0) return;
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  cell_task c = {.T = T, .B = B, .N = N, .alpha = alpha, .beta = beta, .f = f, .dense = dense,
                 .as = (float *)as, .ghs = ghs, .gzs = gzs, .gh0 = gh0, .lastStepOnly = lastStepOnly,
                 .backward = {.N = N, .alpha = alpha, .beta = beta,
                              .identity = f->kind == FILTER_IDENTITY && alpha != 0.0f}};
  roaf_pack_backward(&c.backward, dense ? f->matrix : NULL, W,
                     roaf_scratch(0, SCRATCH_SHARED_B, roaf_backward_packed_size(N)));
  if (B > 0) row_sweep_run(cell_backward_step, &c, T, B, MR, (double)T * B * N * N * (dense ? 2 : 1));
  // The parameter gradients as one product (or sum) each over all T·B rows.
  k_sum_rows(T * B, N, gzs, gb);
  k_gemm(1, 0, N, N, T * B, 1.0f, gzs, N, hs, N, 1.0f, gW, N);  // Σ_t gz_tᵀ h_{t-1}
  k_gemm(1, 0, N, D, T * B, 1.0f, gzs, N, xs, D, 1.0f, gU, D);
  if (gxs != NULL) k_gemm(0, 0, T * B, D, N, 1.0f, gzs, N, U, D, 0.0f, gxs, D);
}

// ---- LSTM ----

typedef struct {
  idx T, B, D, N;
  packed_b pb;
  const float *hs_in, *cs_in, *gates_in, *hn_in, *bh;
  float *hs, *cs, *gates, *ghs, *gGates, *gHn, *hn;
  work_queue q;
  bias_sums sums, sums2;
  int lastStepOnly;  // backward: ghs holds a loss term at the last step only; the others are overwritten
} rnn_task;

static void lstm_forward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 4 * N, rows = r1 - r0;
  for (idx t = 0; t < c->T; t++) {
    const float *hPrev = c->hs + (t * c->B + r0) * N;
    const float *cPrev = c->cs + (t * c->B + r0) * N;
    float *hNext = c->hs + ((t + 1) * c->B + r0) * N;
    float *cNext = c->cs + ((t + 1) * c->B + r0) * N;
    float *g = c->gates + (t * c->B + r0) * G;
    a_operand a = {.p = hPrev, .ld = N};
    gemm_packed(tid, &a, rows, &c->pb, 1.0f, 1.0f, g, G);  // gates = drive + h Whᵀ
    for (idx r = 0; r < rows; r++) {
      float *gr = g + r * G;
      FOR_LANES(j, N, w) {
        vf i = vsigmoid(loadw(gr + j, w));
        vf fg = vsigmoid(loadw(gr + N + j, w));
        vf gg = vtanh(loadw(gr + 2 * N + j, w));
        vf o = vsigmoid(loadw(gr + 3 * N + j, w));
        storew(gr + j, i, w);
        storew(gr + N + j, fg, w);
        storew(gr + 2 * N + j, gg, w);
        storew(gr + 3 * N + j, o, w);
        vf cv = vfma(fg, loadw(cPrev + r * N + j, w), vmul(i, gg));
        storew(cNext + r * N + j, cv, w);
        storew(hNext + r * N + j, vmul(o, vtanh(cv)), w);
      }
    }
  }
}

static void lstm_forward_run(void *p, int tid, int nt) {
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) lstm_forward_rows(c, tid, r0, r1);
}

static void k_lstm_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                           const float *b, float *hs, float *cs, float *gates) {
  idx G = 4 * N;
  k_gemm(0, 1, T * B, G, D, 1.0f, xs, D, Wx, D, 0.0f, gates, G);
  k_add_row_vector(T * B, G, gates, b);
  b_operand bw = {.p = Wh, .ld = N, .trans = 1, .scale = 1.0f};
  rnn_task c = {.T = T, .B = B, .D = D, .N = N, .hs = hs, .cs = cs, .gates = gates};
  c.pb = pack_b_full(&bw, N, G, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(N, G)));
  roaf_pool_run(lstm_forward_run, &c, sweep_setup(&c.q, T, B, G, N));
}

static void lstm_backward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 4 * N, rows = r1 - r0;
  float *gc = roaf_scratch(tid, SCRATCH_WORK, (size_t)rows * N + G + VL);  // ∂loss/∂c_{t+1}, carried back
  float *tmp = gc + rows * N;
  memset(gc, 0, (size_t)rows * N * sizeof(float));
  vf one = vset1(1.0f);
  for (idx t = c->T - 1; t >= 0; t--) {
    const float *g = c->gates_in + (t * c->B + r0) * G;
    float *gg = c->gGates + (t * c->B + r0) * G;
    const float *cPrev = c->cs_in + (t * c->B + r0) * N;
    const float *cNext = c->cs_in + ((t + 1) * c->B + r0) * N;
    const float *gh = c->ghs + (t * c->B + r0) * N;
    for (idx r = 0; r < rows; r++) {
      const float *gr = g + r * G;
      float *ggr = gg + r * G;
      FOR_LANES(j, N, w) {
        vf i = loadw(gr + j, w), fg = loadw(gr + N + j, w), c2 = loadw(gr + 2 * N + j, w), o = loadw(gr + 3 * N + j, w);
        vf tc = vtanh(loadw(cNext + r * N + j, w));
        vf ghv = loadw(gh + r * N + j, w);
        vf gcTotal = vfma(vmul(ghv, o), vnmadd(tc, tc, one), loadw(gc + r * N + j, w));
        storew(ggr + j, vmul(vmul(gcTotal, c2), vmul(i, vsub(one, i))), w);
        storew(ggr + N + j, vmul(vmul(gcTotal, loadw(cPrev + r * N + j, w)), vmul(fg, vsub(one, fg))), w);
        storew(ggr + 2 * N + j, vmul(vmul(gcTotal, i), vnmadd(c2, c2, one)), w);
        storew(ggr + 3 * N + j, vmul(vmul(ghv, tc), vmul(o, vsub(one, o))), w);
        storew(gc + r * N + j, vmul(gcTotal, fg), w);
      }
    }
    accumulate_columns(rows, G, gg, G, group_sums(&c->sums, &c->q, r0), tmp);
    if (t > 0) {
      a_operand a = {.p = gg, .ld = G};
      gemm_packed(tid, &a, rows, &c->pb, 1.0f, c->lastStepOnly ? 0.0f : 1.0f, c->ghs + ((t - 1) * c->B + r0) * N, N);
    }
  }
}

static void lstm_backward_run(void *p, int tid, int nt) {
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) lstm_backward_rows(c, tid, r0, r1);
}

static void k_lstm_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                            const float *hs, const float *cs, const float *gates, float *ghs, float *gGates,
                            float *gWx, float *gWh, float *gb, float *gxs, int lastStepOnly) {
  idx G = 4 * N;
  b_operand bw = {.p = Wh, .ld = N, .trans = 0, .scale = 1.0f};
  rnn_task c = {.T = T, .B = B, .D = D, .N = N, .cs_in = cs, .gates_in = gates, .ghs = ghs, .gGates = gGates,
                .lastStepOnly = lastStepOnly};
  c.pb = pack_b_full(&bw, G, N, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(G, N)));
  int nt = sweep_setup(&c.q, T, B, N, G);
  c.sums = bias_sums_new(SCRATCH_WORK2, &c.q, G);
  roaf_pool_run(lstm_backward_run, &c, nt);
  add_bias_sums(&c.sums, gb);
  k_gemm(1, 0, G, N, T * B, 1.0f, gGates, G, hs, N, 1.0f, gWh, N);
  k_gemm(1, 0, G, D, T * B, 1.0f, gGates, G, xs, D, 1.0f, gWx, D);
  if (gxs != NULL) k_gemm(0, 0, T * B, D, G, 1.0f, gGates, G, Wx, D, 0.0f, gxs, D);
}

// ---- GRU ----

static void gru_forward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 3 * N, rows = r1 - r0;
  float *P = roaf_scratch(tid, SCRATCH_WORK, (size_t)rows * G);
  const float *bh = c->bh;
  for (idx t = 0; t < c->T; t++) {
    const float *hPrev = c->hs + (t * c->B + r0) * N;
    float *hNext = c->hs + ((t + 1) * c->B + r0) * N;
    float *g = c->gates + (t * c->B + r0) * G;
    float *hn = c->hn + (t * c->B + r0) * N;
    a_operand a = {.p = hPrev, .ld = N};
    gemm_packed(tid, &a, rows, &c->pb, 1.0f, 0.0f, P, G);
    for (idx r = 0; r < rows; r++) {
      float *gr = g + r * G;
      const float *pr = P + r * G;
      FOR_LANES(j, N, w) {
        vf rg = vsigmoid(vadd(loadw(gr + j, w), vadd(loadw(pr + j, w), loadw(bh + j, w))));
        vf z = vsigmoid(vadd(loadw(gr + N + j, w), vadd(loadw(pr + N + j, w), loadw(bh + N + j, w))));
        vf hnj = vadd(loadw(pr + 2 * N + j, w), loadw(bh + 2 * N + j, w));
        vf n = vtanh(vfma(rg, hnj, loadw(gr + 2 * N + j, w)));
        storew(gr + j, rg, w);
        storew(gr + N + j, z, w);
        storew(gr + 2 * N + j, n, w);
        storew(hn + r * N + j, hnj, w);
        vf hp = loadw(hPrev + r * N + j, w);
        storew(hNext + r * N + j, vfma(z, vsub(hp, n), n), w);  // (1 - z) n + z h
      }
    }
  }
}

static void gru_forward_run(void *p, int tid, int nt) {
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) gru_forward_rows(c, tid, r0, r1);
}

static void k_gru_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                          const float *bx, const float *bh, float *hs, float *gates, float *hn) {
  idx G = 3 * N;
  k_gemm(0, 1, T * B, G, D, 1.0f, xs, D, Wx, D, 0.0f, gates, G);
  k_add_row_vector(T * B, G, gates, bx);
  b_operand bw = {.p = Wh, .ld = N, .trans = 1, .scale = 1.0f};
  rnn_task c = {.T = T, .B = B, .D = D, .N = N, .hs = hs, .gates = gates, .hn = hn, .bh = bh};
  c.pb = pack_b_full(&bw, N, G, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(N, G)));
  roaf_pool_run(gru_forward_run, &c, sweep_setup(&c.q, T, B, G, N));
}

static void gru_backward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 3 * N, rows = r1 - r0;
  float *rec = roaf_scratch(tid, SCRATCH_WORK, (size_t)rows * G + G + VL);  // [gr, gz, gn ⊙ r] of one step
  float *tmp = rec + rows * G;
  double *accX = group_sums(&c->sums, &c->q, r0), *accH = group_sums(&c->sums2, &c->q, r0);
  vf one = vset1(1.0f);
  for (idx t = c->T - 1; t >= 0; t--) {
    const float *g = c->gates_in + (t * c->B + r0) * G;
    float *gg = c->gGates + (t * c->B + r0) * G;
    float *gHn = c->gHn + (t * c->B + r0) * N;
    const float *hn = c->hn_in + (t * c->B + r0) * N;
    const float *hPrev = c->hs_in + (t * c->B + r0) * N;
    const float *gh = c->ghs + (t * c->B + r0) * N;
    float *ghPrev = t > 0 ? c->ghs + ((t - 1) * c->B + r0) * N : NULL;
    for (idx r = 0; r < rows; r++) {
      const float *gr = g + r * G;
      float *ggr = gg + r * G, *rr = rec + r * G;
      FOR_LANES(j, N, w) {
        vf rg = loadw(gr + j, w), z = loadw(gr + N + j, w), n = loadw(gr + 2 * N + j, w);
        vf ghv = loadw(gh + r * N + j, w);
        vf gn = vmul(vmul(ghv, vsub(one, z)), vnmadd(n, n, one));
        vf gz = vmul(vmul(ghv, vsub(loadw(hPrev + r * N + j, w), n)), vmul(z, vsub(one, z)));
        vf grr = vmul(vmul(gn, loadw(hn + r * N + j, w)), vmul(rg, vsub(one, rg)));
        vf gnr = vmul(gn, rg);
        storew(ggr + j, grr, w);
        storew(ggr + N + j, gz, w);
        storew(ggr + 2 * N + j, gn, w);
        storew(gHn + r * N + j, gnr, w);
        storew(rr + j, grr, w);
        storew(rr + N + j, gz, w);
        storew(rr + 2 * N + j, gnr, w);
        if (ghPrev != NULL)
          storew(ghPrev + r * N + j, c->lastStepOnly ? vmul(ghv, z) : vfma(ghv, z, loadw(ghPrev + r * N + j, w)), w);
      }
    }
    accumulate_columns(rows, G, gg, G, accX, tmp);
    accumulate_columns(rows, G, rec, G, accH, tmp);
    if (ghPrev != NULL) {
      a_operand a = {.p = rec, .ld = G};
      gemm_packed(tid, &a, rows, &c->pb, 1.0f, 1.0f, ghPrev, N);
    }
  }
}

static void gru_backward_run(void *p, int tid, int nt) {
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) gru_backward_rows(c, tid, r0, r1);
}

static void k_gru_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                           const float *hs, const float *gates, const float *hn, float *ghs, float *gGates,
                           float *gHn, float *gWx, float *gWh, float *gbx, float *gbh, float *gxs,
                           int lastStepOnly) {
  idx G = 3 * N;
  b_operand bw = {.p = Wh, .ld = N, .trans = 0, .scale = 1.0f};
  rnn_task c = {.T = T, .B = B, .D = D, .N = N, .hs_in = hs, .gates_in = gates, .hn_in = hn, .ghs = ghs,
                .gGates = gGates, .gHn = gHn, .lastStepOnly = lastStepOnly};
  c.pb = pack_b_full(&bw, G, N, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(G, N)));
  int nt = sweep_setup(&c.q, T, B, N, G);
  c.sums = bias_sums_new(SCRATCH_WORK2, &c.q, G);
  c.sums2 = bias_sums_new(SCRATCH_PARTIAL, &c.q, G);
  roaf_pool_run(gru_backward_run, &c, nt);
  add_bias_sums(&c.sums, gbx);
  add_bias_sums(&c.sums2, gbh);
  // Recurrent-side pre-activation gradients [gr, gz | gn ⊙ r]: the first 2N columns of gGates, then gHn.
  k_gemm(1, 0, 2 * N, N, T * B, 1.0f, gGates, G, hs, N, 1.0f, gWh, N);
  k_gemm(1, 0, N, N, T * B, 1.0f, gHn, N, hs, N, 1.0f, gWh + 2 * N * N, N);
  k_gemm(1, 0, G, D, T * B, 1.0f, gGates, G, xs, D, 1.0f, gWx, D);
  if (gxs != NULL) k_gemm(0, 0, T * B, D, G, 1.0f, gGates, G, Wx, D, 0.0f, gxs, D);
}

// ---- losses (small: B x K; computed in double like the reference) ----

static double k_softmax_cross_entropy(idx B, idx K, const float *logits, const int32_t *labels, float gradScale,
                                      float *grad, uint8_t *correct) {
  double total = 0.0;
  for (idx r = 0; r < B; r++) {
    const float *l = logits + r * K;
    double max = -INFINITY;
    idx argmax = 0;
    for (idx k = 0; k < K; k++)
      if (l[k] > max) {
        max = l[k];
        argmax = k;
      }
    double sum = 0.0;
    for (idx k = 0; k < K; k++) sum += exp(l[k] - max);
    int32_t label = labels[r];
    total += log(sum) + max - l[label];
    if (correct != NULL) correct[r] = argmax == label ? 1 : 0;
    if (grad != NULL) {
      for (idx k = 0; k < K; k++) {
        double p = exp(l[k] - max) / sum;
        grad[r * K + k] = (float)((p - (k == label ? 1.0 : 0.0)) * gradScale);
      }
    }
  }
  return total;
}

static double k_squared_error(idx B, idx K, const float *pred, const float *target, float gradScale, float *grad) {
  double total = 0.0;
  for (idx i = 0; i < B * K; i++) {
    double diff = (double)pred[i] - (double)target[i];
    total += diff * diff;
    if (grad != NULL) grad[i] = (float)(2.0 * diff * gradScale);
  }
  return total;
}

// ---- optimisers ----

typedef struct {
  float *params, *m, *v;
  const float *grads;
  float lr, beta1, beta2, eps, wd, invC1, invC2, momentum;
  float oneMinusBeta1, oneMinusBeta2;  // formed in double: 1 - 0.999f is 1.3e-5 away from 0.001
} opt_args;

static void adam_range(void *p, idx lo, idx hi) {
  opt_args *o = p;
  vf b1 = vset1(o->beta1), b2 = vset1(o->beta2), c1 = vset1(o->oneMinusBeta1), c2 = vset1(o->oneMinusBeta2);
  vf ic1 = vset1(o->invC1), ic2 = vset1(o->invC2), eps = vset1(o->eps), lr = vset1(o->lr),
     lrwd = vset1(o->lr * o->wd);
  float *P = o->params + lo, *M = o->m + lo, *V = o->v + lo;
  const float *Gr = o->grads + lo;
  FOR_LANES(i, hi - lo, w) {
    vf g = loadw(Gr + i, w);
    vf m = vfma(b1, loadw(M + i, w), vmul(c1, g));
    vf v = vfma(b2, loadw(V + i, w), vmul(vmul(c2, g), g));
    storew(M + i, m, w);
    storew(V + i, v, w);
    vf step = vdiv(vmul(lr, vmul(m, ic1)), vadd(vsqrt(vmul(v, ic2)), eps));
    vf pv = loadw(P + i, w);
    storew(P + i, vsub(pv, vfma(lrwd, pv, step)), w);
  }
}

static void k_adam_update(idx n, float *params, const float *grads, float *m, float *v, float lr, double beta1,
                          double beta2, float eps, float weightDecay, double t) {
  opt_args o = {.params = params, .m = m, .v = v, .grads = grads, .lr = lr, .beta1 = (float)beta1,
                .beta2 = (float)beta2, .oneMinusBeta1 = (float)(1.0 - beta1), .oneMinusBeta2 = (float)(1.0 - beta2),
                .eps = eps, .wd = weightDecay};
  o.invC1 = (float)(1.0 / (1.0 - pow(beta1, t)));
  o.invC2 = (float)(1.0 / (1.0 - pow(beta2, t)));
  parallel_range(adam_range, &o, n, 12);
}

static void sgd_range(void *p, idx lo, idx hi) {
  opt_args *o = p;
  vf mom = vset1(o->momentum), lr = vset1(o->lr);
  float *P = o->params + lo, *V = o->v + lo;
  const float *Gr = o->grads + lo;
  FOR_LANES(i, hi - lo, w) {
    vf vel = vfma(mom, loadw(V + i, w), loadw(Gr + i, w));
    storew(V + i, vel, w);
    storew(P + i, vnmadd(lr, vel, loadw(P + i, w)), w);
  }
}

static void k_sgd_update(idx n, float *params, const float *grads, float *velocity, float lr, float momentum) {
  opt_args o = {.params = params, .v = velocity, .grads = grads, .lr = lr, .momentum = momentum};
  parallel_range(sgd_range, &o, n, 3);
}

// ---- the machine's arithmetic peak ----

/**
 * Float32 FLOPS that this thread's widest fused multiply-add sustains: 12 independent accumulators (more than
 * latency x throughput on current x86 cores) updated in a loop for about `seconds`, with nothing else to do.
 * It is the ceiling of every product here (benchmarks quote it beside their GFLOPS): a virtual machine's CPU
 * may have narrower or fewer FMA units than its model name suggests.
 */
static double k_fma_peak(double seconds) {
  enum { CHAINS = 12, INNER = 4096 };
  vf acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = vset1(1.0f + 1e-3f * (float)c);
  volatile float opaque[2] = {0.9999999f, 1e-7f};  // values the compiler cannot fold into the loop
  vf m = vset1(opaque[0]), a = vset1(opaque[1]);
  long long start = task_now_ns(), end = start + (long long)(seconds * 1e9), now = start;
  double iterations = 0;
  do {
    for (int i = 0; i < INNER; i++) {
#pragma GCC unroll 12
      for (int c = 0; c < CHAINS; c++) acc[c] = vfma(acc[c], m, a);
    }
    iterations += INNER;
    now = task_now_ns();
  } while (now < end);
  float sink = 0.0f;  // keep every lane of every accumulator alive
  float lanes[VL];
  for (int c = 0; c < CHAINS; c++) {
    vstore(lanes, acc[c]);
    for (int l = 0; l < VL; l++) sink += lanes[l];
  }
  volatile float keep = sink;
  (void)keep;
  return iterations * CHAINS * VL * 2.0 / ((double)(now - start) * 1e-9);
}

const roaf_kernels ROAF_SUFFIX(roaf_kernels) = {
  .name = ROAF_ISA_NAME,
  .fma_peak = k_fma_peak,
  .gemm = k_gemm,
  .add_row_vector = k_add_row_vector,
  .sum_rows = k_sum_rows,
  .tanh = k_tanh,
  .tanh_backward = k_tanh_backward,
  .sum_squares = k_sum_squares,
  .scale = k_scale,
  .axpy = k_axpy,
  .apply_filter = k_apply_filter,
  .roaf_layer_forward = k_roaf_layer_forward,
  .roaf_layer_backward = k_roaf_layer_backward,
  .roaf_mlp_forward = k_roaf_mlp_forward,
  .roaf_mlp_backward = k_roaf_mlp_backward,
  .roaf_cell_forward = k_roaf_cell_forward,
  .roaf_cell_backward = k_roaf_cell_backward,
  .lstm_forward = k_lstm_forward,
  .lstm_backward = k_lstm_backward,
  .gru_forward = k_gru_forward,
  .gru_backward = k_gru_backward,
  .softmax_cross_entropy = k_softmax_cross_entropy,
  .squared_error = k_squared_error,
  .adam_update = k_adam_update,
  .sgd_update = k_sgd_update,
};
