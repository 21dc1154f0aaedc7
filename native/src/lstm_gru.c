// The LSTM and GRU cells over a whole sequence, forward and backward through time (PyTorch's gate orders:
// i, f, g, o and r, z, n). The recurrent weights are packed once per call and each step is one product
// against them plus the gates' elementwise work. Batch rows are independent in a recurrence, so a work queue
// hands out groups of batch rows and each thread runs the whole time loop on the groups it claims: no
// synchronisation per step at all. Weight gradients are one large product over all T·B rows afterwards.

#include "kernels_internal.h"

// ---- shared pieces ----

/**
 * Groups of batch rows in a sweep: more balance the load when a core is busy, fewer give larger products.
 * The grouping depends on B only (not on the threads available), so bias-gradient sums, accumulated per group
 * and added in group order, are the same bit for bit on any number of threads.
 */
#define SWEEP_CHUNKS 4

/** The plan of a sweep whose per-step product is B x cols x K, and the work queue of its batch rows. */
static roaf_plan sweep_setup(work_queue *q, idx T, idx B, idx cols, idx K) {
  queue_init(q, B, max_idx(MR, round_up((B + SWEEP_CHUNKS - 1) / SWEEP_CHUNKS, MR)));
  return roaf_parallel_plan(NULL, (double)T * (double)B * (double)cols * (double)K, B / MR);
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
  s.acc = (double *)roaf_scratch(0, slot, (size_t)(2 * s.groups * n + 2 * VL));
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

// ---- LSTM ----

typedef struct {
  idx T, B, D, N;
  int bf16;            // the products on bf16 operands (--precision bf16): pb16 instead of pb
  int hw;              // with bf16: bf16_tile runs vdpbf16ps
  packed_b pb;         // the recurrent weights packed in float32
  bf16_packed_b pb16;  // or rounded and packed into bf16 pairs
  const float *hs_in, *cs_in, *gates_in, *hn_in, *bh;
  const float *xs, *Wx, *bx;  // forward: the inputs, their weights (G x D) and bias, for each step's drive
  float *hs, *cs, *gates, *ghs, *gGates, *gHn, *hn;
  work_queue q;
  bias_sums sums, sums2;
  int lastStepOnly;  // backward: ghs holds a loss term at the last step only; the others are overwritten
} rnn_task;

/**
 * Packs the recurrent weights Wh (G x N, row-major) once per call into thread 0's shared scratch: op(B) = Whᵀ
 * (K = N) when trans, else Wh (K = G); in float32, or rounded to bf16 pairs for the bf16 kernels.
 */
static void pack_recurrent(rnn_task *c, const float *Wh, int trans, idx K, idx cols) {
  if (c->bf16) {
    c->hw = k_bf16_hardware();
    uint32_t *dst = (uint32_t *)roaf_scratch(0, SCRATCH_SHARED_B, bf16_packed_b_size(K, cols));
    c->pb16 = bf16_pack_b(Wh, c->N, trans, K, cols, dst);
    return;
  }
  b_operand bw = {.p = Wh, .ld = c->N, .trans = trans, .scale = 1.0f};
  c->pb = pack_b_full(&bw, K, cols, roaf_scratch(0, SCRATCH_SHARED_B, packed_b_size(K, cols)));
}

/**
 * The input drive of step t for rows [r0, r0 + rows): g = x_t Wxᵀ + b, where the step's product then adds
 * h Whᵀ. The same sums per element as one product over all T·B rows followed by k_add_row_vector (a row's
 * sums do not depend on the rows around it), but g is written while it is in cache: at T·B = 500,000 rows
 * and G = 512 (the LSTM on the adding problem) the gates are 1 GB, which the whole-sequence product wrote,
 * the bias pass read and wrote, and the sweep read again.
 */
static void step_drive(const rnn_task *c, int tid, idx t, idx r0, idx rows, idx G, float *g) {
  idx D = c->D;
  product_on_thread(c->bf16, tid, 0, 1, rows, G, D, c->xs + (t * c->B + r0) * D, D, c->Wx, D, 0.0f, g, G);
  k_add_row_vector(rows, G, g, c->bx);
}

/** One step's product C (rows, cols) = A (rows, K) op(B) + beta C on the packed recurrent weights. */
static void step_product(const rnn_task *c, int tid, const float *A, idx lda, idx rows, float beta, float *C, idx ldc) {
  if (c->bf16) {
    gemm_bf16_packed(tid, c->hw, A, lda, rows, &c->pb16, 1.0f, beta, C, ldc);
    return;
  }
  a_operand a = {.p = A, .ld = lda};
  gemm_packed(tid, &a, rows, &c->pb, 1.0f, beta, C, ldc);
}

static void lstm_forward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 4 * N, rows = r1 - r0;
  for (idx t = 0; t < c->T; t++) {
    const float *hPrev = c->hs + (t * c->B + r0) * N;
    const float *cPrev = c->cs + (t * c->B + r0) * N;
    float *hNext = c->hs + ((t + 1) * c->B + r0) * N;
    float *cNext = c->cs + ((t + 1) * c->B + r0) * N;
    float *g = c->gates + (t * c->B + r0) * G;
    step_drive(c, tid, t, r0, rows, G, g);
    step_product(c, tid, hPrev, N, rows, 1.0f, g, G);  // gates = drive + h Whᵀ
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
  (void)nt;
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) lstm_forward_rows(c, tid, r0, r1);
}

static void lstm_forward(int bf16, idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                         const float *b, float *hs, float *cs, float *gates) {
  idx G = 4 * N;
  rnn_task c = {
      .T = T, .B = B, .D = D, .N = N, .bf16 = bf16, .hs = hs, .cs = cs, .gates = gates, .xs = xs, .Wx = Wx, .bx = b};
  pack_recurrent(&c, Wh, 1, N, G);
  roaf_plan plan = sweep_setup(&c.q, T, B, G, N);
  roaf_parallel_run(&plan, lstm_forward_run, &c);
}

static void lstm_backward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 4 * N, rows = r1 - r0;
  float *gc = roaf_scratch(tid, SCRATCH_WORK, (size_t)(rows * N + G + VL));  // ∂loss/∂c_{t+1}, carried back
  float *tmp = gc + rows * N;
  memset(gc, 0, float_bytes(rows * N));
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
      step_product(c, tid, gg, G, rows, c->lastStepOnly ? 0.0f : 1.0f, c->ghs + ((t - 1) * c->B + r0) * N, N);
    }
  }
}

static void lstm_backward_run(void *p, int tid, int nt) {
  (void)nt;
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) lstm_backward_rows(c, tid, r0, r1);
}

static void lstm_backward(int bf16, idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                          const float *hs, const float *cs, const float *gates, float *ghs, float *gGates, float *gWx,
                          float *gWh, float *gb, float *gxs, int lastStepOnly) {
  idx G = 4 * N;
  rnn_task c = {.T = T,
                .B = B,
                .D = D,
                .N = N,
                .bf16 = bf16,
                .cs_in = cs,
                .gates_in = gates,
                .ghs = ghs,
                .gGates = gGates,
                .lastStepOnly = lastStepOnly};
  pack_recurrent(&c, Wh, 0, G, N);
  roaf_plan plan = sweep_setup(&c.q, T, B, N, G);
  c.sums = bias_sums_new(SCRATCH_WORK2, &c.q, G);
  roaf_parallel_run(&plan, lstm_backward_run, &c);
  add_bias_sums(&c.sums, gb);
  product(bf16, 1, 0, G, N, T * B, gGates, G, hs, N, 1.0f, gWh, N);
  product(bf16 && D > 1, 1, 0, G, D, T * B, gGates, G, xs, D, 1.0f, gWx, D);
  if (gxs != NULL) product(bf16 && D > 1, 0, 0, T * B, D, G, gGates, G, Wx, D, 0.0f, gxs, D);
}

// ---- GRU ----

static void gru_forward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 3 * N, rows = r1 - r0;
  float *P = roaf_scratch(tid, SCRATCH_WORK, (size_t)(rows * G));
  const float *bh = c->bh;
  for (idx t = 0; t < c->T; t++) {
    const float *hPrev = c->hs + (t * c->B + r0) * N;
    float *hNext = c->hs + ((t + 1) * c->B + r0) * N;
    float *g = c->gates + (t * c->B + r0) * G;
    float *hn = c->hn + (t * c->B + r0) * N;
    step_drive(c, tid, t, r0, rows, G, g);
    step_product(c, tid, hPrev, N, rows, 0.0f, P, G);
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
  (void)nt;
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) gru_forward_rows(c, tid, r0, r1);
}

static void gru_forward(int bf16, idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                        const float *bx, const float *bh, float *hs, float *gates, float *hn) {
  idx G = 3 * N;
  rnn_task c = {.T = T,
                .B = B,
                .D = D,
                .N = N,
                .bf16 = bf16,
                .hs = hs,
                .gates = gates,
                .hn = hn,
                .bh = bh,
                .xs = xs,
                .Wx = Wx,
                .bx = bx};
  pack_recurrent(&c, Wh, 1, N, G);
  roaf_plan plan = sweep_setup(&c.q, T, B, G, N);
  roaf_parallel_run(&plan, gru_forward_run, &c);
}

static void gru_backward_rows(rnn_task *c, int tid, idx r0, idx r1) {
  idx N = c->N, G = 3 * N, rows = r1 - r0;
  float *rec = roaf_scratch(tid, SCRATCH_WORK, (size_t)(rows * G + G + VL));  // [gr, gz, gn ⊙ r] of one step
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
      step_product(c, tid, rec, G, rows, 1.0f, ghPrev, N);
    }
  }
}

static void gru_backward_run(void *p, int tid, int nt) {
  (void)nt;
  rnn_task *c = p;
  idx r0, r1;
  while (queue_claim(&c->q, &r0, &r1)) gru_backward_rows(c, tid, r0, r1);
}

static void gru_backward(int bf16, idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                         const float *hs, const float *gates, const float *hn, float *ghs, float *gGates, float *gHn,
                         float *gWx, float *gWh, float *gbx, float *gbh, float *gxs, int lastStepOnly) {
  idx G = 3 * N;
  rnn_task c = {.T = T,
                .B = B,
                .D = D,
                .N = N,
                .bf16 = bf16,
                .hs_in = hs,
                .gates_in = gates,
                .hn_in = hn,
                .ghs = ghs,
                .gGates = gGates,
                .gHn = gHn,
                .lastStepOnly = lastStepOnly};
  pack_recurrent(&c, Wh, 0, G, N);
  roaf_plan plan = sweep_setup(&c.q, T, B, N, G);
  c.sums = bias_sums_new(SCRATCH_WORK2, &c.q, G);
  c.sums2 = bias_sums_new(SCRATCH_PARTIAL, &c.q, G);
  roaf_parallel_run(&plan, gru_backward_run, &c);
  add_bias_sums(&c.sums, gbx);
  add_bias_sums(&c.sums2, gbh);
  // Recurrent-side pre-activation gradients [gr, gz | gn ⊙ r]: the first 2N columns of gGates, then gHn.
  product(bf16, 1, 0, 2 * N, N, T * B, gGates, G, hs, N, 1.0f, gWh, N);
  product(bf16, 1, 0, N, N, T * B, gHn, N, hs, N, 1.0f, gWh + 2 * N * N, N);
  product(bf16 && D > 1, 1, 0, G, D, T * B, gGates, G, xs, D, 1.0f, gWx, D);
  if (gxs != NULL) product(bf16 && D > 1, 0, 0, T * B, D, G, gGates, G, Wx, D, 0.0f, gxs, D);
}

// ---- the kernels: float32, and on bf16 products (--precision bf16, docs/precision.md) ----

void k_lstm_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *b,
                    float *hs, float *cs, float *gates) {
  lstm_forward(0, T, B, D, N, xs, Wx, Wh, b, hs, cs, gates);
}
void k_lstm_forward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *b,
                         float *hs, float *cs, float *gates) {
  lstm_forward(1, T, B, D, N, xs, Wx, Wh, b, hs, cs, gates);
}
void k_lstm_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                     const float *cs, const float *gates, float *ghs, float *gGates, float *gWx, float *gWh, float *gb,
                     float *gxs, int lastStepOnly) {
  lstm_backward(0, T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly);
}
void k_lstm_backward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                          const float *hs, const float *cs, const float *gates, float *ghs, float *gGates, float *gWx,
                          float *gWh, float *gb, float *gxs, int lastStepOnly) {
  lstm_backward(1, T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly);
}
void k_gru_forward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *bx,
                   const float *bh, float *hs, float *gates, float *hn) {
  gru_forward(0, T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn);
}
void k_gru_forward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *bx,
                        const float *bh, float *hs, float *gates, float *hn) {
  gru_forward(1, T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn);
}
void k_gru_backward(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                    const float *gates, const float *hn, float *ghs, float *gGates, float *gHn, float *gWx, float *gWh,
                    float *gbx, float *gbh, float *gxs, int lastStepOnly) {
  gru_backward(0, T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs, lastStepOnly);
}
void k_gru_backward_bf16(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                         const float *gates, const float *hn, float *ghs, float *gGates, float *gHn, float *gWx,
                         float *gWh, float *gbx, float *gbh, float *gxs, int lastStepOnly) {
  gru_backward(1, T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs, lastStepOnly);
}
