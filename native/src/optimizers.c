// The optimisers' updates, elementwise over all parameters (split by ranges when large): Adam with decoupled
// weight decay (AdamW; plain Adam when the decay is 0) and SGD with momentum.

#include "kernels_internal.h"

typedef struct {
  float *params, *m, *v;
  const float *grads;
  float lr, beta1, beta2, eps, wd, invC1, invC2, momentum;
  float oneMinusBeta1, oneMinusBeta2;  // formed in double: 1 - 0.999f is 1.3e-5 away from 0.001
} opt_args;

static void adam_range(void *p, idx lo, idx hi) {
  opt_args *o = p;
  vf b1 = vset1(o->beta1), b2 = vset1(o->beta2), c1 = vset1(o->oneMinusBeta1), c2 = vset1(o->oneMinusBeta2);
  vf ic1 = vset1(o->invC1), ic2 = vset1(o->invC2), eps = vset1(o->eps), lr = vset1(o->lr), lrwd = vset1(o->lr * o->wd);
  float *P = o->params + lo, *M = o->m + lo, *V = o->v + lo;
  const float *Gr = o->grads + lo;
  FOR_LANES(i, hi - lo, w) {
    vf g = loadw(Gr + i, w);
    vf m = vfma(b1, loadw(M + i, w), vmul(c1, g));
    vf v = vfma(b2, loadw(V + i, w), vmul(vmul(c2, g), g));
    storew(M + i, m, w);
    storew(V + i, v, w);
    vf step = vdiv(vmul(lr, vmul(m, ic1)), vadd(vsqrt(vmul(v, ic2)), eps));
    vf pv = loadw(P + i, w);
    storew(P + i, vsub(pv, vfma(lrwd, pv, step)), w);
  }
}

void k_adam_update(idx n, float *params, const float *grads, float *m, float *v, float lr, double beta1, double beta2,
                   float eps, float weightDecay, double t) {
  opt_args o = {.params = params,
                .m = m,
                .v = v,
                .grads = grads,
                .lr = lr,
                .beta1 = (float)beta1,
                .beta2 = (float)beta2,
                .oneMinusBeta1 = (float)(1.0 - beta1),
                .oneMinusBeta2 = (float)(1.0 - beta2),
                .eps = eps,
                .wd = weightDecay};
  o.invC1 = (float)(1.0 / (1.0 - pow(beta1, t)));
  o.invC2 = (float)(1.0 / (1.0 - pow(beta2, t)));
  parallel_range(adam_range, &o, n, 12);
}

static void sgd_range(void *p, idx lo, idx hi) {
  opt_args *o = p;
  vf mom = vset1(o->momentum), lr = vset1(o->lr);
  float *P = o->params + lo, *V = o->v + lo;
  const float *Gr = o->grads + lo;
  FOR_LANES(i, hi - lo, w) {
    vf vel = vfma(mom, loadw(V + i, w), loadw(Gr + i, w));
    storew(V + i, vel, w);
    storew(P + i, vnmadd(lr, vel, loadw(P + i, w)), w);
  }
}

void k_sgd_update(idx n, float *params, const float *grads, float *velocity, float lr, float momentum) {
  opt_args o = {.params = params, .v = velocity, .grads = grads, .lr = lr, .momentum = momentum};
  parallel_range(sgd_range, &o, n, 3);
}
