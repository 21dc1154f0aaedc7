// The persistent thread pool and per-thread scratch memory.
//
// Workers wait for a task by spinning for about 50 µs and then blocking on a condition variable: the spin
// keeps back-to-back kernels (a training step is thousands of them) free of wake-up latency, and the block
// keeps an idle pool from stealing a core that another process needs (a pool that spins forever turns a
// 0.2 s step into seconds when the other core is busy). The caller of roaf_pool_run works as thread 0.

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "roaf_native.h"

#define SPIN_NS 50000

typedef struct {
  pthread_mutex_t mutex;
  pthread_cond_t wake;      // workers wait here for a new task
  pthread_cond_t finished;  // the caller waits here for the last worker
  atomic_uint generation;   // incremented once per task
  atomic_int pending;       // workers that have not finished the current task
  roaf_task_fn fn;
  void *arg;
  int task_threads;         // threads taking part in the current task
  int threads;              // pool size including the caller
  int quit;
  pthread_t handles[ROAF_MAX_THREADS];
} pool_t;

static pool_t pool = {
  .mutex = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .finished = PTHREAD_COND_INITIALIZER,
  .threads = 1,
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *worker_main(void *p) {
  int tid = (int)(intptr_t)p;
  unsigned seen = atomic_load(&pool.generation);
  for (;;) {
    long long start = now_ns();
    int spins = 0;
    while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) {
      cpu_relax();
      if (++spins % 64 == 0 && now_ns() - start > SPIN_NS) {
        pthread_mutex_lock(&pool.mutex);
        while (atomic_load(&pool.generation) == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mutex);
        pthread_mutex_unlock(&pool.mutex);
        break;
      }
    }
    if (pool.quit) return NULL;
    seen = atomic_load(&pool.generation);
    if (tid < pool.task_threads) pool.fn(pool.arg, tid, pool.task_threads);
    if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&pool.mutex);
      pthread_cond_signal(&pool.finished);
      pthread_mutex_unlock(&pool.mutex);
    }
  }
}

int roaf_pool_threads(void) { return pool.threads; }

static void stop_workers(void) {
  pthread_mutex_lock(&pool.mutex);
  pool.quit = 1;
  atomic_fetch_add(&pool.generation, 1);
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
  pool.task_threads = nthreads;
  atomic_store(&pool.pending, pool.threads - 1);
  pthread_mutex_lock(&pool.mutex);
  atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mutex);
  fn(arg, 0, nthreads);
  long long start = now_ns();
  int spins = 0;
  while (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0) {
    cpu_relax();
    if (++spins % 64 == 0 && now_ns() - start > SPIN_NS) {
      pthread_mutex_lock(&pool.mutex);
      while (atomic_load(&pool.pending) != 0) pthread_cond_wait(&pool.finished, &pool.mutex);
      pthread_mutex_unlock(&pool.mutex);
      break;
    }
  }
}

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

/** Work (multiply-adds) below which a kernel stays on one thread; see kernels.c threads_for. */
double roaf_min_parallel_work = 1 << 18;
