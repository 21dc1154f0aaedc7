// The machine's arithmetic peak, measured: what `roaf info --peak` and the benchmarks quote beside their FLOPS.

#include <time.h>

#include "kernels_internal.h"

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/**
 * Float32 FLOPS that this thread's widest fused multiply-add sustains: 12 independent accumulators (more than
 * latency x throughput on current x86 cores) updated in a loop for about `seconds`, with nothing else to do.
 * It is the ceiling of every product here (benchmarks quote it beside their GFLOPS): a virtual machine's CPU
 * may have narrower or fewer FMA units than its model name suggests.
 */
double k_fma_peak(double seconds) {
  enum { CHAINS = 12, INNER = 4096 };
  vf acc[CHAINS];
  for (int c = 0; c < CHAINS; c++) acc[c] = vset1(1.0f + 1e-3f * (float)c);
  volatile float opaque[2] = {0.9999999f, 1e-7f};  // values the compiler cannot fold into the loop
  vf m = vset1(opaque[0]), a = vset1(opaque[1]);
  long long start = now_ns(), end = start + (long long)(seconds * 1e9), now = start;
  double iterations = 0;
  do {
    for (int i = 0; i < INNER; i++) {
#pragma GCC unroll 12
      for (int c = 0; c < CHAINS; c++) acc[c] = vfma(acc[c], m, a);
    }
    iterations += INNER;
    now = now_ns();
  } while (now < end);
  float sink = 0.0f;  // keep every lane of every accumulator alive
  float lanes[VL];
  for (int c = 0; c < CHAINS; c++) {
    vstore(lanes, acc[c]);
    for (int l = 0; l < VL; l++) sink += lanes[l];
  }
  volatile float keep = sink;
  (void)keep;
  return iterations * CHAINS * VL * 2.0 / ((double)(now - start) * 1e-9);
}
