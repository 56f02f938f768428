/* Outer optimisers (SGD, Adam) with step-size schedules; elementwise on this rank's v. */
#include <math.h>
#include <string.h>

#include "outer/engine.h"

static double outer_lr(const nhgd_options *o, int64_t k) {
  if (!strcmp(o->outer_schedule, "invsqrt")) return o->outer_lr / sqrt(1.0 + o->outer_decay * k);
  if (!strcmp(o->outer_schedule, "inv")) return o->outer_lr / (1.0 + o->outer_decay * k);
  return o->outer_lr;
}

void nhgd_outer_step(nhgd_engine *e, const double *h) {
  const nhgd_options *o = &e->opt;
  const double lr = outer_lr(o, e->k);
  if (!strcmp(o->outer_opt, "adam")) {
    const double b1 = o->adam_beta1, b2 = o->adam_beta2;
    const double c1 = 1.0 - pow(b1, (double)(e->k + 1)), c2 = 1.0 - pow(b2, (double)(e->k + 1));
    for (int64_t j = 0; j < e->p_local; ++j) {
      e->adam_m[j] = b1 * e->adam_m[j] + (1.0 - b1) * h[j];
      e->adam_s[j] = b2 * e->adam_s[j] + (1.0 - b2) * h[j] * h[j];
      e->v[j] -= lr * (e->adam_m[j] / c1) / (sqrt(e->adam_s[j] / c2) + o->adam_eps);
    }
  } else {
    for (int64_t j = 0; j < e->p_local; ++j)
      e->v[j] -= lr * h[j];
  }
}
