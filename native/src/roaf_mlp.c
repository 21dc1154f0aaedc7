// The ROAF MLP's whole stack of layers in one call:
// x_{l+1} = alpha O_l x_l + beta tanh(W_l x_l + b_l) for l = 0..L-1, forward and backward, one call each, as row
// sweeps over the layers: no synchronisation per layer. Only the weight gradients mix rows: the backward sweep
// stores gz_l = ∂loss/∂z_l of every layer, and after it gW_l += gz_lᵀ x_l and gb_l += Σ gz_l are computed one
// whole layer per task, so each is summed in the same order on any number of threads. The forward packs each
// layer's Wᵀ and Oᵀ once per thread (a layer's weights are read once per call, as they stream from memory).

#include "kernels_internal.h"

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

static inline int mlp_dense(const mlp_task *m, idx l) { return m->filters[l].kind == FILTER_DENSE && m->alpha != 0.0f; }

/** Layer l of the forward for rows [r0, r1) of the slot [lo, hi) (a block of a step of the forward sweep). */
static void mlp_forward_step(void *p, void *state, int tid, idx l, idx r0, idx r1, idx lo, idx hi) {
  const mlp_task *m = p;
  sweep_local *local = state;
  idx N = m->N, step = m->B * N;
  const roaf_filter *filter = &m->filters[l];
  int dense = mlp_dense(m, l);
  float *packed = roaf_scratch(tid, SCRATCH_PACK_B, roaf_packed_size(N));
  if (local->planned != l + 1) {  // the thread's first rows of layer l: pack its weights, plan the prefetches
    local->planned = l + 1;
    local->panels = roaf_pack_forward(m->Ws + l * N * N, dense ? filter->matrix : NULL, N, packed);
    local->pl = (prefetch_plan){0};
    if (l + 1 < m->L) {
      plan_add(&local->pl, m->Ws + (l + 1) * N * N, N * N);
      if (mlp_dense(m, l + 1) && m->filters[l + 1].matrix != filter->matrix)
        plan_add(&local->pl, m->filters[l + 1].matrix, N * N);
      plan_add(&local->pl, m->as + (l + 1) * step + lo * N, (hi - lo) * N);
      plan_add(&local->pl, m->xs + (l + 2) * step + lo * N, (hi - lo) * N);
    }
    plan_spread(&local->pl, forward_iterations(N, local->panels, hi - lo));
  }
  roaf_forward_args f = {.N = N,
                         .alpha = m->alpha,
                         .beta = m->beta,
                         .bias = m->bs + l * N,
                         .identity = filter->kind == FILTER_IDENTITY && m->alpha != 0.0f};
  roaf_forward_rows(&f, filter, dense, r1 - r0, packed, local->panels, m->xs + l * step + r0 * N,
                    m->as + l * step + r0 * N, m->xs + (l + 1) * step + r0 * N, &local->pl);
}

void k_roaf_mlp_forward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                        const float *bs, float *xs, float *as) {
  if (L <= 0 || B <= 0 || N <= 0) return;
  mlp_task m = {
      .L = L, .B = B, .N = N, .alpha = alpha, .beta = beta, .filters = filters, .Ws = Ws, .bs = bs, .xs = xs, .as = as};
  roaf_row_sweep(mlp_forward_step, &m, sizeof(sweep_local), L, B, MR,
                 (double)L * (double)B * (double)N * (double)N * 2);
}

/**
 * Step s of the backward sweep for rows [r0, r1) of the slot [lo, hi): layer l = L-1-s, from ∂loss/∂x_{l+1} (gy at
 * s = 0, then the ping-pong buffers) to ∂loss/∂x_l, storing gz_{l-1} for the next step and the weight gradients.
 */
static void mlp_backward_step(void *p, void *state, int tid, idx s, idx r0, idx r1, idx lo, idx hi) {
  (void)tid;
  const mlp_task *m = p;
  sweep_local *local = state;
  idx L = m->L, N = m->N, B = m->B, step = B * N, rows = r1 - r0, l = L - 1 - s;
  const float *gy = (s == 0 ? m->gy : m->ping[(s + 1) & 1]) + r0 * N;  // ∂loss/∂x_{l+1}
  float *out = m->ping[s & 1] + r0 * N;                                // ∂loss/∂x_l
  if (s == 0) {
    if (m->rowSq != NULL) row_squares(rows, N, gy, m->rowSq + L * B + r0);
    roaf_gz_rows(rows, N, m->beta, gy, m->as + l * step + r0 * N, m->gzs + l * step + r0 * N);
  }
  const roaf_filter *filter = &m->filters[l];
  if (local->planned != s + 1) {  // the thread's first rows of this layer: plan the prefetches for the next
    local->planned = s + 1;
    local->pl = (prefetch_plan){0};
    if (l > 0) {
      plan_add(&local->pl, m->Ws + (l - 1) * N * N, N * N);
      if (mlp_dense(m, l - 1) && m->filters[l - 1].matrix != filter->matrix)
        plan_add(&local->pl, m->filters[l - 1].matrix, N * N);
      if (l > 1) {
        plan_add(&local->pl, m->as + (l - 2) * step + lo * N, (hi - lo) * N);
        plan_add(&local->pl, m->gzs + (l - 2) * step + lo * N, (hi - lo) * N);
      }
    }
    plan_spread(&local->pl, backward_iterations(N, mlp_dense(m, l), hi - lo));
  }
  const float *aNext = l > 0 ? m->as + (l - 1) * step + r0 * N : NULL;
  float *gzNext = l > 0 ? m->gzs + (l - 1) * step + r0 * N : NULL;
  roaf_backward_args f = {
      .N = N, .alpha = m->alpha, .beta = m->beta, .identity = filter->kind == FILTER_IDENTITY && m->alpha != 0.0f};
  backward_in_place(&f, mlp_dense(m, l) ? filter->matrix : NULL, m->Ws + l * N * N);
  roaf_backward_rows(&f, filter, rows, gy, m->gzs + l * step + r0 * N, out, aNext, gzNext, &local->pl);
  if (m->rowSq != NULL) row_squares(rows, N, out, m->rowSq + l * B + r0);
  if (l == 0) memcpy(m->gy + r0 * N, out, float_bytes(rows * N));
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
      plan_add(&pl, gz + step, step);
      plan_add(&pl, x + step, step);
      plan_add(&pl, gW + N * N, N * N);
    }
    plan_spread(&pl, ((N + SNR - 1) / SNR) * ((N + MR - 1) / MR) * B);
    roaf_weight_tiles(B, N, gz, x, gW, &pl);
    mlp_bias_sum(B, N, gz, m->gbs + l * N);
  }
}

static void mlp_weight_run(void *p, int tid, int nt) {
  (void)tid, (void)nt;
  mlp_task *m = p;
  idx l0, l1;
  while (queue_claim(&m->layers, &l0, &l1)) mlp_weight_layers(m, l0, l1);
}

/**
 * The backward pass of either precision: the row sweep of `step` from the last layer down (each thread keeping
 * `localSize` bytes between its blocks), then the weight gradients of every layer by `weights` from a queue of
 * layers, then the squared gradient norms per layer.
 */
static void mlp_backward(roaf_sweep_fn step, size_t localSize, roaf_task_fn weights, idx L, idx B, idx N, float alpha,
                         float beta, const roaf_filter *filters, const float *Ws, const float *xs, const float *as,
                         float *gy, float *gWs, float *gbs, double *gradSquares) {
  if (N <= 0) return;
  if (L <= 0 || B <= 0) {
    if (gradSquares != NULL) gradSquares[0] = B > 0 ? k_sum_squares(B * N, gy) : 0.0;
    return;
  }
  mlp_task m = {.L = L,
                .B = B,
                .N = N,
                .alpha = alpha,
                .beta = beta,
                .filters = filters,
                .Ws = Ws,
                .xs = (float *)xs,
                .as = (float *)as,
                .gy = gy,
                .gWs = gWs,
                .gbs = gbs};
  m.gzs = roaf_scratch(0, SCRATCH_STACK, (size_t)(L * B * N + 2 * B * N));
  m.ping[0] = m.gzs + L * B * N;
  m.ping[1] = m.ping[0] + B * N;
  if (gradSquares != NULL) m.rowSq = (double *)roaf_scratch(0, SCRATCH_STACK_ROWS, (size_t)(2 * (L + 1) * B));
  double work = (double)L * (double)B * (double)N * (double)N;
  roaf_row_sweep(step, &m, localSize, L, B, MR, work * 2);
  roaf_plan plan = roaf_parallel_plan((const void *)weights, work, L);
  queue_init(&m.layers, L, chunk_for(L, plan.threads, 32, 1));
  roaf_parallel_run(&plan, weights, &m);
  if (gradSquares != NULL) {
    for (idx l = 0; l <= L; l++) {
      double total = 0.0;
      for (idx r = 0; r < B; r++) total += m.rowSq[l * B + r];
      gradSquares[l] = total;
    }
  }
}

void k_roaf_mlp_backward(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                         const float *xs, const float *as, float *gy, float *gWs, float *gbs, double *gradSquares) {
  mlp_backward(mlp_backward_step, sizeof(sweep_local), mlp_weight_run, L, B, N, alpha, beta, filters, Ws, xs, as, gy,
               gWs, gbs, gradSquares);
}

// ---- the stack on bf16 products (--precision bf16, docs/precision.md) ----
//
// The same sweeps on the bf16 steps of roaf_tiles.c: each thread rounds and packs a layer's W into bf16 pair
// panels (and a dense filter's O in float32) when it first reaches the layer, each block rounds its rows, and
// the weight gradients gz_lᵀ x_l are one bf16 product per layer, in the order of BackendBase's layers on
// gemmBf16.

/** What a thread keeps between the blocks of a bf16 sweep: the layer it packed, and the packed O. */
typedef struct {
  idx planned;  // 1 + the step whose layer is packed; 0: none
  packed_b ob;
} bf16_local;

/** The bf16 step arguments of layer l, its weights packed into tid's scratch when the thread first reaches it. */
static bf16_rows_args mlp_bf16_layer(const mlp_task *m, bf16_local *local, int tid, idx l, idx step, int trans) {
  idx N = m->N;
  const roaf_filter *filter = &m->filters[l];
  bf16_rows_args f = bf16_rows_setup(N, m->alpha, m->beta, filter);
  uint32_t *wp = (uint32_t *)roaf_scratch(tid, SCRATCH_PACK_B, bf16_packed_b_size(N, N));
  float *op = f.dense ? roaf_scratch(tid, SCRATCH_WORK2, packed_b_size(N, N)) : NULL;
  if (local->planned != step + 1) {
    local->planned = step + 1;
    bf16_pack_b_full(m->Ws + l * N * N, N, trans, N, N, wp);
    if (f.dense) {
      b_operand o = {.p = filter->matrix, .ld = N, .trans = trans, .scale = 1.0f};
      local->ob = pack_b_full(&o, N, N, op);
    }
  }
  f.wp = wp;
  f.ob = &local->ob;
  return f;
}

static void mlp_bf16_forward_step(void *p, void *state, int tid, idx l, idx r0, idx r1, idx lo, idx hi) {
  (void)lo;
  (void)hi;
  const mlp_task *m = p;
  idx N = m->N, step = m->B * N;
  bf16_rows_args f = mlp_bf16_layer(m, state, tid, l, l, 1);
  f.bias = m->bs + l * N;
  if (l + 1 < m->L) {  // the next layer's a and x rows
    f.next[0] = m->as + (l + 1) * step + r0 * N;
    f.next[1] = m->xs + (l + 2) * step + r0 * N;
  }
  bf16_forward_rows(tid, &f, r1 - r0, m->xs + l * step + r0 * N, m->as + l * step + r0 * N,
                    m->xs + (l + 1) * step + r0 * N);
}

void k_roaf_mlp_forward_bf16(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                             const float *bs, float *xs, float *as) {
  if (L <= 0 || B <= 0 || N <= 0) return;
  mlp_task m = {
      .L = L, .B = B, .N = N, .alpha = alpha, .beta = beta, .filters = filters, .Ws = Ws, .bs = bs, .xs = xs, .as = as};
  roaf_row_sweep(mlp_bf16_forward_step, &m, sizeof(bf16_local), L, B, MR,
                 (double)L * (double)B * (double)N * (double)N * 2);
}

static void mlp_bf16_backward_step(void *p, void *state, int tid, idx s, idx r0, idx r1, idx lo, idx hi) {
  (void)lo;
  (void)hi;
  const mlp_task *m = p;
  idx L = m->L, N = m->N, B = m->B, step = B * N, rows = r1 - r0, l = L - 1 - s;
  const float *gy = (s == 0 ? m->gy : m->ping[(s + 1) & 1]) + r0 * N;  // ∂loss/∂x_{l+1}
  float *out = m->ping[s & 1] + r0 * N;                                // ∂loss/∂x_l
  if (s == 0) {
    if (m->rowSq != NULL) row_squares(rows, N, gy, m->rowSq + L * B + r0);
    roaf_gz_rows(rows, N, m->beta, gy, m->as + l * step + r0 * N, m->gzs + l * step + r0 * N);
  }
  bf16_rows_args f = mlp_bf16_layer(m, state, tid, l, s, 0);
  if (l > 1) {  // the rows the next layer reads and writes
    f.next[0] = m->as + (l - 2) * step + r0 * N;
    f.next[1] = m->gzs + (l - 2) * step + r0 * N;
  }
  bf16_backward_rows(tid, &f, rows, gy, m->gzs + l * step + r0 * N, out, 0,
                     l > 0 ? m->as + (l - 1) * step + r0 * N : NULL, l > 0 ? m->gzs + (l - 1) * step + r0 * N : NULL);
  if (m->rowSq != NULL) row_squares(rows, N, out, m->rowSq + l * B + r0);
  if (l == 0) memcpy(m->gy + r0 * N, out, float_bytes(rows * N));
}

/** gW_l += gz_lᵀ x_l (bf16 operands) and gb_l += Σ_rows gz_l for the layers of the queue. */
static void mlp_bf16_weight_run(void *p, int tid, int nt) {
  (void)nt;
  mlp_task *m = p;
  idx B = m->B, N = m->N, step = B * N, l0, l1;
  while (queue_claim(&m->layers, &l0, &l1)) {
    for (idx l = l0; l < l1; l++) {
      gemm_bf16_thread(tid, 1, 0, N, N, B, 1.0f, m->gzs + l * step, N, m->xs + l * step, N, 1.0f, m->gWs + l * N * N,
                       N);
      mlp_bias_sum(B, N, m->gzs + l * step, m->gbs + l * N);
    }
  }
}

void k_roaf_mlp_backward_bf16(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                              const float *xs, const float *as, float *gy, float *gWs, float *gbs,
                              double *gradSquares) {
  mlp_backward(mlp_bf16_backward_step, sizeof(bf16_local), mlp_bf16_weight_run, L, B, N, alpha, beta, filters, Ws, xs,
               as, gy, gWs, gbs, gradSquares);
}
