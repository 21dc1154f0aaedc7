// The ROAF recurrent cell over a whole sequence, h_t = alpha O h_{t-1} + beta tanh(W h_{t-1} + U x_t + b),
// forward and backward through time, one call each.
//
// The steps of a sequence are the layers of a ROAF MLP that share W, O and whose bias is the step's input
// drive, so the cell runs on the stack's tiles and row sweeps: [Wᵀ | Oᵀ] packed once per call for the forward,
// W and O read in place by the backward, each step's elementwise work in the tiles' epilogues.

#include "kernels_internal.h"

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
  idx s0;                       // backward: the first step of this chunk of the sweep (backward_in_chunks)
} cell_task;

/** Step t of the forward for rows [r0, r1) of the slot [lo, hi): h_t from h_{t-1}. */
static void cell_forward_step(void *p, void *state, int tid, idx t, idx r0, idx r1, idx lo, idx hi) {
  (void)tid;
  const cell_task *c = p;
  sweep_local *local = state;
  idx N = c->N, step = c->B * N;
  if (local->planned != t + 1) {  // the thread's first rows of step t: plan the prefetches for the next
    local->planned = t + 1;
    local->pl = (prefetch_plan){0};
    if (t + 1 < c->T) {
      plan_add(&local->pl, c->as + (t + 1) * step + lo * N, (hi - lo) * N);
      plan_add(&local->pl, c->hs + (t + 2) * step + lo * N, (hi - lo) * N);
    }
    plan_spread(&local->pl, forward_iterations(N, c->panels, hi - lo));
  }
  roaf_forward_args f = {.N = N,
                         .alpha = c->alpha,
                         .beta = c->beta,
                         .bias = c->b,
                         .u = c->U,
                         .xd = c->U != NULL ? c->xs + t * c->B + r0 : NULL,
                         .identity = c->f->kind == FILTER_IDENTITY && c->alpha != 0.0f};
  roaf_forward_rows(&f, c->f, c->dense, r1 - r0, c->packed, c->panels, c->hs + t * step + r0 * N,
                    c->as + t * step + r0 * N, c->hs + (t + 1) * step + r0 * N, &local->pl);
}

void k_roaf_cell_forward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                         const float *W, const float *U, const float *b, float *hs, float *as) {
  if (T <= 0 || B <= 0 || N <= 0) return;
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  float *packed = roaf_scratch(0, SCRATCH_SHARED_B, roaf_packed_size(N));
  cell_task c = {.T = T,
                 .B = B,
                 .N = N,
                 .alpha = alpha,
                 .beta = beta,
                 .f = f,
                 .dense = dense,
                 .packed = packed,
                 .hs = hs,
                 .as = as};
  if (D == 1) {  // x_t Uᵀ + b is one multiply-add per element: the tiles form it (psMNIST, the adding problem)
    c.xs = xs;
    c.U = U;
    c.b = b;
  } else {  // the input drive of every step at once: as = xs Uᵀ + b, (T·B, N)
    k_gemm(0, 1, T * B, N, D, 1.0f, xs, D, U, D, 0.0f, as, N);
    k_add_row_vector(T * B, N, as, b);
  }
  c.panels = roaf_pack_forward(W, dense ? f->matrix : NULL, N, packed);
  roaf_row_sweep(cell_forward_step, &c, sizeof(sweep_local), T, B, MR,
                 (double)T * (double)B * (double)N * (double)N * (dense ? 2 : 1));
}

/**
 * Step s of backpropagation through time for rows [r0, r1) of the slot [lo, hi), t = T-1-s: ∂loss/∂h_{t-1} += what
 * flows back through step t (∂loss/∂h_0 = it, when asked for), and gz_{t-1} for the next step.
 */
static void cell_backward_step(void *p, void *state, int tid, idx chunkStep, idx r0, idx r1, idx lo, idx hi) {
  (void)tid;
  const cell_task *c = p;
  sweep_local *local = state;
  idx s = c->s0 + chunkStep, N = c->N, step = c->B * N, rows = r1 - r0, t = c->T - 1 - s;
  // ∂loss/∂h_t lives in ghs's step t-1, or, with lastStepOnly, alternates between ghs's steps 0 and 1 after the
  // first step (which reads the last): T·B·N floats of gradients never go to memory, and no loss terms are read.
  float *ping = c->lastStepOnly ? c->ghs : NULL;
  const float *gh = (s == 0 || ping == NULL ? c->ghs + t * step : ping + ((s + 1) & 1) * step) + r0 * N;
  float *gz = c->gzs + t * step + r0 * N;
  if (s == 0) roaf_gz_rows(rows, N, c->beta, gh, c->as + t * step + r0 * N, gz);
  float *target = t == 0 ? (c->gh0 != NULL ? c->gh0 + r0 * N : NULL)
                         : (ping == NULL ? c->ghs + (t - 1) * step : ping + (s & 1) * step) + r0 * N;
  if (target == NULL) return;
  if (local->planned != s + 1) {  // the thread's first rows of step t: plan the prefetches for the next
    local->planned = s + 1;
    local->pl = (prefetch_plan){0};
    if (t > 1) {
      plan_add(&local->pl, c->as + (t - 2) * step + lo * N, (hi - lo) * N);
      if (ping == NULL) plan_add(&local->pl, c->ghs + (t - 2) * step + lo * N, (hi - lo) * N);
      plan_add(&local->pl, c->gzs + (t - 2) * step + lo * N, (hi - lo) * N);
    }
    plan_spread(&local->pl, backward_iterations(N, c->dense, hi - lo));
  }
  const float *aNext = t > 0 ? c->as + (t - 1) * step + r0 * N : NULL;
  float *gzNext = t > 0 ? c->gzs + (t - 1) * step + r0 * N : NULL;
  roaf_backward_args f = c->backward;
  f.accumulate = t > 0 && ping == NULL;  // add the loss term of h_{t-1}
  roaf_backward_rows(&f, c->f, rows, gh, gz, target, aNext, gzNext, &local->pl);
}

/**
 * Steps of the backward per chunk: about GRADIENT_CHUNK_BYTES of gz (16 steps at N = 256, B = 128), so that the
 * parameter gradients of a chunk read its gz from cache, not memory; 1 at the test setting (threshold 0), so that
 * the tests cross many chunks. Smaller chunks cost two threads their joins (1 MB: +9 % on the N = 256 step),
 * larger ones fall out of cache (4 MB: +6 % on one thread; docs/native.md).
 */
#define GRADIENT_CHUNK_BYTES (1 << 21)
static idx gradient_chunk_steps(idx B, idx N) {
  if (roaf_min_parallel_work <= 0) return 1;
  return max_idx(1, GRADIENT_CHUNK_BYTES / max_idx(1, B * N * (idx)sizeof(float)));
}

/** What backward_in_chunks needs of a cell's backward: its sweep, and where a chunk's steps start. */
typedef struct {
  roaf_sweep_fn step;
  void *task;
  idx *s0;
  double work;  // multiply-adds of one step of the sweep
} cell_sweep;

/**
 * The backward through time a chunk of steps at a time, each chunk's parameter gradients taken in after its
 * sweep while its gz is still in cache (at psMNIST's shapes gz is 100 MB; read back from memory by three
 * products it cost the bf16 step about a sixth of its time): Σ gz_tᵀ h_{t-1}, Σ gz_tᵀ x_t (on bf16 products
 * when bf16, the input side's only when D > 1: `product`), Σ gz_t, summed across chunks in float32 (the products)
 * and double (the bias), and added to the gradients once at the end; gxs, a product per row, is written chunk
 * by chunk. A chunk is whole steps, the same on any number of threads, and so are the sums.
 */
static void backward_in_chunks(const cell_sweep *sweep, int bf16, idx T, idx B, idx D, idx N, const float *xs,
                               const float *U, const float *hs, const float *gzs, float *gW, float *gU, float *gb,
                               float *gxs) {
  size_t nW = (size_t)(N * N), nU = (size_t)(N * D);
  float *sumW = roaf_scratch(0, SCRATCH_GRADIENTS, nW + nU + 2 * (size_t)N + 16), *sumU = sumW + nW;
  double *sumB = (double *)(sumW + round_up((idx)(nW + nU), 2));  // an even float offset: 8-byte aligned
  memset(sumB, 0, (size_t)N * sizeof(double));
  idx chunk = gradient_chunk_steps(B, N), step = B * N;
  for (idx s0 = 0; s0 < T; s0 += chunk) {
    idx n = min_idx(chunk, T - s0), t0 = T - s0 - n, rows = n * B;  // steps t0 .. t0+n-1, last first
    float first = s0 == 0 ? 0.0f : 1.0f;
    *sweep->s0 = s0;
    roaf_row_sweep(sweep->step, sweep->task, sizeof(sweep_local), n, B, MR, (double)n * sweep->work);
    const float *gz = gzs + t0 * step;
    k_sum_rows_double(rows, N, gz, sumB);
    product(bf16, 1, 0, N, N, rows, gz, N, hs + t0 * step, N, first, sumW, N);
    product(bf16 && D > 1, 1, 0, N, D, rows, gz, N, xs + t0 * B * D, D, first, sumU, D);
    if (gxs != NULL) product(bf16 && D > 1, 0, 0, rows, D, N, gz, N, U, D, 0.0f, gxs + t0 * B * D, D);
  }
  for (size_t i = 0; i < nW; i++) gW[i] += sumW[i];
  for (size_t i = 0; i < nU; i++) gU[i] += sumU[i];
  for (idx j = 0; j < N; j++) gb[j] = (float)(gb[j] + sumB[j]);
}

void k_roaf_cell_backward(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                          const float *W, const float *U, const float *hs, const float *as, float *ghs, float *gzs,
                          float *gW, float *gU, float *gb, float *gh0, float *gxs, int lastStepOnly) {
  if (T <= 0 || N <= 0 || B <= 0) return;  // no rows: every gradient is unchanged
  int dense = f->kind == FILTER_DENSE && alpha != 0.0f;
  int32_t inverse[1024];
  float inverseSigns[1024];
  roaf_filter ft = filter_with_inverse(f, inverse, inverseSigns);  // Oᵀ, every step
  f = &ft;
  cell_task c = {
      .T = T,
      .B = B,
      .N = N,
      .alpha = alpha,
      .beta = beta,
      .f = f,
      .dense = dense,
      .as = (float *)as,
      .ghs = ghs,
      .gzs = gzs,
      .gh0 = gh0,
      .lastStepOnly = lastStepOnly,
      .backward = {.N = N, .alpha = alpha, .beta = beta, .identity = f->kind == FILTER_IDENTITY && alpha != 0.0f}};
  roaf_pack_backward(&c.backward, dense ? f->matrix : NULL, W,
                     roaf_scratch(0, SCRATCH_SHARED_B, roaf_backward_packed_size(N)));
  cell_sweep sweep = {cell_backward_step, &c, &c.s0, (double)B * (double)N * (double)N * (dense ? 2 : 1)};
  backward_in_chunks(&sweep, 0, T, B, D, N, xs, U, hs, gzs, gW, gU, gb, gxs);
}

// ---- the cell with bf16 products (--precision bf16, docs/precision.md) ----
//
// The same sweeps with the arithmetic of `withBf16Products`: W h and the backward's gz W on bf16 operands with
// float32 sums, everything else float32. W is rounded and packed into bf16 pair panels once per call (it changes
// only at the optimiser step); each step rounds its B x N rows of h (or gz) into pairs, B·N conversions against
// B·N² multiply-adds, and runs bf16_tile (vdpbf16ps where the CPU has AVX512_BF16). A dense filter's O h stays
// a float32 product (an orthogonal matrix rounded to bf16 is no longer orthogonal: docs/precision.md), on O
// packed once per call; permutation and identity filters are O(N) per row, as in float32. Each step combines its
// terms in the order of BackendBase's cell on bf16 products (tanh(acc + drive), then beta a, then + alpha O h;
// target + acc, then + alpha Oᵀ gh), so the two differ only in the order of float32 sums.

typedef struct {
  idx T, B, N;
  bf16_rows_args rows;  // what every step's tiles share: W and O packed once per call, the filter, the drive
  const float *xs;      // forward with D = 1: the inputs, rounded per row in the tiles
  float *hs, *as, *ghs, *gzs, *gh0;
  int lastStepOnly;
  idx s0;  // backward: the first step of this chunk of the sweep (its step s is step s0 + s of the whole)
} bf16_cell_task;

/** Step t of the bf16 forward for rows [r0, r1): h_t from h_{t-1}. */
static void bf16_forward_step(void *p, void *state, int tid, idx t, idx r0, idx r1, idx lo, idx hi) {
  (void)state;
  (void)lo;
  (void)hi;
  const bf16_cell_task *c = p;
  idx N = c->N, step = c->B * N;
  bf16_rows_args f = c->rows;
  if (f.ur != NULL) f.xd = c->xs + t * c->B + r0;
  if (t + 1 < c->T) {  // the next step's a and h rows
    f.next[0] = c->as + (t + 1) * step + r0 * N;
    f.next[1] = c->hs + (t + 2) * step + r0 * N;
  }
  bf16_forward_rows(tid, &f, r1 - r0, c->hs + t * step + r0 * N, c->as + t * step + r0 * N,
                    c->hs + (t + 1) * step + r0 * N);
}

/**
 * Packs a bf16 call's shared operands into thread 0's shared scratch: W rounded (op(B) = Wᵀ when trans), then
 * for a dense filter O in float32 (op(B) = Oᵀ when trans); returns `extra` floats after them.
 */
static float *bf16_cell_shared(bf16_cell_task *c, packed_b *ob, const float *W, int trans, idx extra) {
  idx N = c->N;
  size_t wsize = (size_t)round_up((idx)bf16_packed_b_size(N, N), 16);
  size_t osize = c->rows.dense ? (size_t)round_up((idx)packed_b_size(N, N), 16) : 0;
  float *shared = roaf_scratch(0, SCRATCH_SHARED_B, wsize + osize + (size_t)extra);
  bf16_pack_b_full(W, N, trans, N, N, (uint32_t *)shared);
  c->rows.wp = (const uint32_t *)shared;
  if (c->rows.dense) {
    b_operand o = {.p = c->rows.f->matrix, .ld = N, .trans = trans, .scale = 1.0f};
    *ob = pack_b_full(&o, N, N, shared + wsize);
    c->rows.ob = ob;
  }
  return shared + wsize + osize;
}

void k_roaf_cell_forward_bf16(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                              const float *xs, const float *W, const float *U, const float *b, float *hs, float *as) {
  if (T <= 0 || B <= 0 || N <= 0) return;
  bf16_cell_task c = {.T = T, .B = B, .N = N, .rows = bf16_rows_setup(N, alpha, beta, f), .hs = hs, .as = as};
  if (D != 1) {  // the input drive of every step at once, as BackendBase does: as = xs Uᵀ (bf16) + b
    k_gemm_bf16(0, 1, T * B, N, D, 1.0f, xs, D, U, D, 0.0f, as, N);
    k_add_row_vector(T * B, N, as, b);
  }
  packed_b ob;
  float *ur = bf16_cell_shared(&c, &ob, W, 1, D == 1 ? N : 0);
  if (D == 1) {  // x_t u is one exact product per element: the tiles form the drive
    for (idx j = 0; j < N; j++) ur[j] = bf16_round(U[j]);
    c.xs = xs;
    c.rows.ur = ur;
    c.rows.bias = b;
  }
  roaf_row_sweep(bf16_forward_step, &c, sizeof(sweep_local), T, B, MR,
                 (double)T * (double)B * (double)N * (double)N * (c.rows.dense ? 2 : 1));
}

/** Step s of the bf16 backward through time for rows [r0, r1), t = T-1-s (cell_backward_step's bookkeeping). */
static void bf16_backward_step(void *p, void *state, int tid, idx chunkStep, idx r0, idx r1, idx lo, idx hi) {
  (void)state;
  (void)lo;
  (void)hi;
  const bf16_cell_task *c = p;
  idx s = c->s0 + chunkStep, N = c->N, step = c->B * N, rows = r1 - r0, t = c->T - 1 - s;
  float *ping = c->lastStepOnly ? c->ghs : NULL;
  const float *gh = (s == 0 || ping == NULL ? c->ghs + t * step : ping + ((s + 1) & 1) * step) + r0 * N;
  float *gz = c->gzs + t * step + r0 * N;
  if (s == 0) roaf_gz_rows(rows, N, c->rows.beta, gh, c->as + t * step + r0 * N, gz);
  float *target = t == 0 ? (c->gh0 != NULL ? c->gh0 + r0 * N : NULL)
                         : (ping == NULL ? c->ghs + (t - 1) * step : ping + (s & 1) * step) + r0 * N;
  if (target == NULL) return;
  bf16_rows_args f = c->rows;
  if (t > 1) {  // the rows the next step reads and writes
    f.next[0] = c->as + (t - 2) * step + r0 * N;
    f.next[1] = ping == NULL ? c->ghs + (t - 2) * step + r0 * N : NULL;
    f.next[2] = c->gzs + (t - 2) * step + r0 * N;
  }
  int accumulate = t > 0 && ping == NULL;  // add to the loss term of h_{t-1}
  bf16_backward_rows(tid, &f, rows, gh, gz, target, accumulate, t > 0 ? c->as + (t - 1) * step + r0 * N : NULL,
                     t > 0 ? c->gzs + (t - 1) * step + r0 * N : NULL);
}

void k_roaf_cell_backward_bf16(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                               const float *xs, const float *W, const float *U, const float *hs, const float *as,
                               float *ghs, float *gzs, float *gW, float *gU, float *gb, float *gh0, float *gxs,
                               int lastStepOnly) {
  if (T <= 0 || N <= 0 || B <= 0) return;  // no rows: every gradient is unchanged
  int32_t inverse[1024];
  float inverseSigns[1024];
  roaf_filter ft = filter_with_inverse(f, inverse, inverseSigns);  // Oᵀ, every step
  bf16_cell_task c = {.T = T,
                      .B = B,
                      .N = N,
                      .rows = bf16_rows_setup(N, alpha, beta, &ft),
                      .as = (float *)as,
                      .ghs = ghs,
                      .gzs = gzs,
                      .gh0 = gh0,
                      .lastStepOnly = lastStepOnly};
  packed_b ob;
  bf16_cell_shared(&c, &ob, W, 0, 0);
  cell_sweep sweep = {bf16_backward_step, &c, &c.s0, (double)B * (double)N * (double)N * (c.rows.dense ? 2 : 1)};
  backward_in_chunks(&sweep, 1, T, B, D, N, xs, U, hs, gzs, gW, gU, gb, gxs);
}
