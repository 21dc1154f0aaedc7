// One factor of the singular spectrum of a long Jacobian product (productSpectrumPush), what `roaf diagnose`
// spends nearly all of its time on for a recurrent model: 784 factors of 1,024 x 1,024 for psMNIST, about
// 3.7 n³ flops each (docs/kernels.md, "The Jacobian product spectrum").
//
// The method and why it is exact at any depth are the reference's (src/diagnostics/product-spectrum.ts): the
// frame's Householder reflectors applied to J, the Householder QR of the result, the triangular product kept as
// P = diag(e^s) M. Every row goes through the same steps in the same order as there; what changes is the order
// of the loops around them, for the cache, and that sums are vectorised (eight partial sums, fused multiply-adds
// on the x86 copies), so the results agree with the reference to rounding, not bit for bit:
// - the frame: the reflectors are applied to a block of rows of J at a time, each reflector to every row of the
//   block before the next, so a reflector is read from memory once per block rather than once per row; the
//   blocks are independent and are shared between the threads;
// - the QR: left-looking, a block of columns at a time: a block receives every earlier reflector in order (the
//   columns of the block independently, so threads share them), then is factored on its own. A column receives
//   the same reflectors in the same order as in the reference's right-looking loop;
// - the triangular product: each row of the new P accumulates the rows of the old one in ascending order, as in
//   the reference, but a block of new rows is accumulated together, reading each old row once per block, into a
//   second buffer so that the blocks are independent.

#include <math.h>
#include <string.h>

#include "kernels_internal.h"
#include "parallel.h"

/** Columns of the QR factored together: a block costs (block² n) sequential multiply-adds. */
#define QR_BLOCK 32

/** Rows a thread claims at a time: about 128 KB of them, so that they stay in the core's L2 cache. */
static idx rows_per_chunk(idx n) {
  const idx rows = (idx)16384 / (n > 0 ? n : 1);
  return rows > 1 ? rows : 1;
}

/**
 * Eight doubles, in whatever registers the instruction set has (one zmm, two ymm, four xmm or wasm128): GCC's
 * vector extension, so that the loops below are written once. aligned(8): loads and stores at any row offset.
 */
typedef double v8d __attribute__((vector_size(64), aligned(8)));

// Macros, not functions: a function returning a 64-byte vector has a different ABI with and without AVX-512.
#define load8(p) (*(const v8d *)(p))
#define store8(p, v) (*(v8d *)(p) = (v))

/** Σ a[c] b[c] for c < count, in 32 partial sums (four vectors of eight: the loads, not the adds, set the pace). */
static inline double dot(const double *restrict a, const double *restrict b, idx count) {
  v8d acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};
  idx c = 0;
  for (; c + 32 <= count; c += 32) {
    acc0 += load8(a + c) * load8(b + c);
    acc1 += load8(a + c + 8) * load8(b + c + 8);
    acc2 += load8(a + c + 16) * load8(b + c + 16);
    acc3 += load8(a + c + 24) * load8(b + c + 24);
  }
  for (; c + 8 <= count; c += 8) acc0 += load8(a + c) * load8(b + c);
  const v8d acc = (acc0 + acc1) + (acc2 + acc3);
  double sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; c < count; c++) sum += a[c] * b[c];
  return sum;
}

/** y[c] += f x[c] for c < count. */
static inline void add_scaled(double *restrict y, double f, const double *restrict x, idx count) {
  const v8d fv = {f, f, f, f, f, f, f, f};
  idx c = 0;
  for (; c + 8 <= count; c += 8) store8(y + c, load8(y + c) + fv * load8(x + c));
  for (; c < count; c++) y[c] += f * x[c];
}

/** z <- z H_k on entries k..n-1, H_k = I - tau v vᵀ with v = the reflector's row (entries k..n-1). */
static inline void reflect(double *restrict z, const double *restrict v, double tau, idx k, idx n) {
  const double f = tau * dot(z + k, v + k, n - k);
  if (f != 0.0) add_scaled(z + k, -f, v + k, n - k);
}

/** dst = srcᵀ, both (n, n) row-major, in 32 x 32 tiles. */
static void transpose(idx n, const double *restrict src, double *restrict dst) {
  const idx tile = 32;
  for (idx i0 = 0; i0 < n; i0 += tile)
    for (idx j0 = 0; j0 < n; j0 += tile) {
      const idx i1 = i0 + tile < n ? i0 + tile : n, j1 = j0 + tile < n ? j0 + tile : n;
      for (idx i = i0; i < i1; i++)
        for (idx j = j0; j < j1; j++) dst[j * n + i] = src[i * n + j];
    }
}

/** Runs fn over `units` rows in chunks of at most `chunk` rows, on the threads the policy gives `work`. */
static void run_rows(roaf_task_fn fn, void *task, work_queue *queue, double work, idx units, idx chunk) {
  roaf_plan plan = roaf_parallel_plan(NULL, work, units);
  if (plan.threads <= 1) {
    queue_init(queue, units, chunk);
    fn(task, 0, 1);
    return;
  }
  const idx shared = chunk_for(units, plan.threads, 4, 1);
  queue_init(queue, units, shared < chunk ? shared : chunk);
  roaf_parallel_run(&plan, fn, task);
}

// ---- the frame, and the QR's earlier reflectors: reflectors k0..k1-1 applied to rows first..first+units-1 ----

typedef struct {
  work_queue queue;
  idx n, first, k0, k1;
  double *rows;
  const double *V, *tau;
} reflect_task;

static void reflect_rows(void *p, int tid, int nthreads) {
  (void)tid;
  (void)nthreads;
  reflect_task *t = p;
  const idx n = t->n;
  idx lo, hi;
  while (queue_claim(&t->queue, &lo, &hi))
    for (idx k = t->k0; k < t->k1; k++) {
      const double tau = t->tau[k];
      if (tau == 0.0) continue;
      for (idx i = t->first + lo; i < t->first + hi; i++) reflect(t->rows + i * n, t->V + k * n, tau, k, n);
    }
}

/** Reflectors k0..k1-1 of V, in order, applied to rows [first, first + count) of `rows`. */
static void reflect_all(idx n, double *rows, idx first, idx count, const double *V, const double *tau, idx k0, idx k1) {
  if (count <= 0 || k1 <= k0) return;
  reflect_task t = {.n = n, .first = first, .k0 = k0, .k1 = k1, .rows = rows, .V = V, .tau = tau};
  // Reflector k costs 2 (n - k) multiply-adds per row.
  const double per_row = (double)(k1 - k0) * (double)(2 * n - k0 - k1 + 1);
  run_rows(reflect_rows, &t, &t.queue, per_row * (double)count, count, rows_per_chunk(n));
}

// ---- the QR ----

/**
 * Householder QR of Z, held as zt (row j = column j of Z): reflector k into row k of V and tau[k], R_kk into
 * diag[k], and the strictly upper part of R left in zt (R_kj = zt[j][k] for j > k); the Lyapunov sums grow.
 */
static void factor(idx n, double *zt, double *V, double *tau, double *diag, double *lyapunov_sums) {
  for (idx j0 = 0; j0 < n; j0 += QR_BLOCK) {
    const idx j1 = j0 + QR_BLOCK < n ? j0 + QR_BLOCK : n;
    reflect_all(n, zt, j0, j1 - j0, V, tau, 0, j0);
    for (idx k = j0; k < j1; k++) {
      double *restrict z = zt + k * n;
      double *restrict v = V + k * n;
      const double norm2 = dot(z + k, z + k, n - k);
      double norm = sqrt(norm2);
      if (norm2 < 1e-290 || norm2 > 1e290) {
        // The plain sum of squares under- or overflowed: the norm of the column scaled by its largest entry.
        double max = 0.0;
        for (idx c = k; c < n; c++) max = fmax(max, fabs(z[c]));
        norm = 0.0;
        if (max > 0.0) {
          for (idx c = k; c < n; c++) norm += (z[c] / max) * (z[c] / max);
          norm = max * sqrt(norm);
        }
      }
      const double x0 = z[k];
      const double d = x0 > 0 ? -norm : norm;  // R_kk; the sign avoids cancellation in v_k
      v[k] = x0 - d;
      for (idx c = k + 1; c < n; c++) v[c] = z[c];
      const double vnorm2 = dot(v + k, v + k, n - k);
      tau[k] = vnorm2 == 0.0 ? 0.0 : 2.0 / vnorm2;
      diag[k] = d;
      lyapunov_sums[k] += log(fabs(d));
      if (tau[k] != 0.0)
        for (idx j = k + 1; j < j1; j++) reflect(zt + j * n, v, tau[k], k, n);
    }
  }
}

// ---- the triangular product: P <- R P in the scaled representation ----

typedef struct {
  work_queue queue;
  idx n;
  const double *R, *M, *s;
  double *coefficients;  // (n, n): row i holds sign(R_ik) e^{log|R_ik| + s_k - c_i} for k >= i
  double *out, *out_s;   // the new M and s
} product_task;

/** Rows [lo, hi) of the new P: their coefficients and scales, then the accumulation, then normalisation. */
static void product_block(const product_task *t, idx lo, idx hi) {
  const idx n = t->n;
  const double *restrict R = t->R, *restrict s = t->s;
  for (idx i = lo; i < hi; i++) {
    double *restrict coefficient = t->coefficients + i * n;
    double c = -INFINITY;
    for (idx k = i; k < n; k++) {
      coefficient[k] = log(fabs(R[i * n + k])) + s[k];
      if (coefficient[k] > c) c = coefficient[k];
    }
    t->out_s[i] = c;
    for (idx k = i; k < n; k++) {
      const double e = coefficient[k] - c;
      // e^e underflows (or R_ik is 0): negligible against the row's scale, as in the reference.
      coefficient[k] = (c == -INFINITY || e < -745) ? 0.0 : copysign(exp(e), R[i * n + k]);
    }
    memset(t->out + i * n, 0, sizeof(double) * (size_t)n);
  }
  // Each old row k is read once for the block; row i still sums its terms in ascending k.
  for (idx k = lo; k < n; k++) {
    const double *restrict mk = t->M + k * n;
    const idx last = k < hi - 1 ? k : hi - 1;
    for (idx i = lo; i <= last; i++) {
      const double a = t->coefficients[i * n + k];
      if (a == 0.0) continue;
      add_scaled(t->out + i * n + k, a, mk + k, n - k);
    }
  }
  for (idx i = lo; i < hi; i++) {
    double *restrict row = t->out + i * n;
    double max = 0.0;
    for (idx j = i; j < n; j++) max = fmax(max, fabs(row[j]));
    if (max == 0.0 || t->out_s[i] == -INFINITY) {
      memset(row, 0, sizeof(double) * (size_t)n);
      t->out_s[i] = -INFINITY;
      continue;
    }
    for (idx j = i; j < n; j++) row[j] /= max;
    t->out_s[i] += log(max);
  }
}

static void product_rows(void *p, int tid, int nthreads) {
  (void)tid;
  (void)nthreads;
  product_task *t = p;
  idx lo, hi;
  while (queue_claim(&t->queue, &lo, &hi)) product_block(t, lo, hi);
}

/** M, s <- the scaled representation of R P; `work`: 2 n² + n doubles. */
static void multiply_product(idx n, const double *R, double *M, double *s, double *work) {
  product_task t = {
      .n = n, .R = R, .M = M, .s = s, .coefficients = work, .out = work + n * n, .out_s = work + 2 * n * n};
  // Row i costs Σ_{k >= i} (n - k) multiply-adds: n³ / 6 in all, the early rows the most.
  run_rows(product_rows, &t, &t.queue, (double)n * (double)n * (double)n / 6.0, n, rows_per_chunk(n));
  memcpy(M, t.out, sizeof(double) * (size_t)(n * n));
  memcpy(s, t.out_s, sizeof(double) * (size_t)n);
}

/** M, s <- R with its rows scaled to max-norm 1 (the product's first factor). */
static void start_product(idx n, const double *R, double *M, double *s) {
  memcpy(M, R, sizeof(double) * (size_t)(n * n));
  for (idx i = 0; i < n; i++) {
    double *row = M + i * n;
    double max = 0.0;
    for (idx j = i; j < n; j++) max = fmax(max, fabs(row[j]));
    if (max == 0.0) {
      s[i] = -INFINITY;
      continue;
    }
    for (idx j = i; j < n; j++) row[j] /= max;
    s[i] = log(max);
  }
}

void k_product_spectrum_push(idx n, int first, double *J, double *reflectors, double *tau, double *lyapunovSums,
                             double *m, double *s, double *work) {
  if (n == 0) return;
  // work (3 n² + n doubles, as the reference's): zt (n²) and diag (n) for the QR; once R is formed (in J's memory,
  // which the frame and the QR no longer need), the product's coefficients, new M and new s (2 n² + n) reuse it.
  double *zt = work;
  double *diag = work + n * n;
  if (!first) reflect_all(n, J, 0, n, reflectors, tau, 0, n);
  transpose(n, J, zt);
  factor(n, zt, reflectors, tau, diag, lyapunovSums);
  // R into J's memory: its strictly upper part is zt's strictly lower part, transposed.
  double *R = J;
  transpose(n, zt, R);
  for (idx k = 0; k < n; k++) {
    memset(R + k * n, 0, sizeof(double) * (size_t)k);
    R[k * n + k] = diag[k];
  }
  if (first) start_product(n, R, m, s);
  else multiply_product(n, R, m, s, zt);
}
