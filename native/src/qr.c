// The orthogonal factor Q of the Householder QR of many square matrices at once: how the dense random filters
// (haar, qr-uniform) are drawn when a model is built (docs/kernels.md, "The QR of the filters").
//
// Bit-identical to the reference (orthogonalFromQr in src/nn/filter.ts), which is what lets a model built on
// the native backend equal one built on the reference from the same seed: every element goes through the same
// float64 operations in the same order, scalar by scalar. Only the loop order differs, so that every inner loop
// runs over contiguous memory and vectorises across independent sums: the dot products of A's columns with the
// Householder vector are accumulated for all columns at once (each column's own sum still runs over the rows
// in ascending order), and Q is kept transposed for the same reason. Two things would break the identity, and
// neither is allowed here: contracting a * b + c into a fused multiply-add (GCC does it by default in GNU C,
// and the avx2 and avx512 copies have FMA; hence the pragmas below, checked by test/qr.test.ts on every
// instruction set), and reassociating a sum (no -ffast-math anywhere). sqrt is correctly rounded in both.

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "kernels_internal.h"
#include "parallel.h"

/** One matrix's scratch, in doubles: qt (n * n), then v, dot, f, sign (n each). */
static size_t qr_scratch_doubles(idx n) { return (size_t)(n * n + 4 * n); }

/**
 * Q of the row-major (n, n) matrix a (consumed: overwritten by R and what lies below its diagonal), written
 * row-major to q. `s`: qr_scratch_doubles(n) doubles.
 */
static void qr_one(idx n, double *restrict a, double *restrict q, double *restrict s, int sign_fix) {
  double *restrict qt = s;  // qt[j n + i] = Q[i][j]
  double *restrict v = qt + n * n;
  double *restrict dot = v + n;
  double *restrict f = dot + n;
  double *restrict sign = f + n;
  memset(qt, 0, sizeof(double) * (size_t)(n * n));
  for (idx i = 0; i < n; i++) qt[i * n + i] = 1.0;
  for (idx i = 0; i < n; i++) sign[i] = 1.0;
  for (idx k = 0; k < n; k++) {
    // The Householder vector of column k below the diagonal.
    double norm = 0.0;
    for (idx i = k; i < n; i++) norm += a[i * n + k] * a[i * n + k];
    norm = sqrt(norm);
    const double akk = a[k * n + k];
    if (norm == 0.0) continue;
    const double alpha = akk > 0 ? -norm : norm;  // R_kk; the sign avoids cancellation
    sign[k] = alpha < 0 ? -1.0 : 1.0;             // Math.sign(alpha); a NaN flips nothing, as there
    double vnorm2 = 0.0;
    for (idx i = k; i < n; i++) {
      v[i] = a[i * n + k] - (i == k ? alpha : 0.0);
      vnorm2 += v[i] * v[i];
    }
    if (vnorm2 == 0.0) continue;
    // A <- (I - 2 v vᵀ / vᵀv) A on columns k..n-1: dot[j] = Σ_i v[i] a[i][j], i ascending, for every j at once.
    for (idx j = k; j < n; j++) dot[j] = 0.0;
    for (idx i = k; i < n; i++) {
      const double vi = v[i];
      const double *restrict row = a + i * n;
      for (idx j = k; j < n; j++) dot[j] += vi * row[j];
    }
    for (idx j = k; j < n; j++) f[j] = (2 * dot[j]) / vnorm2;
    for (idx i = k; i < n; i++) {
      const double vi = v[i];
      double *restrict row = a + i * n;
      for (idx j = k; j < n; j++) row[j] -= f[j] * vi;
    }
    // Q <- Q (I - 2 v vᵀ / vᵀv): dot[i] = Σ_j Q[i][j] v[j], j ascending, for every row i at once.
    for (idx i = 0; i < n; i++) dot[i] = 0.0;
    for (idx j = k; j < n; j++) {
      const double vj = v[j];
      const double *restrict col = qt + j * n;
      for (idx i = 0; i < n; i++) dot[i] += col[i] * vj;
    }
    for (idx i = 0; i < n; i++) f[i] = (2 * dot[i]) / vnorm2;
    for (idx j = k; j < n; j++) {
      const double vj = v[j];
      double *restrict col = qt + j * n;
      for (idx i = 0; i < n; i++) col[i] -= f[i] * vj;
    }
  }
  // Q = qtᵀ, column j negated where R_jj < 0 (sign_fix: Haar).
  for (idx i = 0; i < n; i++)
    for (idx j = 0; j < n; j++) q[i * n + j] = (sign_fix && sign[j] < 0) ? -qt[j * n + i] : qt[j * n + i];
}

typedef struct {
  work_queue queue;
  idx n;
  double *a, *q;
  int sign_fix;
} qr_task;

static void qr_task_run(void *p, int tid, int nthreads) {
  (void)nthreads;
  qr_task *t = p;
  const idx n = t->n;
  double *s = (double *)roaf_scratch(tid, SCRATCH_WORK, 2 * qr_scratch_doubles(n));
  idx lo, hi;
  while (queue_claim(&t->queue, &lo, &hi))
    for (idx m = lo; m < hi; m++) qr_one(n, t->a + m * n * n, t->q + m * n * n, s, t->sign_fix);
}

void k_orthogonal_from_qr(idx count, idx N, int signFix, double *a, double *q) {
  if (count == 0 || N == 0) return;
  // About (5/3) N³ multiply-adds per matrix (A: (2/3) N³, Q: N³); the matrices are independent and each is
  // computed the same way whichever thread takes it, so the result does not depend on the thread count.
  const double per_matrix = 5.0 / 3.0 * (double)N * (double)N * (double)N;
  roaf_plan plan = roaf_parallel_plan(NULL, per_matrix * (double)count, count);
  qr_task t = {.n = N, .a = a, .q = q, .sign_fix = signFix};
  if (plan.threads <= 1) {
    queue_init(&t.queue, count, count);
    qr_task_run(&t, 0, 1);
    return;
  }
  // Small chunks: the matrices cost the same, and a thread whose core is busy elsewhere just takes fewer.
  queue_init(&t.queue, count, chunk_for(count, plan.threads, 8, 1));
  roaf_parallel_run(&plan, qr_task_run, &t);
}
