// One ROAF layer per call, x_{l+1} = alpha O x_l + beta tanh(W x_l + b), forward and backward: the per-layer
// path, used when every ∂loss/∂x_l is observed (the whole stack in one call is roaf_mlp.c). The layer's
// products run on the packed matrix product, with a dense filter's product fused into the same one
// (x [W; O]ᵀ forward, [gy, gz] [alpha O; W] backward), and the elementwise work done per block of rows.

#include "kernels_internal.h"

/**
 * For `rows` rows: z = P[:, :N] + bias; a = tanh(z); h = beta a + alpha (O hPrev), where O hPrev is P[:, N:2N]
 * for a dense filter (`dense`) or is applied here in O(N) otherwise.
 */
static void roaf_step_rows(idx rows, idx N, float alpha, float beta, const roaf_filter *f, int dense, const float *P,
                           idx ldp, const float *bias, const float *hPrev, float *a, float *h) {
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
    if (!dense && alpha != 0.0f) filter_rows(f, 0, 1, N, alpha, hPrev + r * N, 1.0f, hr);
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
  (void)nt;
  layer_task *L = p;
  idx r0, r1, ncols = L->pb.N;
  while (queue_claim(&L->rows, &r0, &r1)) {
    float *P = roaf_scratch(tid, SCRATCH_WORK, (size_t)((r1 - r0) * ncols));
    a_operand a = {.p = L->x + r0 * L->N, .ld = L->N};
    gemm_packed(tid, &a, r1 - r0, &L->pb, 1.0f, 0.0f, P, ncols);
    roaf_step_rows(r1 - r0, L->N, L->alpha, L->beta, L->f, L->dense, P, ncols, L->b, L->x + r0 * L->N,
                   L->aOut + r0 * L->N, L->y + r0 * L->N);
  }
}

void k_roaf_layer_forward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x, const float *W,
                          const float *b, float *a, float *y) {
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  idx ncols = dense ? 2 * N : N;
  b_operand bw = forward_weights(W, N, f, dense);
  float *buf = roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(N, ncols));
  layer_task L = {
      .B = B, .N = N, .alpha = alpha, .beta = beta, .f = f, .dense = dense, .x = x, .b = b, .aOut = a, .y = y};
  L.pb = pack_b_full(&bw, N, ncols, buf);
  roaf_plan plan = roaf_parallel_plan(NULL, (double)B * (double)N * (double)ncols, (B + MR - 1) / MR);
  queue_init(&L.rows, B, chunk_for(B, plan.threads, 2, MR));
  roaf_parallel_run(&plan, layer_forward_run, &L);
}

static void layer_backward_run(void *p, int tid, int nt) {
  (void)nt;
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
    if (!L->dense && L->alpha != 0.0f) filter_rows(L->f, 1, r1 - r0, N, L->alpha, L->gy + r0 * N, 1.0f, L->gx + r0 * N);
  }
  // gW rows [m0, m1): gW[m0:m1, :] += gz[:, m0:m1]ᵀ x.
  idx m0, m1;
  while (queue_claim(&L->wrows, &m0, &m1)) {
    a_operand a = {.p = L->gz + m0, .ld = N, .trans = 1};
    b_operand b = {.p = L->x, .ld = N, .scale = 1.0f};
    gemm_serial(tid, &a, &b, m1 - m0, N, L->B, 1.0f, 1.0f, L->gW + m0 * N, N);
  }
}

void k_roaf_layer_backward(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x, const float *a,
                           const float *W, const float *gy, float *gx, float *gW, float *gb, float *gz) {
  vf vbeta = vset1(beta), one = vset1(1.0f);
  FOR_LANES(i, B * N, w) {
    vf av = loadw(a + i, w);
    storew(gz + i, vmul(vmul(vbeta, loadw(gy + i, w)), vnmadd(av, av, one)), w);
  }
  k_sum_rows(B, N, gz, gb);
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  layer_task L = {.B = B,
                  .N = N,
                  .alpha = alpha,
                  .beta = beta,
                  .f = f,
                  .dense = dense,
                  .x = x,
                  .gy = gy,
                  .gx = gx,
                  .gW = gW,
                  .gz = gz};
  if (gx != NULL) {
    b_operand bw = backward_weights(W, N, alpha, f, dense);
    idx K = dense ? 2 * N : N;
    L.pb = pack_b_full(&bw, K, N, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(K, N)));
  }
  double work = (double)B * (double)N * (double)N * (gx != NULL ? (dense ? 3 : 2) : 1);
  roaf_plan plan = roaf_parallel_plan(NULL, work, (min_idx(B, N) + MR - 1) / MR);
  queue_init(&L.rows, B, chunk_for(B, plan.threads, 2, MR));
  queue_init(&L.wrows, N, chunk_for(N, plan.threads, 2, MR));
  roaf_parallel_run(&plan, layer_backward_run, &L);
}
