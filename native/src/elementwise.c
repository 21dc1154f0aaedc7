// Elementwise kernels and reductions over rows (tanh and its derivative, scale, axpy, bias rows and their sums,
// the sum of squares), split between threads by ranges when large, and the losses (small: B x K).

#include "kernels_internal.h"

// ---- elementwise kernels, split by ranges ----

typedef struct {
  range_fn fn;
  void *arg;
  work_queue q;
} range_task;

static void range_task_run(void *p, int tid, int nt) {
  (void)tid, (void)nt;
  range_task *r = p;
  idx lo, hi;
  while (queue_claim(&r->q, &lo, &hi)) r->fn(r->arg, lo, hi);
}

void parallel_range(range_fn fn, void *arg, idx n, double costPerElement) {
  roaf_plan plan = roaf_parallel_plan(NULL, (double)n * costPerElement, n / 4096);
  if (plan.threads <= 1) {
    fn(arg, 0, n);
    return;
  }
  range_task r = {.fn = fn, .arg = arg};
  queue_init(&r.q, n, chunk_for(n, plan.threads, 4, 64));
  roaf_parallel_run(&plan, range_task_run, &r);
}

void k_add_row_vector(idx rows, idx n, float *y, const float *bias) {
  for (idx r = 0; r < rows; r++) {
    float *row = y + r * n;
    FOR_LANES(j, n, w) storew(row + j, vadd(loadw(row + j, w), loadw(bias + j, w)), w);
  }
}

/** sums[j] += Σ rows (sums in double), summed in float per block of 64 rows and in double across blocks. */
void k_sum_rows_double(idx rows, idx n, const float *x, double *sums) {
  float *block = roaf_scratch(0, SCRATCH_WORK, (size_t)n);
  for (idx r0 = 0; r0 < rows; r0 += 64) {
    memset(block, 0, (size_t)n * sizeof(float));
    idx r1 = min_idx(rows, r0 + 64);
    for (idx r = r0; r < r1; r++) {
      const float *row = x + r * n;
      FOR_LANES(j, n, w) storew(block + j, vadd(loadw(block + j, w), loadw(row + j, w)), w);
    }
    for (idx j = 0; j < n; j++) sums[j] += block[j];
  }
}

/** out[j] += Σ rows (k_sum_rows_double, then one rounding). */
void k_sum_rows(idx rows, idx n, const float *x, float *out) {
  double *sums = (double *)roaf_scratch(0, SCRATCH_WORK2, (size_t)(2 * n));
  memset(sums, 0, (size_t)n * sizeof(double));
  k_sum_rows_double(rows, n, x, sums);
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
void k_tanh(idx n, const float *x, float *out) {
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
void k_tanh_backward(idx n, const float *a, const float *gy, float *gx) {
  ew_args e = {.a = a, .gy = gy, .out = gx};
  parallel_range(tanh_backward_range, &e, n, 2);
}

/** Σ x² in float64, as the interface promises: squares of entries below ~1e-19 would vanish in float32. */
double k_sum_squares(idx n, const float *x) {
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
void k_scale(idx n, float *x, float s) {
  ew_args e = {.out = x, .s = s};
  parallel_range(scale_range, &e, n, 1);
}

static void axpy_range(void *p, idx lo, idx hi) {
  ew_args *e = p;
  vf s = vset1(e->s);
  FOR_LANES(i, hi - lo, w) storew(e->out + lo + i, vfma(loadw(e->x + lo + i, w), s, loadw(e->out + lo + i, w)), w);
}
void k_axpy(idx n, float s, const float *x, float *y) {
  ew_args e = {.x = x, .out = y, .s = s};
  parallel_range(axpy_range, &e, n, 1);
}

// ---- losses (small: B x K; computed in double like the reference) ----

double k_softmax_cross_entropy(idx B, idx K, const float *logits, const int32_t *labels, float gradScale, float *grad,
                               uint8_t *correct) {
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

double k_squared_error(idx B, idx K, const float *pred, const float *target, float gradScale, float *grad) {
  double total = 0.0;
  for (idx i = 0; i < B * K; i++) {
    double diff = (double)pred[i] - (double)target[i];
    total += diff * diff;
    if (grad != NULL) grad[i] = (float)(2.0 * diff * gradScale);
  }
  return total;
}
