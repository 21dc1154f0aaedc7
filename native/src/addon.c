// The N-API surface of roaf's native backend: argument checking, instruction-set dispatch and thread control.
//
// Every exported kernel takes the arguments of the Backend method of the same name (src/backend/backend.ts),
// with a filter passed as (kind, matrix-or-signs, perm). Sizes are checked here against the typed arrays'
// lengths, so a wrong call throws a RangeError instead of reading or writing out of bounds. The kernels run
// synchronously on the calling thread (thread 0 of the pool).

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif

#include "roaf_native.h"

static const roaf_kernels *kernels = &roaf_kernels_portable;

// ---- instruction sets ----

static int isa_supported(const char *name) {
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

static const roaf_kernels *isa_kernels(const char *name) {
#if defined(ROAF_X86)
  if (strcmp(name, "avx512") == 0) return &roaf_kernels_avx512;
  if (strcmp(name, "avx2") == 0) return &roaf_kernels_avx2;
#endif
  if (strcmp(name, "portable") == 0) return &roaf_kernels_portable;
  return NULL;
}

static const char *best_isa(void) {
  if (isa_supported("avx512")) return "avx512";
  if (isa_supported("avx2")) return "avx2";
  return "portable";
}

static int default_threads(void) {
  int n = 1;
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#else
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online > 0) n = (int)online;
#endif
  if (n < 1) n = 1;
  if (n > ROAF_MAX_THREADS) n = ROAF_MAX_THREADS;
  return n;
}

// ---- argument reading ----

typedef struct {
  napi_env env;
  napi_value argv[24];
  size_t argc;
  int failed;
} args_t;

static void fail(args_t *a, const char *fmt, const char *name, double x) {
  if (a->failed) return;
  char msg[256];
  snprintf(msg, sizeof msg, fmt, name, x);
  napi_throw_range_error(a->env, NULL, msg);
  a->failed = 1;
}

static int get_args(napi_env env, napi_callback_info info, args_t *a, size_t expected) {
  a->env = env;
  a->argc = 24;
  a->failed = 0;
  napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL);
  if (a->argc < expected) {
    char msg[96];
    snprintf(msg, sizeof msg, "roaf native: expected %zu arguments, got %zu", expected, a->argc);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

static double arg_num(args_t *a, size_t i, const char *name) {
  double x = 0;
  if (napi_get_value_double(a->env, a->argv[i], &x) != napi_ok) fail(a, "roaf native: %s must be a number", name, 0);
  return x;
}

/** A non-negative integer size (bounded so that products of sizes stay exact). */
static idx arg_size(args_t *a, size_t i, const char *name) {
  double x = arg_num(a, i, name);
  if (!(x >= 0 && x <= 4.0e12) || x != (double)(int64_t)x)
    fail(a, "roaf native: %s must be a non-negative integer, got %g", name, x);
  return a->failed ? 0 : (idx)x;
}

static int arg_bool(args_t *a, size_t i) {
  bool b = false;
  napi_valuetype t;
  napi_typeof(a->env, a->argv[i], &t);
  if (t == napi_boolean) napi_get_value_bool(a->env, a->argv[i], &b);
  return b ? 1 : 0;
}

static int is_null(args_t *a, size_t i) {
  napi_valuetype t;
  napi_typeof(a->env, a->argv[i], &t);
  return t == napi_null || t == napi_undefined;
}

/** The typed array `value` of the given type with at least `need` elements (see arg_array). */
static void *typed_array(args_t *a, napi_value value, const char *name, napi_typedarray_type want, idx need) {
  if (a->failed) return NULL;
  bool isTyped = false;
  napi_is_typedarray(a->env, value, &isTyped);
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (!isTyped || napi_get_typedarray_info(a->env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != want) {
    const char *kind = want == napi_float32_array   ? "a Float32Array"
                       : want == napi_float64_array ? "a Float64Array"
                       : want == napi_int32_array   ? "an Int32Array"
                                                    : "a Uint8Array";
    char msg[128];
    snprintf(msg, sizeof msg, "roaf native: %s must be %s", name, kind);
    napi_throw_type_error(a->env, NULL, msg);
    a->failed = 1;
    return NULL;
  }
  if ((idx)length < need) {
    char msg[160];
    snprintf(msg, sizeof msg, "roaf native: %s has %zu elements, needs at least %lld", name, length, (long long)need);
    napi_throw_range_error(a->env, NULL, msg);
    a->failed = 1;
    return NULL;
  }
  return data;
}

/** A typed array of the given type with at least `need` elements; NULL (and no error) if nullable and null. */
static void *arg_array(args_t *a, size_t i, const char *name, napi_typedarray_type want, idx need, int nullable) {
  if (a->failed) return NULL;
  if (nullable && is_null(a, i)) return NULL;
  return typed_array(a, a->argv[i], name, want, need);
}

static float *arg_f32(args_t *a, size_t i, const char *name, idx need) {
  return arg_array(a, i, name, napi_float32_array, need, 0);
}
static float *arg_f32_nullable(args_t *a, size_t i, const char *name, idx need) {
  return arg_array(a, i, name, napi_float32_array, need, 1);
}

/** Elements a row-major (rows, cols) matrix with row stride ld spans; throws if ld < cols. */
static idx span(args_t *a, const char *name, idx rows, idx cols, idx ld) {
  if (rows == 0 || cols == 0) return 0;
  if (ld < cols) {
    fail(a, "roaf native: the row stride of %s is smaller than its row length (%g)", name, (double)cols);
    return 0;
  }
  return (rows - 1) * ld + cols;
}

/** Reads a filter (kind, matrix-or-signs, perm) at argv[i..i+2] for width n. */
static roaf_filter arg_filter(args_t *a, size_t i, idx n) {
  roaf_filter f = {.n = (int)n};
  double kind = arg_num(a, i, "filter kind");
  f.kind = (int)kind;
  if (f.kind == FILTER_DENSE) {
    f.matrix = arg_f32(a, i + 1, "filter.matrix", n * n);
  } else if (f.kind == FILTER_PERMUTATION) {
    f.signs = arg_f32(a, i + 1, "filter.signs", n);
    f.perm = arg_array(a, i + 2, "filter.perm", napi_int32_array, n, 0);
    for (idx j = 0; !a->failed && j < n; j++)
      if (f.perm[j] < 0 || f.perm[j] >= n) fail(a, "roaf native: %s has an entry outside [0, n): %g", "filter.perm", f.perm[j]);
  } else if (f.kind != FILTER_IDENTITY) {
    fail(a, "roaf native: unknown %s %g", "filter kind", kind);
  }
  return f;
}

/**
 * Reads the L filters of a whole-stack kernel at argv[i..i+2]: kinds (Int32Array, L), datas and perms, each
 * either one typed array shared by every layer or an array of L (matrix or signs; perm or null). The table
 * lives in a buffer reused across calls (JavaScript calls the addon from one thread).
 */
static const roaf_filter *arg_filters(args_t *a, size_t i, idx L, idx n) {
  static roaf_filter *table = NULL;
  static idx capacity = 0;
  const int32_t *kinds = arg_array(a, i, "filter kinds", napi_int32_array, L, 0);
  if (a->failed) return NULL;
  if (L > capacity) {
    roaf_filter *grown = realloc(table, (size_t)L * sizeof *table);
    if (grown == NULL) {
      fail(a, "roaf native: out of memory for %s (%g layers)", "the filter table", (double)L);
      return NULL;
    }
    table = grown;
    capacity = L;
  }
  bool perLayer[2];
  for (int s = 0; s < 2; s++) napi_is_array(a->env, a->argv[i + 1 + s], &perLayer[s]);
  napi_value shared[2] = {a->argv[i + 1], a->argv[i + 2]};
  for (idx l = 0; l < L && !a->failed; l++) {
    napi_value parts[2];  // layer l's matrix-or-signs and perm
    for (int s = 0; s < 2; s++) {
      if (perLayer[s]) napi_get_element(a->env, shared[s], (uint32_t)l, &parts[s]);
      else parts[s] = shared[s];
    }
    roaf_filter f = {.kind = kinds[l], .n = (int)n};
    if (l > 0 && f.kind == table[l - 1].kind && !perLayer[0] && !perLayer[1]) {
      table[l] = table[l - 1];
      continue;
    }
    if (f.kind == FILTER_DENSE) {
      f.matrix = typed_array(a, parts[0], "filter.matrix", napi_float32_array, n * n);
    } else if (f.kind == FILTER_PERMUTATION) {
      f.signs = typed_array(a, parts[0], "filter.signs", napi_float32_array, n);
      f.perm = typed_array(a, parts[1], "filter.perm", napi_int32_array, n);
      for (idx j = 0; !a->failed && j < n; j++)
        if (f.perm[j] < 0 || f.perm[j] >= n) fail(a, "roaf native: %s has an entry outside [0, n): %g", "filter.perm", f.perm[j]);
    } else if (f.kind != FILTER_IDENTITY) {
      fail(a, "roaf native: unknown %s %g", "filter kind", f.kind);
    }
    table[l] = f;
  }
  return a->failed ? NULL : table;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

#define BEGIN(n)                           \
  args_t A;                                \
  if (!get_args(env, info, &A, (n))) return NULL;
#define CHECKED() \
  if (A.failed) return NULL;

// ---- dense linear algebra ----

static napi_value js_gemm(napi_env env, napi_callback_info info) {
  BEGIN(13);
  int transA = arg_bool(&A, 0), transB = arg_bool(&A, 1);
  idx M = arg_size(&A, 2, "M"), N = arg_size(&A, 3, "N"), K = arg_size(&A, 4, "K");
  float alpha = (float)arg_num(&A, 5, "alpha");
  idx lda = arg_size(&A, 7, "lda"), ldb = arg_size(&A, 9, "ldb");
  float beta = (float)arg_num(&A, 10, "beta");
  idx ldc = arg_size(&A, 12, "ldc");
  idx needA = transA ? span(&A, "A", K, M, lda) : span(&A, "A", M, K, lda);
  idx needB = transB ? span(&A, "B", N, K, ldb) : span(&A, "B", K, N, ldb);
  idx needC = span(&A, "C", M, N, ldc);
  const float *a = arg_f32(&A, 6, "A", needA);
  const float *b = arg_f32(&A, 8, "B", needB);
  float *c = arg_f32(&A, 11, "C", needC);
  CHECKED();
  kernels->gemm(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
  return undefined(env);
}

static napi_value js_add_row_vector(napi_env env, napi_callback_info info) {
  BEGIN(4);
  idx rows = arg_size(&A, 0, "rows"), n = arg_size(&A, 1, "n");
  float *y = arg_f32(&A, 2, "y", rows * n);
  const float *bias = arg_f32(&A, 3, "bias", n);
  CHECKED();
  kernels->add_row_vector(rows, n, y, bias);
  return undefined(env);
}

static napi_value js_sum_rows(napi_env env, napi_callback_info info) {
  BEGIN(4);
  idx rows = arg_size(&A, 0, "rows"), n = arg_size(&A, 1, "n");
  const float *x = arg_f32(&A, 2, "x", rows * n);
  float *out = arg_f32(&A, 3, "out", n);
  CHECKED();
  kernels->sum_rows(rows, n, x, out);
  return undefined(env);
}

// ---- elementwise ----

static napi_value js_tanh(napi_env env, napi_callback_info info) {
  BEGIN(3);
  idx n = arg_size(&A, 0, "n");
  const float *x = arg_f32(&A, 1, "x", n);
  float *out = arg_f32(&A, 2, "out", n);
  CHECKED();
  kernels->tanh(n, x, out);
  return undefined(env);
}

static napi_value js_tanh_backward(napi_env env, napi_callback_info info) {
  BEGIN(4);
  idx n = arg_size(&A, 0, "n");
  const float *a = arg_f32(&A, 1, "a", n);
  const float *gy = arg_f32(&A, 2, "gy", n);
  float *gx = arg_f32(&A, 3, "gx", n);
  CHECKED();
  kernels->tanh_backward(n, a, gy, gx);
  return undefined(env);
}

static napi_value js_sum_squares(napi_env env, napi_callback_info info) {
  BEGIN(2);
  idx n = arg_size(&A, 0, "n");
  const float *x = arg_f32(&A, 1, "x", n);
  CHECKED();
  return number(env, kernels->sum_squares(n, x));
}

static napi_value js_scale(napi_env env, napi_callback_info info) {
  BEGIN(3);
  idx n = arg_size(&A, 0, "n");
  float *x = arg_f32(&A, 1, "x", n);
  float s = (float)arg_num(&A, 2, "s");
  CHECKED();
  kernels->scale(n, x, s);
  return undefined(env);
}

static napi_value js_axpy(napi_env env, napi_callback_info info) {
  BEGIN(4);
  idx n = arg_size(&A, 0, "n");
  float s = (float)arg_num(&A, 1, "s");
  const float *x = arg_f32(&A, 2, "x", n);
  float *y = arg_f32(&A, 3, "y", n);
  CHECKED();
  kernels->axpy(n, s, x, y);
  return undefined(env);
}

// ---- filter ----

// applyFilter(kind, fdata, fperm, n, transpose, B, alpha, x, betaY, y)
static napi_value js_apply_filter(napi_env env, napi_callback_info info) {
  BEGIN(10);
  idx n = arg_size(&A, 3, "filter.n");
  roaf_filter f = arg_filter(&A, 0, n);
  int transpose = arg_bool(&A, 4);
  idx B = arg_size(&A, 5, "B");
  float alpha = (float)arg_num(&A, 6, "alpha");
  const float *x = arg_f32(&A, 7, "x", B * n);
  float betaY = (float)arg_num(&A, 8, "betaY");
  float *y = arg_f32(&A, 9, "y", B * n);
  CHECKED();
  kernels->apply_filter(&f, transpose, B, alpha, x, betaY, y);
  return undefined(env);
}

// ---- ROAF layer and cell ----

// roafLayerForward(B, N, alpha, beta, kind, fdata, fperm, x, W, b, a, y)
static napi_value js_roaf_layer_forward(napi_env env, napi_callback_info info) {
  BEGIN(12);
  idx B = arg_size(&A, 0, "B"), N = arg_size(&A, 1, "N");
  float alpha = (float)arg_num(&A, 2, "alpha"), beta = (float)arg_num(&A, 3, "beta");
  roaf_filter f = arg_filter(&A, 4, N);
  const float *x = arg_f32(&A, 7, "x", B * N);
  const float *W = arg_f32(&A, 8, "W", N * N);
  const float *b = arg_f32(&A, 9, "b", N);
  float *a = arg_f32(&A, 10, "a", B * N);
  float *y = arg_f32(&A, 11, "y", B * N);
  CHECKED();
  kernels->roaf_layer_forward(B, N, alpha, beta, &f, x, W, b, a, y);
  return undefined(env);
}

// roafLayerBackward(B, N, alpha, beta, kind, fdata, fperm, x, a, W, gy, gx, gW, gb, gz)
static napi_value js_roaf_layer_backward(napi_env env, napi_callback_info info) {
  BEGIN(15);
  idx B = arg_size(&A, 0, "B"), N = arg_size(&A, 1, "N");
  float alpha = (float)arg_num(&A, 2, "alpha"), beta = (float)arg_num(&A, 3, "beta");
  roaf_filter f = arg_filter(&A, 4, N);
  const float *x = arg_f32(&A, 7, "x", B * N);
  const float *a = arg_f32(&A, 8, "a", B * N);
  const float *W = arg_f32(&A, 9, "W", N * N);
  const float *gy = arg_f32(&A, 10, "gy", B * N);
  float *gx = arg_f32_nullable(&A, 11, "gx", B * N);
  float *gW = arg_f32(&A, 12, "gW", N * N);
  float *gb = arg_f32(&A, 13, "gb", N);
  float *gz = arg_f32(&A, 14, "gz", B * N);
  CHECKED();
  kernels->roaf_layer_backward(B, N, alpha, beta, &f, x, a, W, gy, gx, gW, gb, gz);
  return undefined(env);
}

// roafMlpForward(L, B, N, alpha, beta, kinds, datas, perms, Ws, bs, xs, as)
static napi_value js_roaf_mlp_forward(napi_env env, napi_callback_info info) {
  BEGIN(12);
  idx L = arg_size(&A, 0, "L"), B = arg_size(&A, 1, "B"), N = arg_size(&A, 2, "N");
  float alpha = (float)arg_num(&A, 3, "alpha"), beta = (float)arg_num(&A, 4, "beta");
  const float *Ws = arg_f32(&A, 8, "Ws", L * N * N);
  const float *bs = arg_f32(&A, 9, "bs", L * N);
  float *xs = arg_f32(&A, 10, "xs", (L + 1) * B * N);
  float *as = arg_f32(&A, 11, "as", L * B * N);
  const roaf_filter *filters = arg_filters(&A, 5, L, N);
  CHECKED();
  kernels->roaf_mlp_forward(L, B, N, alpha, beta, filters, Ws, bs, xs, as);
  return undefined(env);
}

// roafMlpBackward(L, B, N, alpha, beta, kinds, datas, perms, Ws, xs, as, gy, gWs, gbs, gradSquares)
static napi_value js_roaf_mlp_backward(napi_env env, napi_callback_info info) {
  BEGIN(15);
  idx L = arg_size(&A, 0, "L"), B = arg_size(&A, 1, "B"), N = arg_size(&A, 2, "N");
  float alpha = (float)arg_num(&A, 3, "alpha"), beta = (float)arg_num(&A, 4, "beta");
  const float *Ws = arg_f32(&A, 8, "Ws", L * N * N);
  const float *xs = arg_f32(&A, 9, "xs", (L + 1) * B * N);
  const float *as = arg_f32(&A, 10, "as", L * B * N);
  float *gy = arg_f32(&A, 11, "gy", B * N);
  float *gWs = arg_f32(&A, 12, "gWs", L * N * N);
  float *gbs = arg_f32(&A, 13, "gbs", L * N);
  double *gradSquares = arg_array(&A, 14, "gradSquares", napi_float64_array, L + 1, 1);
  const roaf_filter *filters = arg_filters(&A, 5, L, N);
  CHECKED();
  kernels->roaf_mlp_backward(L, B, N, alpha, beta, filters, Ws, xs, as, gy, gWs, gbs, gradSquares);
  return undefined(env);
}

// roafCellForward(T, B, D, N, alpha, beta, kind, fdata, fperm, xs, W, U, b, hs, as)
static napi_value js_roaf_cell_forward(napi_env env, napi_callback_info info) {
  BEGIN(15);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  float alpha = (float)arg_num(&A, 4, "alpha"), beta = (float)arg_num(&A, 5, "beta");
  roaf_filter f = arg_filter(&A, 6, N);
  const float *xs = arg_f32(&A, 9, "xs", T * B * D);
  const float *W = arg_f32(&A, 10, "W", N * N);
  const float *U = arg_f32(&A, 11, "U", N * D);
  const float *b = arg_f32(&A, 12, "b", N);
  float *hs = arg_f32(&A, 13, "hs", (T + 1) * B * N);
  float *as = arg_f32(&A, 14, "as", T * B * N);
  CHECKED();
  kernels->roaf_cell_forward(T, B, D, N, alpha, beta, &f, xs, W, U, b, hs, as);
  return undefined(env);
}

// roafCellBackward(T, B, D, N, alpha, beta, kind, fdata, fperm, xs, W, U, hs, as, ghs, gzs, gW, gU, gb, gh0, gxs,
//                  lastStepOnly)
static napi_value js_roaf_cell_backward(napi_env env, napi_callback_info info) {
  BEGIN(22);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  float alpha = (float)arg_num(&A, 4, "alpha"), beta = (float)arg_num(&A, 5, "beta");
  roaf_filter f = arg_filter(&A, 6, N);
  const float *xs = arg_f32(&A, 9, "xs", T * B * D);
  const float *W = arg_f32(&A, 10, "W", N * N);
  const float *U = arg_f32(&A, 11, "U", N * D);
  const float *hs = arg_f32(&A, 12, "hs", (T + 1) * B * N);
  const float *as = arg_f32(&A, 13, "as", T * B * N);
  float *ghs = arg_f32(&A, 14, "ghs", T * B * N);
  float *gzs = arg_f32(&A, 15, "gzs", T * B * N);
  float *gW = arg_f32(&A, 16, "gW", N * N);
  float *gU = arg_f32(&A, 17, "gU", N * D);
  float *gb = arg_f32(&A, 18, "gb", N);
  float *gh0 = arg_f32_nullable(&A, 19, "gh0", B * N);
  float *gxs = arg_f32_nullable(&A, 20, "gxs", T * B * D);
  int lastStepOnly = arg_bool(&A, 21);
  CHECKED();
  kernels->roaf_cell_backward(T, B, D, N, alpha, beta, &f, xs, W, U, hs, as, ghs, gzs, gW, gU, gb, gh0, gxs,
                              lastStepOnly);
  return undefined(env);
}

// ---- LSTM and GRU ----

// lstmForward(T, B, D, N, xs, Wx, Wh, b, hs, cs, gates)
static napi_value js_lstm_forward(napi_env env, napi_callback_info info) {
  BEGIN(11);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  const float *xs = arg_f32(&A, 4, "xs", T * B * D);
  const float *Wx = arg_f32(&A, 5, "Wx", 4 * N * D);
  const float *Wh = arg_f32(&A, 6, "Wh", 4 * N * N);
  const float *b = arg_f32(&A, 7, "b", 4 * N);
  float *hs = arg_f32(&A, 8, "saved.hs", (T + 1) * B * N);
  float *cs = arg_f32(&A, 9, "saved.cs", (T + 1) * B * N);
  float *gates = arg_f32(&A, 10, "saved.gates", T * B * 4 * N);
  CHECKED();
  kernels->lstm_forward(T, B, D, N, xs, Wx, Wh, b, hs, cs, gates);
  return undefined(env);
}

// lstmBackward(T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly)
static napi_value js_lstm_backward(napi_env env, napi_callback_info info) {
  BEGIN(17);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  const float *xs = arg_f32(&A, 4, "xs", T * B * D);
  const float *Wx = arg_f32(&A, 5, "Wx", 4 * N * D);
  const float *Wh = arg_f32(&A, 6, "Wh", 4 * N * N);
  const float *hs = arg_f32(&A, 7, "saved.hs", (T + 1) * B * N);
  const float *cs = arg_f32(&A, 8, "saved.cs", (T + 1) * B * N);
  const float *gates = arg_f32(&A, 9, "saved.gates", T * B * 4 * N);
  float *ghs = arg_f32(&A, 10, "ghs", T * B * N);
  float *gGates = arg_f32(&A, 11, "gGates", T * B * 4 * N);
  float *gWx = arg_f32(&A, 12, "gWx", 4 * N * D);
  float *gWh = arg_f32(&A, 13, "gWh", 4 * N * N);
  float *gb = arg_f32(&A, 14, "gb", 4 * N);
  float *gxs = arg_f32_nullable(&A, 15, "gxs", T * B * D);
  int lastStepOnly = arg_bool(&A, 16);
  CHECKED();
  kernels->lstm_backward(T, B, D, N, xs, Wx, Wh, hs, cs, gates, ghs, gGates, gWx, gWh, gb, gxs, lastStepOnly);
  return undefined(env);
}

// gruForward(T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn)
static napi_value js_gru_forward(napi_env env, napi_callback_info info) {
  BEGIN(12);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  const float *xs = arg_f32(&A, 4, "xs", T * B * D);
  const float *Wx = arg_f32(&A, 5, "Wx", 3 * N * D);
  const float *Wh = arg_f32(&A, 6, "Wh", 3 * N * N);
  const float *bx = arg_f32(&A, 7, "bx", 3 * N);
  const float *bh = arg_f32(&A, 8, "bh", 3 * N);
  float *hs = arg_f32(&A, 9, "saved.hs", (T + 1) * B * N);
  float *gates = arg_f32(&A, 10, "saved.gates", T * B * 3 * N);
  float *hn = arg_f32(&A, 11, "saved.hn", T * B * N);
  CHECKED();
  kernels->gru_forward(T, B, D, N, xs, Wx, Wh, bx, bh, hs, gates, hn);
  return undefined(env);
}

// gruBackward(T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs, lastStepOnly)
static napi_value js_gru_backward(napi_env env, napi_callback_info info) {
  BEGIN(19);
  idx T = arg_size(&A, 0, "T"), B = arg_size(&A, 1, "B"), D = arg_size(&A, 2, "D"), N = arg_size(&A, 3, "N");
  const float *xs = arg_f32(&A, 4, "xs", T * B * D);
  const float *Wx = arg_f32(&A, 5, "Wx", 3 * N * D);
  const float *Wh = arg_f32(&A, 6, "Wh", 3 * N * N);
  const float *hs = arg_f32(&A, 7, "saved.hs", (T + 1) * B * N);
  const float *gates = arg_f32(&A, 8, "saved.gates", T * B * 3 * N);
  const float *hn = arg_f32(&A, 9, "saved.hn", T * B * N);
  float *ghs = arg_f32(&A, 10, "ghs", T * B * N);
  float *gGates = arg_f32(&A, 11, "gGates", T * B * 3 * N);
  float *gHn = arg_f32(&A, 12, "gHn", T * B * N);
  float *gWx = arg_f32(&A, 13, "gWx", 3 * N * D);
  float *gWh = arg_f32(&A, 14, "gWh", 3 * N * N);
  float *gbx = arg_f32(&A, 15, "gbx", 3 * N);
  float *gbh = arg_f32(&A, 16, "gbh", 3 * N);
  float *gxs = arg_f32_nullable(&A, 17, "gxs", T * B * D);
  int lastStepOnly = arg_bool(&A, 18);
  CHECKED();
  kernels->gru_backward(T, B, D, N, xs, Wx, Wh, hs, gates, hn, ghs, gGates, gHn, gWx, gWh, gbx, gbh, gxs,
                        lastStepOnly);
  return undefined(env);
}

// ---- losses ----

// softmaxCrossEntropy(B, K, logits, labels, gradScale, grad, correct)
static napi_value js_softmax_cross_entropy(napi_env env, napi_callback_info info) {
  BEGIN(7);
  idx B = arg_size(&A, 0, "B"), K = arg_size(&A, 1, "K");
  const float *logits = arg_f32(&A, 2, "logits", B * K);
  const int32_t *labels = arg_array(&A, 3, "labels", napi_int32_array, B, 0);
  float gradScale = (float)arg_num(&A, 4, "gradScale");
  float *grad = arg_f32_nullable(&A, 5, "grad", B * K);
  uint8_t *correct = arg_array(&A, 6, "correct", napi_uint8_array, B, 1);
  for (idx r = 0; !A.failed && r < B; r++)
    if (labels[r] < 0 || labels[r] >= K) fail(&A, "roaf native: %s has an entry outside [0, K): %g", "labels", labels[r]);
  if (!A.failed && K == 0 && B > 0) fail(&A, "roaf native: %s must be >= 1, got %g", "K", 0);
  CHECKED();
  return number(env, kernels->softmax_cross_entropy(B, K, logits, labels, gradScale, grad, correct));
}

// squaredError(B, K, pred, target, gradScale, grad)
static napi_value js_squared_error(napi_env env, napi_callback_info info) {
  BEGIN(6);
  idx B = arg_size(&A, 0, "B"), K = arg_size(&A, 1, "K");
  const float *pred = arg_f32(&A, 2, "pred", B * K);
  const float *target = arg_f32(&A, 3, "target", B * K);
  float gradScale = (float)arg_num(&A, 4, "gradScale");
  float *grad = arg_f32_nullable(&A, 5, "grad", B * K);
  CHECKED();
  return number(env, kernels->squared_error(B, K, pred, target, gradScale, grad));
}

// ---- optimisers ----

// adamUpdate(n, params, grads, m, v, lr, beta1, beta2, eps, weightDecay, t)
static napi_value js_adam_update(napi_env env, napi_callback_info info) {
  BEGIN(11);
  idx n = arg_size(&A, 0, "n");
  float *params = arg_f32(&A, 1, "params", n);
  const float *grads = arg_f32(&A, 2, "grads", n);
  float *m = arg_f32(&A, 3, "m", n);
  float *v = arg_f32(&A, 4, "v", n);
  float lr = (float)arg_num(&A, 5, "lr");
  double beta1 = arg_num(&A, 6, "beta1"), beta2 = arg_num(&A, 7, "beta2");
  float eps = (float)arg_num(&A, 8, "eps");
  float wd = (float)arg_num(&A, 9, "weightDecay");
  double t = arg_num(&A, 10, "t");
  CHECKED();
  kernels->adam_update(n, params, grads, m, v, lr, beta1, beta2, eps, wd, t);
  return undefined(env);
}

// sgdUpdate(n, params, grads, velocity, lr, momentum)
static napi_value js_sgd_update(napi_env env, napi_callback_info info) {
  BEGIN(6);
  idx n = arg_size(&A, 0, "n");
  float *params = arg_f32(&A, 1, "params", n);
  const float *grads = arg_f32(&A, 2, "grads", n);
  float *velocity = arg_f32(&A, 3, "velocity", n);
  float lr = (float)arg_num(&A, 4, "lr"), momentum = (float)arg_num(&A, 5, "momentum");
  CHECKED();
  kernels->sgd_update(n, params, grads, velocity, lr, momentum);
  return undefined(env);
}

// ---- control ----

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

/** info() -> { isa, threads, available: string[], maxThreads } */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, list;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "isa", make_string(env, kernels->name));
  napi_set_named_property(env, obj, "threads", number(env, roaf_pool_threads()));
  napi_set_named_property(env, obj, "cores", number(env, default_threads()));
  napi_create_array(env, &list);
  const char *names[] = {"portable", "avx2", "avx512"};
  uint32_t count = 0;
  for (int i = 0; i < 3; i++)
    if (isa_supported(names[i]) && isa_kernels(names[i]) != NULL)
      napi_set_element(env, list, count++, make_string(env, names[i]));
  napi_set_named_property(env, obj, "available", list);
  return obj;
}

/** setIsa(name): throws if the name is unknown or the CPU lacks the instruction set. */
static napi_value js_set_isa(napi_env env, napi_callback_info info) {
  BEGIN(1);
  char name[32] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, A.argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "roaf native: the instruction set must be a string");
    return NULL;
  }
  const roaf_kernels *k = isa_kernels(name);
  if (k == NULL || !isa_supported(name)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s instruction set '%s' (this CPU supports up to %s)",
             k == NULL && strcmp(name, "avx2") != 0 && strcmp(name, "avx512") != 0 ? "unknown" : "unsupported",
             name, best_isa());
    napi_throw_error(env, "ROAF_ISA", msg);
    return NULL;
  }
  kernels = k;
  return undefined(env);
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  BEGIN(1);
  idx n = arg_size(&A, 0, "threads");
  if (!A.failed && (n < 1 || n > ROAF_MAX_THREADS)) fail(&A, "roaf native: %s must be in [1, 64], got %g", "threads", (double)n);
  CHECKED();
  roaf_pool_set_threads((int)n);
  return undefined(env);
}

/** Test hook: the work (multiply-adds) below which kernels stay on one thread; returns the old value. */
static napi_value js_set_parallel_threshold(napi_env env, napi_callback_info info) {
  BEGIN(1);
  double x = arg_num(&A, 0, "threshold");
  CHECKED();
  extern double roaf_min_parallel_work;
  double old = roaf_min_parallel_work;
  roaf_min_parallel_work = x;
  return number(env, old);
}

/** The FLOPS one thread's widest FMA sustains (the instruction set in use), measured for `seconds` (0.01-10). */
static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  BEGIN(1);
  double seconds = arg_num(&A, 0, "seconds");
  if (!A.failed && !(seconds >= 0.01 && seconds <= 10)) fail(&A, "roaf native: %s must be in [0.01, 10], got %g", "seconds", seconds);
  CHECKED();
  return number(env, kernels->fma_peak(seconds));
}

static napi_value init(napi_env env, napi_value exports) {
  kernels = isa_kernels(best_isa());
  roaf_pool_set_threads(default_threads());
  napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
    FN("gemm", js_gemm),
    FN("addRowVector", js_add_row_vector),
    FN("sumRows", js_sum_rows),
    FN("tanh", js_tanh),
    FN("tanhBackward", js_tanh_backward),
    FN("sumSquares", js_sum_squares),
    FN("scale", js_scale),
    FN("axpy", js_axpy),
    FN("applyFilter", js_apply_filter),
    FN("roafLayerForward", js_roaf_layer_forward),
    FN("roafLayerBackward", js_roaf_layer_backward),
    FN("roafMlpForward", js_roaf_mlp_forward),
    FN("roafMlpBackward", js_roaf_mlp_backward),
    FN("roafCellForward", js_roaf_cell_forward),
    FN("roafCellBackward", js_roaf_cell_backward),
    FN("lstmForward", js_lstm_forward),
    FN("lstmBackward", js_lstm_backward),
    FN("gruForward", js_gru_forward),
    FN("gruBackward", js_gru_backward),
    FN("softmaxCrossEntropy", js_softmax_cross_entropy),
    FN("squaredError", js_squared_error),
    FN("adamUpdate", js_adam_update),
    FN("sgdUpdate", js_sgd_update),
    FN("info", js_info),
    FN("setIsa", js_set_isa),
    FN("setThreads", js_set_threads),
    FN("setParallelThreshold", js_set_parallel_threshold),
    FN("fmaPeak", js_fma_peak),
#undef FN
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
