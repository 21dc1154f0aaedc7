// The N-API surface of roaf's native backend: instruction-set dispatch, thread control, and the kernels'
// entry points.
//
// The entry points are generated from the kernel table (src/backend/kernel-table.ts) into addon_kernels.inc,
// included below: each takes its kernel's arguments positionally in table order (a filter as kind, n,
// matrix-or-signs, perm; a filter list as kinds, n, datas, perms) from src/backend/native.ts, which runs the
// table's argument checks first (lengths, row strides, dtypes, filters; overflow-proof). The readers here
// only convert what they are given: a value of the wrong JavaScript type throws a TypeError, and a size must
// be a float64 integer in [0, 2^53) so that converting it to idx is defined; lengths are not checked again.
// The kernels run synchronously on the calling thread (thread 0 of the pool).

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

// ---- argument reading (used by the generated entry points) ----

typedef struct {
  napi_env env;
  const char *kernel;
  napi_value argv[32];
  size_t argc;
  int failed;
} args_t;

/** Throws a TypeError "roaf native: KERNEL: NAME what" once per call. */
static void fail(args_t *a, const char *name, const char *what) {
  if (a->failed) return;
  char msg[192];
  snprintf(msg, sizeof msg, "roaf native: %s: %s %s", a->kernel, name, what);
  napi_throw_type_error(a->env, NULL, msg);
  a->failed = 1;
}

static int get_args(napi_env env, napi_callback_info info, args_t *a, const char *kernel, size_t expected) {
  a->env = env;
  a->kernel = kernel;
  a->argc = sizeof a->argv / sizeof a->argv[0];
  a->failed = 0;
  napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL);
  if (a->argc < expected) {
    char msg[128];
    snprintf(msg, sizeof msg, "roaf native: %s: expected %zu arguments, got %zu", kernel, expected, a->argc);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

static double arg_number(args_t *a, size_t i, const char *name) {
  double x = 0;
  if (!a->failed && napi_get_value_double(a->env, a->argv[i], &x) != napi_ok) fail(a, name, "must be a number");
  return x;
}

/** A size: an integer in [0, 2^53), the range in which the conversion to idx is exact and defined. */
static idx arg_idx(args_t *a, size_t i, const char *name) {
  double x = arg_number(a, i, name);
  if (!a->failed && !(x >= 0 && x <= 9007199254740991.0 && x == (double)(int64_t)x))
    fail(a, name, "must be a non-negative integer below 2^53");
  return a->failed ? 0 : (idx)x;
}

static int arg_bool(args_t *a, size_t i, const char *name) {
  bool b = false;
  if (!a->failed && napi_get_value_bool(a->env, a->argv[i], &b) != napi_ok) fail(a, name, "must be a boolean");
  return b ? 1 : 0;
}

static int is_null(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

/** The data of `value`, a typed array of type `want`; NULL (and no error) if nullable and null. */
static void *typed_array(args_t *a, napi_value value, const char *name, napi_typedarray_type want, int nullable) {
  if (a->failed) return NULL;
  if (nullable && is_null(a->env, value)) return NULL;
  bool isTyped = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_is_typedarray(a->env, value, &isTyped);
  if (!isTyped || napi_get_typedarray_info(a->env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != want) {
    fail(a, name,
         want == napi_float32_array   ? "must be a Float32Array"
         : want == napi_float64_array ? "must be a Float64Array"
         : want == napi_int32_array   ? "must be an Int32Array"
                                      : "must be a Uint8Array");
    return NULL;
  }
  return data;
}

static void *arg_array(args_t *a, size_t i, const char *name, napi_typedarray_type want, int nullable) {
  return typed_array(a, a->argv[i], name, want, nullable);
}

/** A filter from argv[i..i+3]: kind, n, matrix-or-signs (or null), perm (or null). */
static roaf_filter arg_filter(args_t *a, size_t i, const char *name) {
  roaf_filter f = {.kind = (int)arg_number(a, i, name), .n = (int)arg_idx(a, i + 1, name)};
  if (f.kind == FILTER_DENSE) {
    f.matrix = arg_array(a, i + 2, name, napi_float32_array, 0);
  } else if (f.kind == FILTER_PERMUTATION) {
    f.signs = arg_array(a, i + 2, name, napi_float32_array, 0);
    f.perm = arg_array(a, i + 3, name, napi_int32_array, 0);
  } else if (f.kind != FILTER_IDENTITY) {
    fail(a, name, "has an unknown filter kind");
  }
  return f;
}

/**
 * The L filters of a whole-stack kernel from argv[i..i+3]: kinds (Int32Array, L), n, and datas and perms,
 * each either one typed array shared by every layer or an array of L (matrix or signs; perm or null). The
 * table lives in a buffer reused across calls (JavaScript calls the addon from one thread).
 */
static const roaf_filter *arg_filters(args_t *a, size_t i, idx L, const char *name) {
  static roaf_filter *table = NULL;
  static idx capacity = 0;
  const int32_t *kinds = arg_array(a, i, name, napi_int32_array, 0);
  int n = (int)arg_idx(a, i + 1, name);
  if (a->failed) return NULL;
  if (L > capacity) {
    roaf_filter *grown = realloc(table, (size_t)L * sizeof *table);
    if (grown == NULL) {
      fail(a, name, "could not be read: out of memory");
      return NULL;
    }
    table = grown;
    capacity = L;
  }
  bool perLayer[2];
  for (size_t s = 0; s < 2; s++) napi_is_array(a->env, a->argv[i + 2 + s], &perLayer[s]);
  napi_value shared[2] = {a->argv[i + 2], a->argv[i + 3]};
  for (idx l = 0; l < L && !a->failed; l++) {
    roaf_filter f = {.kind = kinds[l], .n = n};
    if (l > 0 && f.kind == table[l - 1].kind && !perLayer[0] && !perLayer[1]) {
      table[l] = table[l - 1];
      continue;
    }
    napi_value parts[2];  // layer l's matrix-or-signs and perm
    for (int s = 0; s < 2; s++) {
      if (perLayer[s]) napi_get_element(a->env, shared[s], (uint32_t)l, &parts[s]);
      else parts[s] = shared[s];
    }
    if (f.kind == FILTER_DENSE) {
      f.matrix = typed_array(a, parts[0], name, napi_float32_array, 0);
    } else if (f.kind == FILTER_PERMUTATION) {
      f.signs = typed_array(a, parts[0], name, napi_float32_array, 0);
      f.perm = typed_array(a, parts[1], name, napi_int32_array, 0);
    } else if (f.kind != FILTER_IDENTITY) {
      fail(a, name, "has an unknown filter kind");
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

// ---- the kernels' entry points, generated from the kernel table ----

#include "addon_kernels.inc"

// ---- control ----

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

/** info() -> { isa, threads, cores, available: string[], bf16, kernelTableId } */
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
  napi_value bf16;  // gemmBf16 runs AVX512_BF16's vdpbf16ps (else its portable C arithmetic)
  napi_get_boolean(env, kernels->bf16_hardware() != 0, &bf16);
  napi_set_named_property(env, obj, "bf16", bf16);
  napi_set_named_property(env, obj, "kernelTableId", make_string(env, ROAF_KERNEL_TABLE_ID));
  return obj;
}

/** setIsa(name): throws if the name is unknown or the CPU lacks the instruction set. */
static napi_value js_set_isa(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "setIsa", 1)) return NULL;
  char name[32] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, in.argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "roaf native: the instruction set must be a string");
    return NULL;
  }
  const roaf_kernels *k = isa_kernels(name);
  if (k == NULL || !isa_supported(name)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s instruction set '%s' (this CPU supports up to %s)",
             k == NULL && strcmp(name, "avx2") != 0 && strcmp(name, "avx512") != 0 ? "unknown" : "unsupported", name,
             best_isa());
    napi_throw_error(env, "ROAF_ISA", msg);
    return NULL;
  }
  kernels = k;
  return undefined(env);
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "setThreads", 1)) return NULL;
  idx n = arg_idx(&in, 0, "threads");
  if (!in.failed && (n < 1 || n > ROAF_MAX_THREADS)) fail(&in, "threads", "must be in [1, 64]");
  if (in.failed) return NULL;
  roaf_pool_set_threads((int)n);
  return undefined(env);
}

/** Test hook: the work (multiply-adds) below which kernels stay on one thread; returns the old value. */
static napi_value js_set_parallel_threshold(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "setParallelThreshold", 1)) return NULL;
  double x = arg_number(&in, 0, "threshold");
  if (in.failed) return NULL;
  extern double roaf_min_parallel_work;
  double old = roaf_min_parallel_work;
  roaf_min_parallel_work = x;
  return number(env, old);
}

/**
 * Test hook: simulateThreadChoice(costs, threads) runs the thread-count policy's rule 3 on a made-up kind of
 * task whose run i costs costs[2i] on one thread and costs[2i + 1] on two (Float64Array), writing its choice
 * for each run into threads (Int32Array, half the length of costs).
 */
static napi_value js_simulate_thread_choice(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "simulateThreadChoice", 2)) return NULL;
  size_t costCount = 0, runCount = 0;
  double *costs = arg_array(&in, 0, "costs", napi_float64_array, 0);
  int *threads = arg_array(&in, 1, "threads", napi_int32_array, 0);
  if (in.failed) return NULL;
  napi_get_typedarray_info(env, in.argv[0], NULL, &costCount, NULL, NULL, NULL);
  napi_get_typedarray_info(env, in.argv[1], NULL, &runCount, NULL, NULL, NULL);
  if (costCount != 2 * runCount) fail(&in, "costs", "must hold two costs for each run of threads");
  if (in.failed) return NULL;
  extern void roaf_simulate_thread_choice(const double *costs, idx runs, int *threads);
  roaf_simulate_thread_choice(costs, (idx)runCount, threads);
  return undefined(env);
}

typedef struct {
  double seconds;
  double flops[ROAF_MAX_THREADS];  // what each thread that took part measured; 0 for one that did not
} peak_task;

static void peak_run(void *arg, int tid, int nthreads) {
  (void)nthreads;
  peak_task *p = arg;
  p->flops[tid] = kernels->fma_peak(p->seconds);
}

/**
 * The FLOPS the widest FMA sustains (the instruction set in use), measured for `seconds` (0.01-10): on one
 * thread, or summed over `threads` threads running the loop at the same time. The two differ by less than the
 * thread count where virtual cores share a physical core (SMT siblings, or a host that packs them): the
 * all-threads figure is the ceiling of a parallel product.
 */
static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "fmaPeak", 2)) return NULL;
  double seconds = arg_number(&in, 0, "seconds");
  idx threads = arg_idx(&in, 1, "threads");
  if (!in.failed && !(seconds >= 0.01 && seconds <= 10)) fail(&in, "seconds", "must be in [0.01, 10]");
  if (!in.failed && (threads < 1 || threads > ROAF_MAX_THREADS)) fail(&in, "threads", "must be in [1, 64]");
  if (in.failed) return NULL;
  if (threads == 1) return number(env, kernels->fma_peak(seconds));
  peak_task task = {.seconds = seconds};
  roaf_pool_run(peak_run, &task, (int)threads);
  double total = 0;
  for (int t = 0; t < ROAF_MAX_THREADS; t++) total += task.flops[t];
  return number(env, total);
}

/**
 * Benchmark support (bench/gemm.ts): `repeats` products C (M, N) = A (M, K) B (K, N) on the calling thread with B
 * packed once, float32 or on bf16 operands; arrays of at least M·K, K·N and M·N floats.
 */
static napi_value js_gemm_packed_once(napi_env env, napi_callback_info info) {
  args_t in;
  if (!get_args(env, info, &in, "gemmPackedOnce", 8)) return NULL;
  int bf16 = arg_bool(&in, 0, "bf16");
  idx M = arg_idx(&in, 1, "M"), N = arg_idx(&in, 2, "N"), K = arg_idx(&in, 3, "K");
  float *A = arg_array(&in, 4, "A", napi_float32_array, 0);
  float *B = arg_array(&in, 5, "B", napi_float32_array, 0);
  float *C = arg_array(&in, 6, "C", napi_float32_array, 0);
  idx repeats = arg_idx(&in, 7, "repeats");
  if (in.failed) return NULL;
  kernels->gemm_packed_once(bf16, M, N, K, A, B, C, repeats);
  return undefined(env);
}

static napi_value init(napi_env env, napi_value exports) {
  kernels = isa_kernels(best_isa());
  roaf_pool_set_threads(default_threads());
  napi_property_descriptor props[] = {
      ROAF_KERNEL_PROPERTIES,
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
      FN("info", js_info),
      FN("setIsa", js_set_isa),
      FN("setThreads", js_set_threads),
      FN("setParallelThreshold", js_set_parallel_threshold),
      FN("simulateThreadChoice", js_simulate_thread_choice),
      FN("fmaPeak", js_fma_peak),
      FN("gemmPackedOnce", js_gemm_packed_once),
#undef FN
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
