// The persistent thread pool and per-thread scratch memory: the mechanism that runs a task on several threads.
// How many threads a task should get is decided elsewhere (parallel.c, the policy); the pool only measures
// what each parallel run achieved and reports it there.
//
// Workers wait for a task by spinning for about 50 µs and then blocking on a condition variable: the spin
// keeps back-to-back kernels (a training step is thousands of them) free of wake-up latency, and the block
// keeps an idle pool from stealing a core that another process needs (a pool that spins forever turns a
// 0.2 s step into seconds when the other core is busy). The caller of roaf_pool_run works as thread 0.
//
// On a shared machine a second thread must never make things slower, so tasks hand out their work in chunks
// from queues and the caller never waits for a worker that has not started: it finishes the work itself.
//
// ROAF_SINGLE_THREAD (the WebAssembly build, native/wasm/) compiles the pool away: one thread, the caller, runs
// every task; the kernels and the policy (parallel.c) are the same code, planning one thread.

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "parallel.h"
#include "roaf_native.h"

#if defined(ROAF_SINGLE_THREAD)

int roaf_pool_threads(void) { return 1; }

void roaf_pool_set_threads(int n) { (void)n; }

void roaf_pool_run(roaf_task_fn fn, void *arg, int nthreads) {
  (void)nthreads;
  fn(arg, 0, 1);
}

#else

#include <pthread.h>

#define SPIN_NS 50000

// The task word, one atomic 64-bit value: generation << 32 | CLOSED | threads << 16 | joined. A task is
// posted by storing a new generation with the thread count it asks for; a worker joins it by incrementing
// `joined` (a compare-and-swap that fails once the caller has set CLOSED, or once a newer task is posted).
// When the caller has done what it could, it closes the task and waits only for the workers that joined: work
// is claimed in chunks from queues, so any subset of threads completes a task, and a worker that is asleep or
// descheduled never delays the caller. Everything a worker decides on comes from one load of this word.
#define CLOSED (1ull << 31)
#define THREADS_SHIFT 16
#define JOINED_MASK 0xffffull

typedef struct {
  pthread_mutex_t mutex;
  pthread_cond_t wake;      // workers wait here for a new task
  pthread_cond_t finished;  // the caller waits here for the workers that joined
  _Atomic unsigned long long task;
  atomic_uint done;  // joined workers that have finished the current task
  roaf_task_fn fn;   // the current task: written before it is posted, read by workers that joined it
  void *arg;
  int threads;                // pool size including the caller
  unsigned start_generation;  // the task generation when the workers were created
  atomic_int quit;
  pthread_t handles[ROAF_MAX_THREADS];
  _Atomic long long worker_cpu_ns;  // CPU time the joined workers spent in the current task
  atomic_int sleepers;              // workers blocked on `wake`: a task posted to them starts a wake-up latency late
} pool_t;

static pool_t pool = {
    .mutex = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .finished = PTHREAD_COND_INITIALIZER,
    .threads = 1,
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline long long clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static inline unsigned generation_of(unsigned long long task) { return (unsigned)(task >> 32); }

static inline int threads_of(unsigned long long task) { return (int)((task >> THREADS_SHIFT) & 0xff); }

static void *worker_main(void *p) {
  int tid = (int)(intptr_t)p;
  // The generation current when the worker was created, not when it first runs: a task posted in between
  // must not look already seen.
  unsigned seen = pool.start_generation;
  for (;;) {
    long long start = now_ns();
    int spins = 0;
    while (generation_of(atomic_load_explicit(&pool.task, memory_order_acquire)) == seen && !pool.quit) {
      cpu_relax();
      if (++spins % 64 == 0 && now_ns() - start > SPIN_NS) {
        pthread_mutex_lock(&pool.mutex);
        atomic_fetch_add(&pool.sleepers, 1);
        while (generation_of(atomic_load(&pool.task)) == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mutex);
        atomic_fetch_sub(&pool.sleepers, 1);
        pthread_mutex_unlock(&pool.mutex);
        break;
      }
    }
    if (pool.quit) return NULL;
    unsigned long long t = atomic_load_explicit(&pool.task, memory_order_acquire);
    seen = generation_of(t);
    // Join unless the task is closed or asked for fewer threads.
    int joined = 0;
    while (!(t & CLOSED) && tid < threads_of(t)) {
      if (atomic_compare_exchange_weak_explicit(&pool.task, &t, t + 1, memory_order_acq_rel, memory_order_acquire)) {
        joined = 1;
        break;
      }
      if (generation_of(t) != seen) break;  // a newer task: handle it on the next turn
    }
    if (!joined) continue;
    long long cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    pool.fn(pool.arg, tid, threads_of(t));
    atomic_fetch_add(&pool.worker_cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu);
    pthread_mutex_lock(&pool.mutex);
    atomic_fetch_add(&pool.done, 1);
    pthread_cond_signal(&pool.finished);
    pthread_mutex_unlock(&pool.mutex);
  }
}

int roaf_pool_threads(void) { return pool.threads; }

static void stop_workers(void) {
  pthread_mutex_lock(&pool.mutex);
  pool.quit = 1;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  for (int i = 1; i < pool.threads; i++) pthread_join(pool.handles[i], NULL);
  pool.quit = 0;
  pool.threads = 1;
}

void roaf_pool_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > ROAF_MAX_THREADS) n = ROAF_MAX_THREADS;
  if (n == pool.threads) return;
  stop_workers();
  roaf_parallel_reset();  // a new pool size starts its speedup judgement afresh
  pool.start_generation = generation_of(atomic_load(&pool.task));
  for (int i = 1; i < n; i++) {
    if (pthread_create(&pool.handles[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "roaf: could not start a worker thread; using %d\n", i);
      n = i;
      break;
    }
  }
  pool.threads = n;
}

void roaf_pool_run(roaf_task_fn fn, void *arg, int nthreads) {
  if (nthreads > pool.threads) nthreads = pool.threads;
  if (nthreads <= 1) {
    fn(arg, 0, 1);
    return;
  }
  pool.fn = fn;
  pool.arg = arg;
  atomic_store(&pool.done, 0);
  atomic_store(&pool.worker_cpu_ns, 0);
  unsigned long long next = (unsigned long long)(generation_of(atomic_load(&pool.task)) + 1) << 32;
  pthread_mutex_lock(&pool.mutex);
  // Workers asleep now (the pool was idle or running single-threaded) join after a wake-up latency that says
  // nothing about whether parallel runs pay: such a run is not judged. The woken workers then spin, so the
  // next run is a fair trial. Judging it would trap the pool: serial runs let the workers fall asleep, the
  // next trial looks poor, and the serial pause doubles.
  int judged = atomic_load(&pool.sleepers) == 0;
  atomic_store_explicit(&pool.task, next | (unsigned long long)nthreads << THREADS_SHIFT, memory_order_release);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  long long start = now_ns();
  fn(arg, 0, nthreads);
  long long own = now_ns() - start;
  unsigned joined = (unsigned)(atomic_fetch_or(&pool.task, CLOSED) & JOINED_MASK);
  long long waitStart = now_ns();
  int spins = 0;
  while (atomic_load_explicit(&pool.done, memory_order_acquire) != joined) {
    cpu_relax();
    if (++spins % 64 == 0 && now_ns() - waitStart > SPIN_NS) {
      pthread_mutex_lock(&pool.mutex);
      while (atomic_load(&pool.done) != joined) pthread_cond_wait(&pool.finished, &pool.mutex);
      pthread_mutex_unlock(&pool.mutex);
      break;
    }
  }
  long long elapsed = now_ns() - start;
  if (judged)
    roaf_parallel_judge((double)(own + atomic_load(&pool.worker_cpu_ns)) / (double)(elapsed > 0 ? elapsed : 1));
}

#endif  // ROAF_SINGLE_THREAD

// ---- scratch ----

typedef struct {
  float *data;
  size_t capacity;  // floats
} scratch_t;

static scratch_t scratch[ROAF_MAX_THREADS][SCRATCH_SLOTS];

float *roaf_scratch(int tid, int slot, size_t count) {
  scratch_t *s = &scratch[tid][slot];
  if (s->capacity < count) {
    size_t capacity = count + count / 4 + 1024;  // headroom so slowly growing sizes do not reallocate often
    free(s->data);
    s->data = NULL;
    s->capacity = 0;
    void *p = NULL;
    if (posix_memalign(&p, 64, capacity * sizeof(float)) != 0) {
      fprintf(stderr, "roaf: out of memory allocating %zu bytes of scratch\n", capacity * sizeof(float));
      abort();
    }
    s->data = p;
    s->capacity = capacity;
  }
  return s->data;
}
