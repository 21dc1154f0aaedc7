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

// ---- the frame, and the QR's earlier reflectors: reflectors k0..k1-1 applied to rows first..first+count-1 ----
//
// Eight reflectors at a time (a panel), in the compact WY form: H_p0 ⋯ H_p0+7 = I - Y T Yᵀ with Y = [v_p0 … v_p0+7]
// (each v zero below its own index) and T upper triangular (LAPACK's dlarft), so a row z receives the panel as
// z - ((z Y) T) Yᵀ: two passes over z, in tiles of four rows that share every load of Y, instead of sixteen
// passes of one dot product and one update each. Exactly the same transformation; the rounding differs.

/** Reflectors per panel. */
#define PANEL 8
/** Below this size the reflectors are applied one by one (the tiles would be mostly padding). */
#define MIN_PANEL_N 16

/** T (PANEL x PANEL, row-major) of reflectors p0..p0+b-1, b <= PANEL; the rest of T is zero (padding). */
static void panel_t(idx n, const double *V, const double *tau, idx p0, idx b, double *T) {
  memset(T, 0, sizeof(double) * PANEL * PANEL);
  for (idx i = 0; i < b; i++) {
    const double ti = tau[p0 + i];
    T[i * PANEL + i] = ti;
    if (ti == 0.0) continue;
    double u[PANEL];  // v_j · v_i for j < i, over v_i's entries (p0 + i and on)
    const idx from = p0 + i;
    for (idx j = 0; j < i; j++) u[j] = dot(V + (p0 + j) * n + from, V + from * n + from, n - from);
    for (idx r = 0; r < i; r++) {
      double sum = 0.0;
      for (idx j = r; j < i; j++) sum += T[r * PANEL + j] * u[j];
      T[r * PANEL + i] = -ti * sum;
    }
  }
}

/** out[r][j] = z_r · y_j over [0, len) for four rows and four reflectors: sixteen vector accumulators. */
static inline void dots_4x4(const double *const z[4], const double *const y[4], idx len, double out[4][4]) {
  v8d acc[4][4];
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) acc[r][j] = (v8d){0};
  idx c = 0;
  for (; c + 8 <= len; c += 8) {
    const v8d y0 = load8(y[0] + c), y1 = load8(y[1] + c), y2 = load8(y[2] + c), y3 = load8(y[3] + c);
    for (int r = 0; r < 4; r++) {
      const v8d zr = load8(z[r] + c);
      acc[r][0] += zr * y0;
      acc[r][1] += zr * y1;
      acc[r][2] += zr * y2;
      acc[r][3] += zr * y3;
    }
  }
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < 4; j++) {
      const v8d a = acc[r][j];
      double sum = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
      for (idx t = c; t < len; t++) sum += z[r][t] * y[j][t];
      out[r][j] = sum;
    }
}

/**
 * z_r += Σ_j coefficients[r][j] y_j over [0, len), for the first `count` of four rows and PANEL vectors y_j: each
 * load of a y_j serves every row, and each row is read and written once.
 */
static void accumulate_rows(double *const rows[4], int count, const double coefficients[4][PANEL],
                            const double *const y[PANEL], idx len) {
  idx c = 0;
  for (; c + 8 <= len; c += 8) {
    v8d yv[PANEL];
    for (int j = 0; j < PANEL; j++) yv[j] = load8(y[j] + c);
    for (int r = 0; r < count; r++) {
      v8d zr = load8(rows[r] + c);
      for (int j = 0; j < PANEL; j++) zr += coefficients[r][j] * yv[j];
      store8(rows[r] + c, zr);
    }
  }
  for (; c < len; c++)
    for (int r = 0; r < count; r++) {
      double zr = rows[r][c];
      for (int j = 0; j < PANEL; j++) zr += coefficients[r][j] * y[j][c];
      rows[r][c] = zr;
    }
}

/**
 * Rows `rows[0..4)` (entries p0..n-1) times one panel: z <- z - ((z Y) T) Yᵀ. `y`: the panel's eight rows of V
 * from entry p0 (a zero row where the panel is short). `count` (1-4): the real rows; the others repeat one of
 * them and are computed but not written.
 */
static void panel_rows(const double *const y[PANEL], const double *T, double *const rows[4], int count, idx len) {
  double w[4][PANEL];
  const double *z[4] = {rows[0], rows[1], rows[2], rows[3]};
  for (int half = 0; half < PANEL; half += 4) {
    double out[4][4];
    dots_4x4(z, y + half, len, out);
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++) w[r][half + j] = out[r][j];
  }
  double wt[4][PANEL];  // (z Y) T
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < PANEL; j++) {
      double sum = 0.0;
      for (int i = 0; i <= j; i++) sum += w[r][i] * T[i * PANEL + j];
      wt[r][j] = sum;
    }
  for (int r = 0; r < 4; r++)
    for (int j = 0; j < PANEL; j++) wt[r][j] = -wt[r][j];
  accumulate_rows(rows, count, wt, y, len);
}

typedef struct {
  work_queue queue;
  idx n, first, k0, k1;
  double *rows;
  const double *V, *tau;
  const double *Ts;     // T of panel p (reflectors p PANEL ..) at Ts + p PANEL², or NULL: one by one
  const double *zeros;  // n zeros: the rows of a short panel's padding
} reflect_task;

static void reflect_rows(void *p, int tid, int nthreads) {
  (void)tid;
  (void)nthreads;
  reflect_task *t = p;
  const idx n = t->n;
  idx lo, hi;
  while (queue_claim(&t->queue, &lo, &hi)) {
    if (t->Ts == NULL) {
      for (idx k = t->k0; k < t->k1; k++) {
        const double tau = t->tau[k];
        if (tau == 0.0) continue;
        for (idx i = t->first + lo; i < t->first + hi; i++) reflect(t->rows + i * n, t->V + k * n, tau, k, n);
      }
      continue;
    }
    // k0 is a multiple of PANEL (0, or a QR block's start): panel p covers reflectors p PANEL .. p PANEL + 7.
    for (idx p0 = t->k0; p0 < t->k1; p0 += PANEL) {
      const idx b = t->k1 - p0 < PANEL ? t->k1 - p0 : PANEL;
      const double *y[PANEL];
      for (idx j = 0; j < PANEL; j++) y[j] = (j < b ? t->V + (p0 + j) * n : t->zeros) + p0;
      const double *T = t->Ts + (p0 / PANEL) * PANEL * PANEL;
      for (idx i = t->first + lo; i < t->first + hi; i += 4) {
        const int count = (int)(t->first + hi - i < 4 ? t->first + hi - i : 4);
        double *rows[4];
        for (int r = 0; r < 4; r++) rows[r] = t->rows + (i + (r < count ? r : 0)) * n + p0;
        panel_rows(y, T, rows, count, n - p0);
      }
    }
  }
}

/**
 * Reflectors k0..k1-1 of V, in order, applied to rows [first, first + count) of `rows`: by panels when `Ts`
 * holds their T (computed by panel_t with short panels only at the end), else one by one.
 */
static void reflect_all(idx n, double *rows, idx first, idx count, const double *V, const double *tau, idx k0, idx k1,
                        const double *Ts, const double *zeros) {
  if (count <= 0 || k1 <= k0) return;
  reflect_task t = {
      .n = n, .first = first, .k0 = k0, .k1 = k1, .rows = rows, .V = V, .tau = tau, .Ts = Ts, .zeros = zeros};
  // Reflector k costs 2 (n - k) multiply-adds per row.
  const double per_row = (double)(k1 - k0) * (double)(2 * n - k0 - k1 + 1);
  run_rows(reflect_rows, &t, &t.queue, per_row * (double)count, count, rows_per_chunk(n));
}

// ---- the QR ----

/**
 * Householder QR of Z, held as zt (row j = column j of Z): reflector k into row k of V (zero below k) and
 * tau[k], R_kk into diag[k], and the strictly upper part of R left in zt (R_kj = zt[j][k] for j > k); the
 * Lyapunov sums grow. With `Ts`, the panels' T are written there as their reflectors are found, and the earlier
 * reflectors reach each block of columns by panels.
 */
static void factor(idx n, double *zt, double *V, double *tau, double *diag, double *lyapunov_sums, double *Ts,
                   const double *zeros) {
  for (idx j0 = 0; j0 < n; j0 += QR_BLOCK) {
    const idx j1 = j0 + QR_BLOCK < n ? j0 + QR_BLOCK : n;
    reflect_all(n, zt, j0, j1 - j0, V, tau, 0, j0, Ts, zeros);
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
      memset(v, 0, sizeof(double) * (size_t)k);
      v[k] = x0 - d;
      for (idx c = k + 1; c < n; c++) v[c] = z[c];
      const double vnorm2 = dot(v + k, v + k, n - k);
      tau[k] = vnorm2 == 0.0 ? 0.0 : 2.0 / vnorm2;
      diag[k] = d;
      lyapunov_sums[k] += log(fabs(d));
      if (tau[k] != 0.0)
        for (idx j = k + 1; j < j1; j++) reflect(zt + j * n, v, tau[k], k, n);
    }
    if (Ts != NULL)
      for (idx p0 = j0; p0 < j1; p0 += PANEL)
        panel_t(n, V, tau, p0, j1 - p0 < PANEL ? j1 - p0 : PANEL, Ts + (p0 / PANEL) * PANEL * PANEL);
  }
}

// ---- the triangular product: P <- R P in the scaled representation ----

typedef struct {
  work_queue queue;
  idx n;
  const double *R, *M, *s;
  double *coefficients;  // (n, n): row i holds sign(R_ik) e^{log|R_ik| + s_k - c_i} for k >= i
  double *out, *out_s;   // the new M and s
  const double *zeros;   // n zeros: the padding of the last group of old rows
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
  // The old rows eight at a time (they stay in L2 while every four-row tile of the block uses them); M is upper
  // triangular and the coefficients of k < i are zero, so each tile runs over whole groups from the group's start.
  for (idx k0 = lo - lo % PANEL; k0 < n; k0 += PANEL) {
    const double *y[PANEL];
    for (idx j = 0; j < PANEL; j++) y[j] = (k0 + j < n ? t->M + (k0 + j) * n : t->zeros) + k0;
    for (idx i0 = lo; i0 < hi && i0 < k0 + PANEL; i0 += 4) {
      const int count = (int)(hi - i0 < 4 ? hi - i0 : 4);
      double *rows[4];
      double coefficients[4][PANEL];
      for (int r = 0; r < 4; r++) {
        const idx i = i0 + (r < count ? r : 0);
        rows[r] = t->out + i * n + k0;
        for (idx j = 0; j < PANEL; j++) {
          const idx k = k0 + j;
          coefficients[r][j] = (k >= i && k < n) ? t->coefficients[i * n + k] : 0.0;
        }
      }
      accumulate_rows(rows, count, coefficients, y, n - k0);
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

/** M, s <- the scaled representation of R P; `work`: 2 n² + 2 n doubles. */
static void multiply_product(idx n, const double *R, double *M, double *s, double *work) {
  product_task t = {.n = n,
                    .R = R,
                    .M = M,
                    .s = s,
                    .coefficients = work,
                    .out = work + n * n,
                    .out_s = work + 2 * n * n,
                    .zeros = work + 2 * n * n + n};
  memset(work + 2 * n * n + n, 0, sizeof(double) * (size_t)n);
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
  // work (3 n² + n doubles, as the reference's): zt (n²), diag (n), the panels' T (PANEL² per panel) and a row of
  // zeros (n) for the frame and the QR: n² + 10 n + 56 doubles, within 3 n² + n from n = 16 (below, no panels).
  // Once R is formed (in J's memory, which the frame and the QR no longer need), the product's coefficients, new M
  // and new s (2 n² + n) reuse it.
  double *zt = work;
  double *diag = work + n * n;
  double *Ts = n >= MIN_PANEL_N ? diag + n : NULL;
  double *zeros = Ts != NULL ? Ts + (n + PANEL - 1) / PANEL * PANEL * PANEL : NULL;
  if (zeros != NULL) memset(zeros, 0, sizeof(double) * (size_t)n);
  if (!first) {
    if (Ts != NULL)
      for (idx k = 0; k < n; k++) {
        memset(reflectors + k * n, 0, sizeof(double) * (size_t)k);  // Y's zeros, whatever the state held there
        if (k % PANEL == 0) panel_t(n, reflectors, tau, k, n - k < PANEL ? n - k : PANEL, Ts + k * PANEL);
      }
    reflect_all(n, J, 0, n, reflectors, tau, 0, n, Ts, zeros);
  }
  transpose(n, J, zt);
  factor(n, zt, reflectors, tau, diag, lyapunovSums, Ts, zeros);
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
