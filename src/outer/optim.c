/* Outer optimisers (SGD, Adam) with step-size schedules; elementwise on this rank's v. */
#include <math.h>
#include <string.h>

#include "outer/engine.h"

static double outer_lr(const nhgd_solver_opts *o, double lr, int64_t k) {
  if (!strcmp(o->outer_schedule, "invsqrt")) return lr / sqrt(1.0 + o->outer_decay * k);
  if (!strcmp(o->outer_schedule, "inv")) return lr / (1.0 + o->outer_decay * k);
  return lr;
}

void nhgd_outer_step(const nhgd_solver_opts *o, double lr0, int64_t k, int64_t n, double *m,
                     double *s, double *v, const double *h) {
  const double lr = outer_lr(o, lr0, k);
  if (!strcmp(o->outer_opt, "adam")) {
    const double b1 = o->adam_beta1, b2 = o->adam_beta2;
    const double c1 = 1.0 - pow(b1, (double)(k + 1)), c2 = 1.0 - pow(b2, (double)(k + 1));
    for (int64_t j = 0; j < n; ++j) {
      m[j] = b1 * m[j] + (1.0 - b1) * h[j];
      s[j] = b2 * s[j] + (1.0 - b2) * h[j] * h[j];
      v[j] -= lr * (m[j] / c1) / (sqrt(s[j] / c2) + o->adam_eps);
    }
  } else {
    for (int64_t j = 0; j < n; ++j)
      v[j] -= lr * h[j];
  }
}
