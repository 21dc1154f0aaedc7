// Declarations shared by the addon (addon.c), the thread pool (pool.c, parallel.c) and the kernels (the files
// listed in native/src/kernels_internal.h, compiled once per instruction set). Every kernel has the semantics
// of the method of the same name in src/backend/backend.ts, its parameters in the order of
// src/backend/kernel-table.ts; its arguments are checked by that table (src/backend/kernel-checks.ts) before
// the addon calls it.

#ifndef ROAF_NATIVE_H
#define ROAF_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#define ROAF_MAX_THREADS 64

// ---- thread pool (pool.c) ----

/** A task run by `nthreads` threads at once; thread `tid` in [0, nthreads) does its share. */
typedef void (*roaf_task_fn)(void *arg, int tid, int nthreads);

/** Threads the pool uses (the calling thread counts as thread 0). */
int roaf_pool_threads(void);
/** Threads worth using now: 1 while the adaptive fallback is active (workers kept the caller waiting). */
int roaf_pool_available_threads(void);
/** Resizes the pool to n >= 1 threads in total. */
void roaf_pool_set_threads(int n);
/**
 * Runs fn(arg, tid, nthreads) on the caller (tid 0) and on the workers that join in time, and returns when
 * those have finished. Work must be claimed dynamically (any subset of threads must complete it).
 */
void roaf_pool_run(roaf_task_fn fn, void *arg, int nthreads);

/**
 * Per-thread scratch, grown only when too small and never shrunk: `slot` names one of a few independent
 * buffers of thread `tid`. Returns 64-byte aligned memory of at least `count` floats (contents undefined),
 * or aborts the process when out of memory.
 */
float *roaf_scratch(int tid, int slot, size_t count);
enum {
  SCRATCH_PACK_A,
  SCRATCH_PACK_B,
  SCRATCH_WORK,
  SCRATCH_WORK2,
  SCRATCH_SHARED_B,
  SCRATCH_WHOLE_B,  // a thread's own copy of op(B) packed whole (threaded products, rows split)
  SCRATCH_PARTIAL,
  SCRATCH_STACK,
  SCRATCH_STACK_ROWS,
  SCRATCH_SWEEP,      // shared by the threads of a whole-stack MLP kernel (thread 0's)
  SCRATCH_GRADIENTS,  // a fused kernel's parameter-gradient sums, carried across the chunks of its backward
  SCRATCH_SLOTS
};

// ---- kernels (one table per instruction set: native/src/kernels.c) ----

/** A filter operand: kind 0 dense (matrix (n, n)), 1 permutation (perm, signs), 2 identity. */
typedef struct {
  int kind;
  int n;
  const float *matrix;
  const int32_t *perm;
  const float *signs;
  /** Optional (NULL: computed per use): Oᵀ in gather form, (Oᵀ x)[j] = inverseSigns[j] x[inversePerm[j]]. */
  const int32_t *inversePerm;
  const float *inverseSigns;
} roaf_filter;
enum { FILTER_DENSE = 0, FILTER_PERMUTATION = 1, FILTER_IDENTITY = 2 };

typedef ptrdiff_t idx;

typedef struct {
  const char *name;
  /** FLOPS of this thread's widest FMA in a dependency-free loop run for about `seconds`: the arithmetic peak. */
  double (*fma_peak)(double seconds);
  void (*gemm)(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B,
               idx ldb, float beta, float *C, idx ldc);
  /** gemm with bf16 operands and float32 accumulation (docs/precision.md). */
  void (*gemm_bf16)(int transA, int transB, idx M, idx N, idx K, float alpha, const float *A, idx lda, const float *B,
                    idx ldb, float beta, float *C, idx ldc);
  /** 1 when gemm_bf16 runs AVX512_BF16's vdpbf16ps on this CPU, 0 when it runs the portable C arithmetic. */
  int (*bf16_hardware)(void);
  /** Benchmark support: `repeats` products C = A B on one thread with B packed once, float32 or bf16 operands. */
  void (*gemm_packed_once)(int bf16, idx M, idx N, idx K, const float *A, const float *B, float *C, idx repeats);
  void (*add_row_vector)(idx rows, idx n, float *y, const float *bias);
  void (*sum_rows)(idx rows, idx n, const float *x, float *out);
  void (*tanh)(idx n, const float *x, float *out);
  void (*tanh_backward)(idx n, const float *a, const float *gy, float *gx);
  double (*sum_squares)(idx n, const float *x);
  void (*scale)(idx n, float *x, float s);
  void (*axpy)(idx n, float s, const float *x, float *y);
  void (*apply_filter)(const roaf_filter *f, int transpose, idx B, float alpha, const float *x, float betaY, float *y);
  void (*roaf_layer_forward)(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x,
                             const float *W, const float *b, float *a, float *y);
  void (*roaf_layer_backward)(idx B, idx N, float alpha, float beta, const roaf_filter *f, const float *x,
                              const float *a, const float *W, const float *gy, float *gx, float *gW, float *gb,
                              float *gz);
  /** `filters` holds L filters, one per layer (entries may repeat). */
  void (*roaf_mlp_forward)(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                           const float *bs, float *xs, float *as);
  void (*roaf_mlp_backward)(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters, const float *Ws,
                            const float *xs, const float *as, float *gy, float *gWs, float *gbs, double *gradSquares);
  /** The stack on bf16 products (W x, gz W, the weight gradients), everything else float32 (docs/precision.md). */
  void (*roaf_mlp_forward_bf16)(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters,
                                const float *Ws, const float *bs, float *xs, float *as);
  void (*roaf_mlp_backward_bf16)(idx L, idx B, idx N, float alpha, float beta, const roaf_filter *filters,
                                 const float *Ws, const float *xs, const float *as, float *gy, float *gWs, float *gbs,
                                 double *gradSquares);
  void (*roaf_cell_forward)(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                            const float *W, const float *U, const float *b, float *hs, float *as);
  void (*roaf_cell_backward)(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f, const float *xs,
                             const float *W, const float *U, const float *hs, const float *as, float *ghs, float *gzs,
                             float *gW, float *gU, float *gb, float *gh0, float *gxs, int lastStepOnly);
  /** The cell on bf16 products (W h, gz W, the weight gradients), everything else float32 (docs/precision.md). */
  void (*roaf_cell_forward_bf16)(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                                 const float *xs, const float *W, const float *U, const float *b, float *hs, float *as);
  void (*roaf_cell_backward_bf16)(idx T, idx B, idx D, idx N, float alpha, float beta, const roaf_filter *f,
                                  const float *xs, const float *W, const float *U, const float *hs, const float *as,
                                  float *ghs, float *gzs, float *gW, float *gU, float *gb, float *gh0, float *gxs,
                                  int lastStepOnly);
  void (*lstm_forward)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *b,
                       float *hs, float *cs, float *gates);
  void (*lstm_backward)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                        const float *cs, const float *gates, float *ghs, float *gGates, float *gWx, float *gWh,
                        float *gb, float *gxs, int lastStepOnly);
  void (*gru_forward)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *bx,
                      const float *bh, float *hs, float *gates, float *hn);
  void (*gru_backward)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh, const float *hs,
                       const float *gates, const float *hn, float *ghs, float *gGates, float *gHn, float *gWx,
                       float *gWh, float *gbx, float *gbh, float *gxs, int lastStepOnly);
  /** The LSTM and GRU on bf16 products (every matrix product), everything else float32 (docs/precision.md). */
  void (*lstm_forward_bf16)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                            const float *b, float *hs, float *cs, float *gates);
  void (*lstm_backward_bf16)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                             const float *hs, const float *cs, const float *gates, float *ghs, float *gGates,
                             float *gWx, float *gWh, float *gb, float *gxs, int lastStepOnly);
  void (*gru_forward_bf16)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                           const float *bx, const float *bh, float *hs, float *gates, float *hn);
  void (*gru_backward_bf16)(idx T, idx B, idx D, idx N, const float *xs, const float *Wx, const float *Wh,
                            const float *hs, const float *gates, const float *hn, float *ghs, float *gGates, float *gHn,
                            float *gWx, float *gWh, float *gbx, float *gbh, float *gxs, int lastStepOnly);
  double (*softmax_cross_entropy)(idx B, idx K, const float *logits, const int32_t *labels, float gradScale,
                                  float *grad, uint8_t *correct);
  double (*squared_error)(idx B, idx K, const float *pred, const float *target, float gradScale, float *grad);
  /** beta1, beta2 in double: their complements 1 - beta are formed before rounding (0.999f is not 0.999). */
  void (*adam_update)(idx n, float *params, const float *grads, float *m, float *v, float lr, double beta1,
                      double beta2, float eps, float weightDecay, double t);
  void (*sgd_update)(idx n, float *params, const float *grads, float *velocity, float lr, float momentum);
  /** Q of the Householder QR of `count` (N, N) float64 matrices `a` (consumed), into `q`: drawing dense filters. */
  void (*orthogonal_from_qr)(idx count, idx N, int signFix, double *a, double *q);
  /** One more factor J (consumed) of a Jacobian product's spectrum: docs/kernels.md, src/diagnostics. */
  void (*product_spectrum_push)(idx n, int first, double *J, double *reflectors, double *tau, double *lyapunovSums,
                                double *m, double *s, double *work);
} roaf_kernels;

extern const roaf_kernels roaf_kernels_portable;
#if defined(__x86_64__) || defined(_M_X64)
#define ROAF_X86 1
extern const roaf_kernels roaf_kernels_avx2;
extern const roaf_kernels roaf_kernels_avx512;
#endif

#endif
