// The parallel runtime the kernels share: how many threads a task gets (the policy, parallel.c), the work
// queues threads claim work from, and row sweeps (many dependent steps over independent rows). Compiled once,
// not per instruction set: nothing here does arithmetic on the data. docs/native.md describes the policy.

#ifndef ROAF_PARALLEL_H
#define ROAF_PARALLEL_H

#include <stdatomic.h>
#include <stddef.h>

#include "roaf_native.h"

/**
 * Work (multiply-adds) below which a task runs on one thread: waking a worker costs a few µs. 0 is the test
 * setting: every task splits as far as its units allow, and no measurement overrides that (see parallel.c).
 */
extern double roaf_min_parallel_work;

/**
 * Test hook: rule 3 (parallel.c) choosing between one thread and two for a kind whose run i would cost
 * costs[2i] on one thread and costs[2i + 1] on two; threads[i] receives the choice for run i.
 */
void roaf_simulate_thread_choice(const double *costs, idx runs, int *threads);

// ---- work queues ----

/**
 * Work in chunks, claimed dynamically by whichever threads take part: a thread whose core is busy with another
 * process simply claims fewer chunks, and the caller alone can complete any task.
 */
typedef struct {
  atomic_long next;
  idx total, chunk;
} work_queue;

static inline void queue_init(work_queue *q, idx total, idx chunk) {
  atomic_init(&q->next, 0);
  q->total = total;
  q->chunk = chunk < 1 ? 1 : chunk;
}

/** Claims the next chunk [*lo, *hi); 0 when none is left. */
static inline int queue_claim(work_queue *q, idx *lo, idx *hi) {
  idx start = atomic_fetch_add_explicit(&q->next, q->chunk, memory_order_relaxed);
  if (start >= q->total) return 0;
  *lo = start;
  *hi = start + q->chunk < q->total ? start + q->chunk : q->total;
  return 1;
}

/** Chunks of `total` for nt threads: about `per_thread` chunks each, multiples of `align`. */
static inline idx chunk_for(idx total, int nt, int per_thread, idx align) {
  idx slices = nt <= 1 ? 1 : (idx)nt * per_thread;
  idx chunk = ((total > 1 ? total : 1) + slices - 1) / slices;
  return (chunk + align - 1) / align * align;
}

// ---- planning and running a parallel task ----

/**
 * The threads a task runs on, chosen by the policy before the task is set up (its queues' chunks may depend on
 * them). `threads` is the caller's to read; the other fields are the policy's.
 */
typedef struct {
  int threads;
  void *record;  // the timing record of the task's kind, or NULL
  int probing;   // this run tries the thread count its kind does not prefer
  double work;
} roaf_plan;

/**
 * Plans a task of `work` multiply-adds that splits into `units` independent pieces. `kind` (any address that
 * identifies the kind of task, e.g. its function) asks for the wall-time check of long tasks that recur with
 * the same shape (rule 3 in parallel.c); NULL for others.
 */
roaf_plan roaf_parallel_plan(const void *kind, double work, idx units);

/**
 * Runs fn on plan->threads threads (roaf_pool_run) and records what the run tells the policy. A task planned
 * on one thread may instead be run directly, without this, unless it has a kind.
 */
void roaf_parallel_run(roaf_plan *plan, roaf_task_fn fn, void *arg);

/** Called by the pool after a parallel run that could be judged: (caller's time + workers' CPU time) / wall. */
void roaf_parallel_judge(double speedup);

/** Called by the pool when its size changes: the judgement of parallel runs starts afresh. */
void roaf_parallel_reset(void);

// ---- row sweeps ----

/**
 * One block of a row sweep: step `step` on rows [r0, r1) of the slot whose rows are [lo, hi) now (what a step
 * prefetches for). `local` is the thread's own memory of the size given to roaf_row_sweep, zeroed when the
 * thread joins the sweep, for what it keeps between blocks.
 */
typedef void (*roaf_sweep_fn)(void *task, void *local, int tid, idx step, idx r0, idx r1, idx lo, idx hi);

/**
 * Runs `steps` dependent steps over `rows` independent rows, in blocks of `align` rows: each thread takes a
 * slot of rows through every step, with no synchronisation per step, and threads that run out of work steal
 * rows (parallel.c). `work` (multiply-adds) sizes the thread count; the sweep's kind is `fn`.
 */
void roaf_row_sweep(roaf_sweep_fn fn, void *task, size_t local_size, idx steps, idx rows, idx align, double work);

#endif
