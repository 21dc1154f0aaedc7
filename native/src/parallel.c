// How many threads a task gets, and row sweeps: the one place where the native backend decides how to use
// its threads (the pool, pool.c, only runs what it is given). Compiled once, not per instruction set.
//
// The policy. A kernel plans each parallel task with its size, the multiply-adds it costs and the independent
// units it splits into (roaf_parallel_plan), and the rules below pick its thread count. Their one aim: on a
// shared machine a second thread must never make a task slower than one thread would.
//  1. Size. Below roaf_min_parallel_work multiply-adds (2^22) a task runs on the calling thread: waking a
//     worker costs a few µs. Above it, one thread per roaf_min_parallel_work, at most one per unit, at most
//     the pool's size.
//  2. A pause after a poor parallel run. The pool measures each parallel run's speedup as (the caller's time
//     in the task + the workers' CPU time in it) / its wall time. Below 1.15, which is what a busy other core
//     looks like (a worker's share arrives late), every task runs on one thread for a pause of 1 ms, which
//     doubles after each further poor run (up to 1 s) and halves after each run above 1.3. A run posted to
//     sleeping workers is not judged (pool.c says why), and a new pool size starts afresh.
//  3. Long kinds of task are timed. CPU time cannot see everything: when the other core is given to another
//     virtual machine, two threads can take longer than one while both look busy. So the long tasks that
//     recur with the same shape every training step (row sweeps, the MLP's weight-gradient pass) are planned
//     with a kind, and each kind keeps its time per multiply-add on one thread and on several and uses the
//     faster; its first run is not measured (it touches fresh memory), its second runs on one thread. Each
//     time is the median of the last three runs that way, not a mean: a run the host disturbs is only ever
//     slower (2-7 times, now and then), and a mean let one such run move a kind to its slower choice for up to
//     256 runs (docs/native.md has the measurements). Two slow runs in three, a change that lasts, still move
//     it, and after a move the other way is probed again soon. Now and then it runs the other way to notice
//     when things change: a probe costs a run at the slower speed, so the pause between probes starts at 16
//     runs and doubles, up to 256, while probes confirm the choice by 30 %; a probe faster than the choice is
//     repeated at once (up to three in a row), so that fresh runs, not one, decide.
// roaf_min_parallel_work = 0 is the test setting: every task splits as far as its units allow, and rules 2
// and 3 stay out of the way, so tests compare 1 and 2 threads for real.
//
// Whatever the thread count, results are the same bit for bit: work is divided into rows or columns that are
// computed the same way whoever computes them, and where partial sums meet (K-split products, bias-gradient
// sums) the chunks and the order they are added in depend on the shape only.

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "parallel.h"
#include "roaf_native.h"

double roaf_min_parallel_work = 1 << 22;

#define PAUSE_MIN_NS 1000000LL     // rule 2: the first pause
#define PAUSE_MAX_NS 1000000000LL  // rule 2: the longest
#define POOR_SPEEDUP 1.15          // rule 2: a parallel run below this starts a pause
#define GOOD_SPEEDUP 1.3           // rule 2: a run above this halves the next pause
#define PROBE_RUNS 16              // rule 3: runs between probes, at first
#define PROBE_RUNS_MAX 256         // rule 3: at most
#define PROBE_CLEAR_MARGIN 1.3     // rule 3: a probe this much slower than the choice confirms it
#define KINDS 32                   // rule 3: kinds timed (a few per instruction set); later kinds are not

static inline idx min_idx(idx a, idx b) { return a < b ? a : b; }
static inline idx max_idx(idx a, idx b) { return a > b ? a : b; }
static inline idx round_up(idx a, idx m) { return (a + m - 1) / m * m; }

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// ---- rule 2: the pause after poor parallel runs (state of the calling thread only) ----

static long long serial_until_ns;          // while now < this, tasks run on one thread; 0: no pause
static long long pause_ns = PAUSE_MIN_NS;  // the next pause

void roaf_parallel_judge(double speedup) {
  if (roaf_min_parallel_work <= 0) return;
  if (speedup < POOR_SPEEDUP) {
    serial_until_ns = now_ns() + pause_ns;
    if (pause_ns < PAUSE_MAX_NS) pause_ns *= 2;
  } else if (speedup > GOOD_SPEEDUP && pause_ns > PAUSE_MIN_NS) {
    pause_ns /= 2;
  }
}

void roaf_parallel_reset(void) {
  serial_until_ns = 0;
  pause_ns = PAUSE_MIN_NS;
}

int roaf_pool_available_threads(void) {
  int threads = roaf_pool_threads();
  if (threads > 1 && serial_until_ns != 0 && roaf_min_parallel_work > 0) {
    if (now_ns() < serial_until_ns) return 1;
    serial_until_ns = 0;
  }
  return threads;
}

// ---- rule 3: long kinds of task, timed ----

#define RECENT_RUNS 3  // rule 3: a choice's time is the median of its last three runs

typedef struct {
  const void *kind;
  double recent[2][RECENT_RUNS];  // ns per multiply-add of the last runs on one thread, on several (a ring)
  int measured[2];                // runs measured on one thread, on several (at most RECENT_RUNS)
  int next[2];                    // where each ring's next run goes
  int runs;                       // the first run is not measured: it touches fresh memory
  int untilProbe;                 // runs before the next probe
  int interval;                   // runs between probes
  int probing;                    // the current run is a probe, on cost index probing - 1
  int choice;                     // the way chosen by the last run that was not a probe (1: several)
  int streak;                     // probes in a row (a probe faster than the choice is repeated)
} kind_record;

static kind_record kinds[KINDS];  // kernels are called from one JavaScript thread

/** The record of tasks of this kind, or NULL when the table is full. */
static kind_record *record_for(const void *kind) {
  for (int i = 0; i < KINDS; i++) {
    if (kinds[i].kind == kind) return &kinds[i];
    if (kinds[i].kind == NULL) {
      kinds[i].kind = kind;
      return &kinds[i];
    }
  }
  return NULL;
}

/** ns per multiply-add on one thread (several = 0) or several: the median of the last runs (the lower of two). */
static double kind_cost(const kind_record *c, int several) {
  const double *r = c->recent[several];
  int n = c->measured[several];
  if (n <= 1) return r[0];
  if (n == 2) return r[0] < r[1] ? r[0] : r[1];
  double lo = r[0] < r[1] ? r[0] : r[1], hi = r[0] < r[1] ? r[1] : r[0];
  return r[2] < lo ? lo : r[2] > hi ? hi : r[2];
}

/** Rule 3's choice for the next task of a kind, between 1 and `available` (> 1) threads. */
static int choose_threads(kind_record *c, int available) {
  if (c->runs++ < 1) return available;
  if (c->measured[0] == 0) {  // measure one thread first: the first runs of a training loop are its warm-up
    c->untilProbe = c->interval = PROBE_RUNS;
    return 1;
  }
  if (c->measured[1] == 0) {
    c->choice = 1;
    return available;
  }
  int several = kind_cost(c, 1) < kind_cost(c, 0);
  if (several != c->choice) {  // the choice's own runs got slower: look at the other way again soon
    c->choice = several;
    c->untilProbe = c->interval = PROBE_RUNS;
  }
  if (--c->untilProbe <= 0) {
    several = !several;
    c->probing = 1 + several;
  }
  return several ? available : 1;
}

/** Threads for the next task of a kind that rules 1 and 2 allow `available` threads. */
static int timed_threads(kind_record *c, int available) {
  if (c != NULL) c->probing = 0;
  if (available <= 1 || c == NULL || roaf_min_parallel_work <= 0) return available;
  return choose_threads(c, available);
}

/** Adds a run's cost (ns per multiply-add) on nt threads to its kind's record; schedules the next probe. */
static void record_cost(kind_record *c, int nt, double cost) {
  if (c->runs <= 1) return;
  int several = nt > 1;
  c->recent[several][c->next[several]] = cost;
  c->next[several] = (c->next[several] + 1) % RECENT_RUNS;
  if (c->measured[several] < RECENT_RUNS) c->measured[several]++;
  if (c->probing) {
    int probed = c->probing - 1;
    double chosen = kind_cost(c, !probed);
    if (cost > PROBE_CLEAR_MARGIN * chosen) {  // the choice stands, clearly: probe less often
      c->interval = c->interval * 2 < PROBE_RUNS_MAX ? c->interval * 2 : PROBE_RUNS_MAX;
      c->untilProbe = c->interval;
      c->streak = 0;
    } else if (cost < chosen && kind_cost(c, probed) >= chosen && ++c->streak < RECENT_RUNS) {
      c->untilProbe = 1;  // a faster run than the choice's: probe again at once, so the median is of fresh runs
    } else {
      c->untilProbe = c->interval = PROBE_RUNS;
      c->streak = 0;
    }
  }
}

/** Records how long a task of `work` multiply-adds took on nt threads since `start`. */
static void timed_record(kind_record *c, int nt, long long start, double work) {
  if (c == NULL || work <= 0) return;
  record_cost(c, nt, (double)(now_ns() - start) / work);
}

void roaf_simulate_thread_choice(const double *costs, idx runs, int *threads) {
  kind_record c = {.kind = costs};
  for (idx i = 0; i < runs; i++) {
    c.probing = 0;
    threads[i] = choose_threads(&c, 2);
    record_cost(&c, threads[i], costs[2 * i + (threads[i] > 1)]);
  }
}

// ---- planning and running ----

roaf_plan roaf_parallel_plan(const void *kind, double work, idx units) {
  roaf_plan plan = {.threads = 1, .record = kind != NULL ? record_for(kind) : NULL, .work = work};
  int nt = roaf_pool_available_threads();      // rule 2
  if (nt > 1 && roaf_min_parallel_work > 0) {  // rule 1
    if (work < roaf_min_parallel_work) nt = 1;
    else if (work / roaf_min_parallel_work < nt) nt = (int)(work / roaf_min_parallel_work);
  }
  if (units < nt) nt = (int)units;
  plan.threads = timed_threads(plan.record, nt < 1 ? 1 : nt);  // rule 3
  return plan;
}

void roaf_parallel_run(roaf_plan *plan, roaf_task_fn fn, void *arg) {
  long long start = now_ns();
  roaf_pool_run(fn, arg, plan->threads);
  timed_record(plan->record, plan->threads, start, plan->work);
}

// ---- row sweeps: rows split between threads once, re-balanced by stealing ----
//
// A sweep runs `steps` dependent steps (layers or time steps) over independent rows. Each thread takes a slot
// of rows and runs it through every step, with no synchronisation between threads per step. Within a step,
// the owner claims its rows a block (`align` rows) at a time, so a thread that runs out of work can steal,
// without waiting for anyone, the upper rows that another slot's owner has not begun in its current step:
// those rows move to a new slot, from that step on. A thread whose core is busy with another process thus
// keeps fewer rows instead of keeping the others waiting, even while it is descheduled. Rows are computed the
// same way whoever computes them, so results are identical on any number of threads.

#define SWEEP_SLOTS 64
#define LOCAL_ALIGN 64

typedef struct {
  _Alignas(64) atomic_int lock;  // a cache line per slot: owners claim rows often, each in its own slot
  int owner;                     // the thread running it, or -1 (not taken yet)
  idx lo, hi;                    // its rows (hi shrinks when a thief takes the upper ones)
  idx step;                      // the step its rows are in
  idx cursor;                    // rows [lo, cursor) are claimed in that step
} sweep_slot;

typedef struct {
  roaf_sweep_fn fn;
  void *task;
  idx steps, align;
  int count;              // slots in use
  atomic_int lock;        // held to take a slot (rare); an owner claiming its rows takes only its slot's lock
  size_t local_size;      // bytes of each thread's local memory
  size_t local_stride;    // the same, rounded up to a cache line
  unsigned char *locals;  // (threads, local_stride), after the slots in the same scratch buffer
  sweep_slot slots[SWEEP_SLOTS];
} row_sweep;

static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void spin_lock(atomic_int *l) {
  while (atomic_exchange_explicit(l, 1, memory_order_acquire)) spin_pause();
}

static void spin_unlock(atomic_int *l) { atomic_store_explicit(l, 0, memory_order_release); }

/** Runs slot k, owned by thread tid, until its rows have done every step or it has been taken over. */
static void sweep_own(row_sweep *sw, int tid, int k, void *local) {
  sweep_slot *s = &sw->slots[k];
  for (;;) {
    spin_lock(&s->lock);
    if (s->owner == tid && s->cursor >= s->hi) {  // the owner has done every block of this step
      s->step++;
      s->cursor = s->lo;
    }
    if (s->owner != tid || s->step >= sw->steps || s->lo >= s->hi) {
      spin_unlock(&s->lock);
      return;
    }
    idx step = s->step, r0 = s->cursor, r1 = min_idx(r0 + sw->align, s->hi), lo = s->lo, hi = s->hi;
    s->cursor = r1;
    spin_unlock(&s->lock);
    sw->fn(sw->task, local, tid, step, r0, r1, lo, hi);
  }
}

/** Where a thief would split slot s (locked): the upper half of its rows, or what is unclaimed of it. */
static idx steal_split(const row_sweep *sw, const sweep_slot *s) {
  return max_idx(s->cursor, s->lo + round_up((s->hi - s->lo) / 2, sw->align));
}

/**
 * Takes a slot for thread tid: an untaken one of the initial split, else rows stolen from the slot that would
 * give the most work. Returns the slot, -1 when no work is left to take, -2 when some may be soon (a slot
 * whose owner is in the last block of a step with steps left: its rows become claimable at the next step).
 */
static int sweep_take(row_sweep *sw, int tid) {
  spin_lock(&sw->lock);
  int taken = -1, later = 0, victim = -1, spare = -1;
  double most = 0;
  for (int i = 0; i < sw->count && taken < 0; i++) {
    sweep_slot *s = &sw->slots[i];
    spin_lock(&s->lock);
    if (s->owner < 0) {
      s->owner = tid;
      taken = i;
    } else if (s->step >= sw->steps || s->lo >= s->hi) {
      if (spare < 0) spare = i;  // finished, and its owner has left it: reusable
    } else {
      idx mid = steal_split(sw, s);
      double work = s->hi - mid >= sw->align ? (double)(s->hi - mid) * (double)(sw->steps - s->step) : 0;
      if (work > most) {
        most = work;
        victim = i;
      }
      if (s->hi - s->lo >= 2 * sw->align && s->step + 1 < sw->steps) later = 1;
    }
    spin_unlock(&s->lock);
  }
  if (taken < 0 && victim >= 0 && (spare >= 0 || sw->count < SWEEP_SLOTS)) {
    sweep_slot *v = &sw->slots[victim], *t = &sw->slots[spare >= 0 ? spare : sw->count];
    spin_lock(&v->lock);
    idx mid = steal_split(sw, v);
    if (v->step < sw->steps && v->hi - mid >= sw->align) {
      if (spare >= 0) spin_lock(&t->lock);
      else atomic_init(&t->lock, 1);
      t->owner = tid;
      t->lo = t->cursor = mid;
      t->hi = v->hi;
      t->step = v->step;
      v->hi = mid;
      spin_unlock(&t->lock);
      taken = spare >= 0 ? spare : sw->count++;
    }
    spin_unlock(&v->lock);
  }
  spin_unlock(&sw->lock);
  return taken >= 0 ? taken : later ? -2 : -1;
}

/**
 * A thread's part of a sweep: slots and stolen rows until none are left. When rows may become stealable soon
 * it retries for a few µs, no longer: a slot owner that keeps its rows that long is descheduled, and the pool
 * then sees that the thread waited (its measure of what parallel runs achieve must not count waiting as work).
 */
static void sweep_run(void *p, int tid, int nt) {
  (void)nt;
  row_sweep *sw = p;
  void *local = sw->locals + (size_t)tid * sw->local_stride;
  memset(local, 0, sw->local_size);
  for (int retries = 0;;) {
    int k = sweep_take(sw, tid);
    if (k == -1 || (k == -2 && ++retries > 32)) return;
    if (k >= 0) {
      sweep_own(sw, tid, k, local);
      retries = 0;
    } else {
      for (int i = 0; i < 64; i++) spin_pause();
    }
  }
}

void roaf_row_sweep(roaf_sweep_fn fn, void *task, size_t local_size, idx steps, idx rows, idx align, double work) {
  roaf_plan plan = roaf_parallel_plan((const void *)fn, work, (rows + align - 1) / align);
  int nt = plan.threads;
  size_t stride = (local_size + LOCAL_ALIGN - 1) / LOCAL_ALIGN * LOCAL_ALIGN;
  size_t bytes = sizeof(row_sweep) + (size_t)nt * stride;
  row_sweep *sw = (row_sweep *)roaf_scratch(0, SCRATCH_SWEEP, bytes / sizeof(float) + 1);
  sw->fn = fn;
  sw->task = task;
  sw->steps = steps;
  sw->align = align;
  sw->local_size = local_size;
  sw->local_stride = stride;
  sw->locals = (unsigned char *)(sw + 1);
  idx chunk = chunk_for(rows, nt, 1, align);
  sw->count = (int)((rows + chunk - 1) / chunk);
  atomic_init(&sw->lock, 0);
  for (int i = 0; i < sw->count; i++) {
    sweep_slot *s = &sw->slots[i];
    atomic_init(&s->lock, 0);
    s->owner = -1;
    s->lo = s->cursor = i * chunk;
    s->hi = min_idx(rows, (i + 1) * chunk);
    s->step = 0;
  }
  roaf_parallel_run(&plan, sweep_run, sw);
}
