// A standalone driver for the native kernels and the thread pool, without Node: what the sanitizer builds run
// (scripts/sanitize.sh), and how a change to native/ is shown to leave every result bit-identical.
//
// It runs every kernel of every instruction set the CPU has on shapes that reach the edge cases (partial
// tiles, masked tails, K-split products, matrix-vector products, sweeps whose rows are stolen), each on 1, 2,
// 3 and 4 threads with the parallel threshold at 0 (every task is split, whatever its size), resizing the pool
// between runs. It checks that
//   - the results are bit-identical on every thread count (the kernels promise it), and
//   - every instruction set agrees with the portable C path to a float32 tolerance (the Node suite,
//     test/backend-native.test.ts, checks every kernel against the float64 reference; this only catches a
//     path that computes something else entirely).
// Inputs come from a fixed seed and every buffer is allocated at its exact size, so an address sanitizer sees
// any read or write past an end.
//
//   stress [--checksums] [--isa NAME] [--repeat N]
//     --checksums  print "isa case checksum" for every case (an FNV-1a hash of its outputs); two builds
//                  whose lists are equal compute the same bits
//     --isa NAME   one instruction set only (portable, avx2, avx512)
//     --repeat N   run the whole list N times (default 1): more chances for a race to show
// Exit status 0 when every check passed, 1 otherwise (each failure is printed).

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roaf_native.h"

extern double roaf_min_parallel_work;

// ---- deterministic inputs, allocated at their exact size ----

static uint64_t rng_state;

static uint32_t next_u32(void) {  // xorshift64*
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * UINT64_C(2685821657736338717)) >> 32);
}

static float uniform(float scale) { return scale * (2.0f * (float)next_u32() / 4294967296.0f - 1.0f); }

static void *allocate(size_t bytes) {
  void *p = malloc(bytes > 0 ? bytes : 1);
  if (p == NULL) {
    fprintf(stderr, "stress: out of memory\n");
    exit(2);
  }
  return p;
}

/** The buffers a case allocated: freed after each run. */
static void *owned[64];
static int owned_count;

static void *own(void *p) {
  if (owned_count == 64) {
    fprintf(stderr, "stress: a case allocated more than 64 buffers\n");
    exit(2);
  }
  owned[owned_count++] = p;
  return p;
}

static void free_owned(void) {
  while (owned_count > 0) free(owned[--owned_count]);
}

static float *rnd(idx n, float scale) {
  float *p = own(allocate((size_t)n * sizeof(float)));
  for (idx i = 0; i < n; i++) p[i] = uniform(scale);
  return p;
}

static float *filled(idx n, float value) {
  float *p = own(allocate((size_t)n * sizeof(float)));
  for (idx i = 0; i < n; i++) p[i] = value;
  return p;
}

/** Values of tanh: what a forward pass saved as an activation. */
static float *activations(idx n) {
  float *p = rnd(n, 2.0f);
  for (idx i = 0; i < n; i++) p[i] = tanhf(p[i]);
  return p;
}

/** A filter of `kind` (0 dense, 1 permutation, 2 identity) and width n. */
static roaf_filter make_filter(int kind, idx n) {
  roaf_filter f = {.kind = kind, .n = (int)n};
  if (kind == FILTER_DENSE) f.matrix = rnd(n * n, 1.0f / sqrtf((float)n));
  if (kind == FILTER_PERMUTATION) {
    int32_t *perm = own(allocate((size_t)n * sizeof(int32_t)));
    float *signs = filled(n, 1.0f);
    for (idx i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (idx i = n - 1; i > 0; i--) {
      idx j = (idx)(next_u32() % (uint32_t)(i + 1));
      int32_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
      if (next_u32() & 1) signs[i] = -1.0f;
    }
    f.perm = perm;
    f.signs = signs;
  }
  return f;
}

// ---- what a run produced ----

typedef struct {
  int count;
  const char *names[16];
  void *data[16];
  size_t bytes[16];
  int floats[16];  // 1: an array of float (compared with a tolerance across instruction sets)
} result;

static void keep(result *r, const char *name, const void *p, size_t bytes, int floats) {
  if (r->count == 16) {
    fprintf(stderr, "stress: a case kept more than 16 outputs\n");
    exit(2);
  }
  void *copy = allocate(bytes);
  memcpy(copy, p, bytes);
  r->names[r->count] = name;
  r->data[r->count] = copy;
  r->bytes[r->count] = bytes;
  r->floats[r->count] = floats;
  r->count++;
}
static void keepf(result *r, const char *name, const float *p, idx n) {
  keep(r, name, p, (size_t)n * sizeof(float), 1);
}
static void keepd(result *r, const char *name, double x) { keep(r, name, &x, sizeof x, 0); }

static void result_free(result *r) {
  for (int i = 0; i < r->count; i++) free(r->data[i]);
  r->count = 0;
}

static uint64_t checksum(const result *r) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (int i = 0; i < r->count; i++) {
    const unsigned char *p = r->data[i];
    for (size_t j = 0; j < r->bytes[i]; j++) h = (h ^ p[j]) * UINT64_C(1099511628211);
  }
  return h;
}

// ---- the cases ----

/** One case: p[] are its sizes and switches, s[] its scalars. */
typedef struct stress_case stress_case;
typedef void (*case_fn)(const roaf_kernels *k, const stress_case *c, result *r);
struct stress_case {
  char name[128];
  case_fn run;
  idx p[8];
  float s[4];
};

static void run_gemm(const roaf_kernels *k, const stress_case *c, result *r) {
  idx M = c->p[0], N = c->p[1], K = c->p[2], transA = c->p[3], transB = c->p[4], pad = c->p[5], padC = c->p[6];
  idx lda = (transA ? M : K) + pad, ldb = (transB ? K : N) + pad, ldc = N + padC;
  float alpha = c->s[0], beta = c->s[1];
  float *A = rnd((transA ? K : M) * lda, 1.0f), *B = rnd((transB ? N : K) * ldb, 1.0f);
  float *C = beta == 0.0f ? filled(M * ldc, NAN) : rnd(M * ldc, 1.0f);
  if (c->p[7]) k->gemm_bf16((int)transA, (int)transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);  // bf16
  else k->gemm((int)transA, (int)transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  float *rows = filled(M * N, 0.0f);  // the product's rows without the padding between them
  for (idx i = 0; i < M; i++) memcpy(rows + i * N, C + i * ldc, (size_t)N * sizeof(float));
  keepf(r, "C", rows, M * N);
}

static void run_elementwise(const roaf_kernels *k, const stress_case *c, result *r) {
  idx n = c->p[0];
  float *x = rnd(n, 3.0f), *out = filled(n, NAN), *a = activations(n), *gy = rnd(n, 1.0f), *y = rnd(n, 1.0f);
  k->tanh(n, x, out);
  keepf(r, "tanh", out, n);
  k->tanh_backward(n, a, gy, out);
  keepf(r, "tanhBackward", out, n);
  keepd(r, "sumSquares", k->sum_squares(n, x));
  k->axpy(n, 0.61f, x, y);
  keepf(r, "axpy", y, n);
  k->scale(n, y, -0.37f);
  keepf(r, "scale", y, n);
  k->tanh(n, x, x);
  keepf(r, "tanh in place", x, n);
}

static void run_rows(const roaf_kernels *k, const stress_case *c, result *r) {
  idx rows = c->p[0], n = c->p[1];
  float *y = rnd(rows * n, 1.0f), *bias = rnd(n, 1.0f), *out = rnd(n, 1.0f);
  k->add_row_vector(rows, n, y, bias);
  keepf(r, "addRowVector", y, rows * n);
  k->sum_rows(rows, n, y, out);
  keepf(r, "sumRows", out, n);
}

static void run_filter(const roaf_kernels *k, const stress_case *c, result *r) {
  idx kind = c->p[0], B = c->p[1], N = c->p[2], transpose = c->p[3];
  float betaY = c->s[0];
  roaf_filter f = make_filter((int)kind, N);
  float *x = rnd(B * N, 1.0f), *y = betaY == 0.0f ? filled(B * N, NAN) : rnd(B * N, 1.0f);
  k->apply_filter(&f, (int)transpose, B, 0.8f, x, betaY, y);
  keepf(r, "y", y, B * N);
}

static void run_layer(const roaf_kernels *k, const stress_case *c, result *r) {
  idx kind = c->p[0], B = c->p[1], N = c->p[2], withGx = c->p[3];
  float alpha = c->s[0], beta = c->s[1];
  roaf_filter f = make_filter((int)kind, N);
  float *x = rnd(B * N, 1.0f), *W = rnd(N * N, 1.0f / sqrtf((float)N)), *b = rnd(N, 0.1f);
  float *a = filled(B * N, NAN), *y = filled(B * N, NAN);
  k->roaf_layer_forward(B, N, alpha, beta, &f, x, W, b, a, y);
  keepf(r, "a", a, B * N);
  keepf(r, "y", y, B * N);
  float *gy = rnd(B * N, 1.0f), *gx = withGx ? filled(B * N, NAN) : NULL, *gW = rnd(N * N, 1.0f), *gb = rnd(N, 1.0f);
  float *gz = filled(B * N, NAN);
  k->roaf_layer_backward(B, N, alpha, beta, &f, x, a, W, gy, gx, gW, gb, gz);
  if (gx != NULL) keepf(r, "gx", gx, B * N);
  keepf(r, "gW", gW, N * N);
  keepf(r, "gb", gb, N);
  keepf(r, "gz", gz, B * N);
}

static void run_mlp(const roaf_kernels *k, const stress_case *c, result *r) {
  idx kind = c->p[0], L = c->p[1], B = c->p[2], N = c->p[3], shared = c->p[4], squares = c->p[5];
  int bf16 = c->p[7] != 0;  // the stack on bf16 products (roaf_mlp.c)
  float alpha = c->s[0], beta = c->s[1];
  roaf_filter *filters = own(allocate((size_t)L * sizeof(roaf_filter)));
  for (idx l = 0; l < L; l++) filters[l] = shared && l > 0 ? filters[0] : make_filter((int)kind, N);
  float *Ws = rnd(L * N * N, 1.0f / sqrtf((float)N)), *bs = rnd(L * N, 0.1f);
  float *xs = filled((L + 1) * B * N, NAN), *as = filled(L * B * N, NAN);
  for (idx i = 0; i < B * N; i++) xs[i] = uniform(1.0f);
  if (bf16) k->roaf_mlp_forward_bf16(L, B, N, alpha, beta, filters, Ws, bs, xs, as);
  else k->roaf_mlp_forward(L, B, N, alpha, beta, filters, Ws, bs, xs, as);
  keepf(r, "xs", xs, (L + 1) * B * N);
  keepf(r, "as", as, L * B * N);
  float *gy = rnd(B * N, 1.0f), *gWs = rnd(L * N * N, 1.0f), *gbs = rnd(L * N, 1.0f);
  double *gradSquares = squares ? own(allocate((size_t)(L + 1) * sizeof(double))) : NULL;
  if (bf16) k->roaf_mlp_backward_bf16(L, B, N, alpha, beta, filters, Ws, xs, as, gy, gWs, gbs, gradSquares);
  else k->roaf_mlp_backward(L, B, N, alpha, beta, filters, Ws, xs, as, gy, gWs, gbs, gradSquares);
  keepf(r, "gy", gy, B * N);
  keepf(r, "gWs", gWs, L * N * N);
  keepf(r, "gbs", gbs, L * N);
  if (gradSquares != NULL) keep(r, "gradSquares", gradSquares, (size_t)(L + 1) * sizeof(double), 0);
}

/** ∂loss/∂h_t for T steps: at every step, or (lastStepOnly) at the last only, NaN before it. */
static float *loss_gradients(idx T, idx B, idx N, int lastStepOnly) {
  if (!lastStepOnly) return rnd(T * B * N, 0.1f);
  float *g = filled(T * B * N, NAN);
  for (idx i = (T - 1) * B * N; i < T * B * N; i++) g[i] = uniform(0.1f);
  return g;
}

static void run_cell(const roaf_kernels *k, const stress_case *c, result *r) {
  idx kind = c->p[0], T = c->p[1], B = c->p[2], D = c->p[3], N = c->p[4], optional = c->p[5], last = c->p[6];
  int bf16 = c->p[7] != 0;  // the cell on bf16 products (roaf_cell.c)
  float alpha = c->s[0], beta = c->s[1];
  roaf_filter f = make_filter((int)kind, N);
  float *xs = rnd(T * B * D, 1.0f), *W = rnd(N * N, 1.0f / sqrtf((float)N)), *U = rnd(N * D, 1.0f);
  float *b = rnd(N, 0.1f), *hs = filled((T + 1) * B * N, 0.0f), *as = filled(T * B * N, NAN);
  for (idx i = 0; i < B * N; i++) hs[i] = uniform(0.5f);
  if (bf16) k->roaf_cell_forward_bf16(T, B, D, N, alpha, beta, &f, xs, W, U, b, hs, as);
  else k->roaf_cell_forward(T, B, D, N, alpha, beta, &f, xs, W, U, b, hs, as);
  keepf(r, "hs", hs, (T + 1) * B * N);
  keepf(r, "as", as, T * B * N);
  float *ghs = loss_gradients(T, B, N, (int)last), *gzs = filled(T * B * N, 0.0f), *gW = rnd(N * N, 1.0f);
  float *gU = rnd(N * D, 1.0f), *gb = rnd(N, 1.0f);
  float *gh0 = optional ? filled(B * N, NAN) : NULL, *gxs = optional ? filled(T * B * D, NAN) : NULL;
  if (bf16)
    k->roaf_cell_backward_bf16(T, B, D, N, alpha, beta, &f, xs, W, U, hs, as, ghs, gzs, gW, gU, gb, gh0, gxs,
                               (int)last);
  else k->roaf_cell_backward(T, B, D, N, alpha, beta, &f, xs, W, U, hs, as, ghs, gzs, gW, gU, gb, gh0, gxs, (int)last);
  keepf(r, "gzs", gzs, T * B * N);
  keepf(r, "gW", gW, N * N);
  keepf(r, "gU", gU, N * D);
  keepf(r, "gb", gb, N);
  if (optional) {
    keepf(r, "gh0", gh0, B * N);
    keepf(r, "gxs", gxs, T * B * D);
  }
  if (!last) keepf(r, "ghs", ghs, T * B * N);  // with lastStepOnly its contents are unspecified on return
}

static void run_lstm(const roaf_kernels *k, const stress_case *c, result *r) {
  idx T = c->p[0], B = c->p[1], D = c->p[2], N = c->p[3], withGxs = c->p[4], last = c->p[5], G = 4 * N;
  float scale = 1.0f / sqrtf((float)N);
  float *xs = rnd(T * B * D, 1.0f), *Wx = rnd(G * D, scale), *Wh = rnd(G * N, scale), *b = rnd(G, 0.1f);
  float *hs = filled((T + 1) * B * N, 0.0f), *cs = filled((T + 1) * B * N, 0.0f), *gates = filled(T * B * G, NAN);
  for (idx i = 0; i < B * N; i++) {
    hs[i] = uniform(0.5f);
    cs[i] = uniform(0.5f);
  }
  k->lstm_forward(T, B, D, N, xs, Wx, Wh, b, hs, cs, gates);
  keepf(r, "hs", hs, (T + 1) * B * N);
  keepf(r, "cs", cs, (T + 1) * B * N);
  keepf(r, "gates", gates, T * B * G);
  float *ghs = loss_gradients(T, B, N, (int)last), *gGates = filled(T * B * G, NAN), *gWx = rnd(G * D, 1.0f);
  float *gWh = rnd(G * N, 1.0f), *gb = rnd(G, 1.0f), *gxs = withGxs ? filled(T * B * D, NAN) : NULL;
  k->lstm_backward(T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, (int)last);
  keepf(r, "gGates", gGates, T * B * G);
  keepf(r, "gWx", gWx, G * D);
  keepf(r, "gWh", gWh, G * N);
  keepf(r, "gb", gb, G);
  if (gxs != NULL) keepf(r, "gxs", gxs, T * B * D);
}

static void run_gru(const roaf_kernels *k, const stress_case *c, result *r) {
  idx T = c->p[0], B = c->p[1], D = c->p[2], N = c->p[3], withGxs = c->p[4], last = c->p[5], G = 3 * N;
  float scale = 1.0f / sqrtf((float)N);
  float *xs = rnd(T * B * D, 1.0f), *Wx = rnd(G * D, scale), *Wh = rnd(G * N, scale), *bx = rnd(G, 0.1f);
  float *bh = rnd(G, 0.1f), *hs = filled((T + 1) * B * N, 0.0f), *gates = filled(T * B * G, NAN);
  float *hn = filled(T * B * N, NAN);
  for (idx i = 0; i < B * N; i++) hs[i] = uniform(0.5f);
  k->gru_forward(T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn);
  keepf(r, "hs", hs, (T + 1) * B * N);
  keepf(r, "gates", gates, T * B * G);
  keepf(r, "hn", hn, T * B * N);
  float *ghs = loss_gradients(T, B, N, (int)last), *gGates = filled(T * B * G, NAN), *gHn = filled(T * B * N, NAN);
  float *gWx = rnd(G * D, 1.0f), *gWh = rnd(G * N, 1.0f), *gbx = rnd(G, 1.0f), *gbh = rnd(G, 1.0f);
  float *gxs = withGxs ? filled(T * B * D, NAN) : NULL;
  k->gru_backward(T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs, (int)last);
  keepf(r, "gGates", gGates, T * B * G);
  keepf(r, "gHn", gHn, T * B * N);
  keepf(r, "gWx", gWx, G * D);
  keepf(r, "gWh", gWh, G * N);
  keepf(r, "gbx", gbx, G);
  keepf(r, "gbh", gbh, G);
  if (gxs != NULL) keepf(r, "gxs", gxs, T * B * D);
}

static void run_losses(const roaf_kernels *k, const stress_case *c, result *r) {
  idx B = c->p[0], K = c->p[1], withGrad = c->p[2];
  float *logits = rnd(B * K, 3.0f), *grad = withGrad ? filled(B * K, NAN) : NULL;
  int32_t *labels = own(allocate((size_t)B * sizeof(int32_t)));
  uint8_t *correct = own(allocate((size_t)B));
  for (idx i = 0; i < B; i++) labels[i] = (int32_t)(next_u32() % (uint32_t)K);
  keepd(r, "softmaxCrossEntropy", k->softmax_cross_entropy(B, K, logits, labels, 1.0f / (float)B, grad, correct));
  keep(r, "correct", correct, (size_t)B, 0);
  if (grad != NULL) keepf(r, "grad", grad, B * K);
  float *target = rnd(B * K, 1.0f);
  keepd(r, "squaredError", k->squared_error(B, K, logits, target, 0.5f / (float)B, grad));
  if (grad != NULL) keepf(r, "grad", grad, B * K);
}

static void run_optimisers(const roaf_kernels *k, const stress_case *c, result *r) {
  idx n = c->p[0];
  float *p = rnd(n, 1.0f), *g = rnd(n, 1.0f), *m = rnd(n, 0.1f), *v = rnd(n, 0.01f);
  for (idx i = 0; i < n; i++) v[i] = fabsf(v[i]);
  k->adam_update(n, p, g, m, v, 1e-3f, 0.9, 0.999, 1e-8f, c->s[0], (double)c->p[1]);
  keepf(r, "p", p, n);
  keepf(r, "m", m, n);
  keepf(r, "v", v, n);
  k->sgd_update(n, p, g, v, 0.05f, 0.9f);
  keepf(r, "p", p, n);
  keepf(r, "velocity", v, n);
}

/** Doubles uniform in (-scale, scale), plus `diagonal` on the diagonal of each n x n block. */
static double *rnd_doubles(idx count, idx n, double scale, double diagonal) {
  double *p = own(allocate((size_t)count * sizeof(double)));
  for (idx i = 0; i < count; i++)
    p[i] = (double)uniform((float)scale) + ((i % (n * n)) % (n + 1) == 0 ? diagonal : 0.0);
  return p;
}

static void run_spectrum(const roaf_kernels *k, const stress_case *c, result *r) {
  idx n = c->p[0], factors = c->p[1];
  double *J = rnd_doubles(n * n, n, 0.0, 0.0), *reflectors = rnd_doubles(n * n, n, 1.0, 0.0);
  double *tau = rnd_doubles(n, n, 1.0, 0.0), *sums = rnd_doubles(n, n, 0.0, 0.0);
  double *m = rnd_doubles(n * n, n, 1.0, 0.0), *s = rnd_doubles(n, n, 1.0, 0.0);
  double *work = rnd_doubles(3 * n * n + n, n, 1.0, 0.0);
  for (idx l = 0; l < factors; l++) {
    double *factor = rnd_doubles(n * n, n, 2.0 / sqrt((double)n), 0.5);
    memcpy(J, factor, (size_t)(n * n) * sizeof(double));
    k->product_spectrum_push(n, l == 0, J, reflectors, tau, sums, m, s, work);
  }
  // Doubles, so not compared across instruction sets (the Node suite does that against the reference).
  keep(r, "lyapunovSums", sums, (size_t)n * sizeof(double), 0);
  keep(r, "m", m, (size_t)(n * n) * sizeof(double), 0);
  keep(r, "s", s, (size_t)n * sizeof(double), 0);
}

static stress_case cases[1024];
static int case_count;

static stress_case *add(case_fn run, const char *fmt, idx p0, idx p1, idx p2, idx p3, idx p4, idx p5, idx p6) {
  if (case_count == (int)(sizeof cases / sizeof cases[0])) {
    fprintf(stderr, "stress: too many cases\n");
    exit(2);
  }
  stress_case *c = &cases[case_count++];
  memset(c, 0, sizeof *c);
  c->run = run;
  idx p[7] = {p0, p1, p2, p3, p4, p5, p6};
  memcpy(c->p, p, sizeof p);
  snprintf(c->name, sizeof c->name, fmt, (long)p0, (long)p1, (long)p2, (long)p3, (long)p4, (long)p5, (long)p6);
  return c;
}

static void build_cases(void) {
  static const idx gemms[][3] = {{1, 1, 1},      {7, 33, 257}, {257, 7, 33},  {33, 257, 7},   {1, 257, 33},
                                 {257, 1, 33},   {33, 257, 1}, {64, 96, 300}, {130, 70, 513}, {200, 200, 200},
                                 {40, 24, 1500}, {7, 1, 2000}, {5000, 1, 3},  {3, 4200, 1}};
  int variant = 0;
  for (size_t s = 0; s < sizeof gemms / sizeof gemms[0]; s++)
    for (idx ta = 0; ta < 2; ta++)
      for (idx tb = 0; tb < 2; tb++) {
        variant++;
        stress_case *c = add(run_gemm, "gemm %ldx%ldx%ld transA=%ld transB=%ld pad=%ld padC=%ld", gemms[s][0],
                             gemms[s][1], gemms[s][2], ta, tb, variant % 2 ? 0 : 3, variant % 3 ? 0 : 5);
        c->s[0] = variant % 3 == 1 ? -0.7f : 1.0f;
        c->s[1] = variant % 4 == 0 ? 0.0f : 0.5f;
        if (s % 3 == 1) {  // the bf16 product (gemm_bf16.c) on every third shape
          stress_case *h = add(run_gemm, "gemmBf16 %ldx%ldx%ld transA=%ld transB=%ld pad=%ld padC=%ld", gemms[s][0],
                               gemms[s][1], gemms[s][2], ta, tb, variant % 2 ? 0 : 3, variant % 3 ? 0 : 5);
          h->s[0] = c->s[0];
          h->s[1] = c->s[1];
          h->p[7] = 1;
        }
      }
  static const idx lengths[] = {1, 7, 33, 1000, 100003};
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
    add(run_elementwise, "elementwise n=%ld", lengths[i], 0, 0, 0, 0, 0, 0);
  static const idx rows[][2] = {{1, 1}, {257, 33}, {7, 257}, {3000, 7}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    add(run_rows, "rows %ldx%ld", rows[i][0], rows[i][1], 0, 0, 0, 0, 0);
  static const float settings[][2] = {{1.0f, 0.1f}, {0.9f, 0.5f}, {0.0f, 1.0f}};
  for (idx kind = 0; kind < 3; kind++) {
    static const idx filterShapes[][2] = {{1, 1}, {7, 33}, {33, 64}};
    for (size_t s = 0; s < 3; s++)
      for (idx tr = 0; tr < 2; tr++)
        for (int b = 0; b < 2; b++)
          add(run_filter, "applyFilter kind=%ld B=%ld N=%ld transpose=%ld", kind, filterShapes[s][0],
              filterShapes[s][1], tr, 0, 0, 0)
              ->s[0] = b ? 0.5f : 0.0f;
    static const idx layerShapes[][2] = {{7, 33}, {33, 64}, {1, 7}, {70, 40}};
    for (size_t s = 0; s < 4; s++)
      for (size_t a = 0; a < 3; a++)
        for (idx gx = 0; gx < 2; gx++) {
          stress_case *c = add(run_layer, "roafLayer kind=%ld B=%ld N=%ld gx=%ld setting=%ld", kind, layerShapes[s][0],
                               layerShapes[s][1], gx, (idx)a, 0, 0);
          c->s[0] = settings[a][0];
          c->s[1] = settings[a][1];
        }
    static const idx stacks[][3] = {{1, 1, 1},    {3, 5, 7},   {17, 5, 33}, {3, 128, 64},
                                    {1, 128, 33}, {17, 1, 64}, {3, 1, 33},  {17, 128, 7}};
    for (size_t s = 0; s < 8; s++)
      for (idx shared = 0; shared < 2; shared++)
        for (idx a = 1; a < 3; a++) {
          stress_case *c = add(run_mlp, "roafMlp kind=%ld L=%ld B=%ld N=%ld shared=%ld squares=%ld setting=%ld", kind,
                               stacks[s][0], stacks[s][1], stacks[s][2], shared, (idx)((s + (size_t)a) % 2), a);
          c->s[0] = a == 1 ? 0.9f : 0.0f;
          c->s[1] = a == 1 ? 0.3f : 1.0f;
          if (shared == 0) {  // the bf16 stack on at most 3 layers (as the bf16 cell on 4 steps, see there)
            stress_case *h = add(run_mlp, "roafMlpBf16 kind=%ld L=%ld B=%ld N=%ld shared=%ld squares=%ld setting=%ld",
                                 kind, stacks[s][0] < 3 ? stacks[s][0] : 3, stacks[s][1], stacks[s][2], shared,
                                 (idx)((s + (size_t)a) % 2), a);
            h->s[0] = c->s[0];
            h->s[1] = c->s[1];
            h->p[7] = 1;
          }
        }
  }
  add(run_mlp, "roafMlp kind=%ld L=%ld B=%ld N=%ld shared=%ld squares=%ld vanishing", 0, 17, 5, 7, 0, 1, 0)->s[1] =
      0.05f;
  static const struct {
    idx kind, T, B, D, N;
    float alpha, beta;
  } cells[] = {{0, 20, 17, 1, 33, 1, 0.3f}, {0, 16, 40, 3, 64, 0.9f, 0.1f}, {1, 20, 17, 3, 33, 1, 0.3f},
               {2, 20, 9, 1, 7, 1, 0.3f},   {0, 20, 17, 2, 33, 0, 1},       {0, 3, 1, 1, 1, 1, 0.5f},
               {0, 2, 9, 1, 33, 1, 0.3f},   {1, 1, 9, 1, 7, 1, 0.3f},       {0, 30, 130, 1, 24, 1, 0.2f}};
  for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
    for (int v = 0; v < 3; v++) {
      stress_case *c = add(run_cell, "roafCell kind=%ld T=%ld B=%ld D=%ld N=%ld optional=%ld lastStepOnly=%ld",
                           cells[i].kind, cells[i].T, cells[i].B, cells[i].D, cells[i].N, v != 1, v == 2);
      c->s[0] = cells[i].alpha;
      c->s[1] = cells[i].beta;
      // The bf16 cell on at most 4 steps: a float32 difference between instruction sets (the dense filter's
      // product) may round a state to the other bf16 neighbour, and over many steps that grows past the check's
      // float32 tolerance; 4 steps reach every path (sweeps, ping-pong rows, the weight gradients).
      stress_case *h =
          add(run_cell, "roafCellBf16 kind=%ld T=%ld B=%ld D=%ld N=%ld optional=%ld lastStepOnly=%ld", cells[i].kind,
              cells[i].T < 4 ? cells[i].T : 4, cells[i].B, cells[i].D, cells[i].N, v != 1, v == 2);
      h->s[0] = cells[i].alpha;
      h->s[1] = cells[i].beta;
      h->p[7] = 1;
    }
  static const idx gated[][4] = {{12, 17, 3, 33}, {6, 40, 1, 16}, {2, 1, 1, 1}};
  for (size_t i = 0; i < 3; i++)
    for (int v = 0; v < 3; v++) {
      add(run_lstm, "lstm T=%ld B=%ld D=%ld N=%ld gxs=%ld lastStepOnly=%ld", gated[i][0], gated[i][1], gated[i][2],
          gated[i][3], v == 0, v == 2, 0);
      add(run_gru, "gru T=%ld B=%ld D=%ld N=%ld gxs=%ld lastStepOnly=%ld", gated[i][0], gated[i][1], gated[i][2],
          gated[i][3], v == 0, v == 2, 0);
    }
  static const idx losses[][2] = {{1, 1}, {33, 10}, {7, 257}};
  for (size_t i = 0; i < 3; i++)
    for (idx g = 0; g < 2; g++)
      add(run_losses, "losses B=%ld K=%ld grad=%ld", losses[i][0], losses[i][1], g, 0, 0, 0, 0);
  static const idx params[] = {1, 33, 1003, 100003};
  for (size_t i = 0; i < 4; i++)
    for (idx t = 1; t <= 7; t += 6)
      add(run_optimisers, "optimisers n=%ld t=%ld", params[i], t, 0, 0, 0, 0, 0)->s[0] = t == 7 ? 0.01f : 0.0f;
  static const idx spectra[] = {1, 9, 33, 70};
  for (size_t i = 0; i < 4; i++) add(run_spectrum, "spectrum n=%ld factors=%ld", spectra[i], 3, 0, 0, 0, 0, 0);
}

// ---- checks ----

/** Largest |a - b| over the largest |b| of the case's float outputs (1 when their shapes differ). */
static double relative_difference(const result *a, const result *b) {
  if (a->count != b->count) return 1.0;
  double diff = 0.0, scale = 1e-30;
  for (int i = 0; i < a->count; i++) {
    if (a->bytes[i] != b->bytes[i]) return 1.0;
    if (!a->floats[i]) continue;
    const float *x = a->data[i], *y = b->data[i];
    for (size_t j = 0; j < a->bytes[i] / sizeof(float); j++) {
      if (isnan(x[j]) != isnan(y[j])) return 1.0;
      if (isnan(x[j])) continue;
      diff = fmax(diff, fabs((double)x[j] - (double)y[j]));
      scale = fmax(scale, fabs((double)y[j]));
    }
  }
  return diff / scale;
}

static const roaf_kernels *kernels_named(const char *name) {
#if defined(ROAF_X86)
  if (strcmp(name, "avx512") == 0) return &roaf_kernels_avx512;
  if (strcmp(name, "avx2") == 0) return &roaf_kernels_avx2;
#endif
  if (strcmp(name, "portable") == 0) return &roaf_kernels_portable;
  return NULL;
}

static int supported(const char *name) {
  if (strcmp(name, "portable") == 0) return 1;
#if defined(ROAF_X86)
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (strcmp(name, "avx2") == 0) return avx2;
  if (strcmp(name, "avx512") == 0)
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
  return 0;
}

int main(int argc, char **argv) {
  int print = 0, repeat = 1;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--checksums") == 0) print = 1;
    else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: stress [--checksums] [--isa portable|avx2|avx512] [--repeat N]\n");
      return 2;
    }
  }
  const char *isas[3] = {"portable", "avx2", "avx512"};
  if (only != NULL && (kernels_named(only) == NULL || !supported(only))) {
    fprintf(stderr, "stress: instruction set '%s' is unknown or not supported by this CPU\n", only);
    return 2;
  }
  build_cases();
  roaf_min_parallel_work = 0;  // every task splits: the parallel paths run even on small shapes
  int failures = 0, checked = 0;
  for (int round = 0; round < repeat; round++) {
    for (int ci = 0; ci < case_count; ci++) {
      const stress_case *c = &cases[ci];
      result base = {0};  // the portable path on one thread
      for (int ii = 0; ii < 3; ii++) {
        const char *isa = isas[ii];
        const roaf_kernels *k = kernels_named(isa);
        if (k == NULL || !supported(isa) || (only != NULL && strcmp(only, isa) != 0)) continue;
        result first = {0};
        for (int threads = 1; threads <= 4; threads++) {
          roaf_pool_set_threads(threads);
          rng_state = UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)(ci + 1) * UINT64_C(0xD1B54A32D192ED03);
          result r = {0};
          c->run(k, c, &r);
          free_owned();
          checked++;
          if (threads == 1) {
            first = r;
            if (print && round == 0) printf("%s %s %016llx\n", isa, c->name, (unsigned long long)checksum(&r));
            continue;
          }
          if (checksum(&r) != checksum(&first)) {
            printf("FAIL %s %s: %d threads differ from 1 thread\n", isa, c->name, threads);
            failures++;
          }
          result_free(&r);
        }
        if (base.count == 0 && strcmp(isa, "portable") == 0) base = first;
        else {
          double d = base.count > 0 ? relative_difference(&first, &base) : 0.0;
          if (d > 2e-3) {
            printf("FAIL %s %s: differs from the portable path by %.3g (relative to the largest output)\n", isa,
                   c->name, d);
            failures++;
          }
          result_free(&first);
        }
      }
      result_free(&base);
    }
  }
  // The FMA peak measures time rather than computing a result: run it once per instruction set.
  for (int ii = 0; ii < 3; ii++) {
    const roaf_kernels *k = kernels_named(isas[ii]);
    if (k != NULL && supported(isas[ii]) && (only == NULL || strcmp(only, isas[ii]) == 0)) {
      double flops = k->fma_peak(0.01);
      if (!(flops > 1e6)) {
        printf("FAIL %s fmaPeak: %g FLOPS\n", isas[ii], flops);
        failures++;
      }
    }
  }
  roaf_pool_set_threads(1);
  fprintf(stderr, "stress: %d cases, %d runs, %d failures\n", case_count, checked, failures);
  return failures == 0 ? 0 : 1;
}
