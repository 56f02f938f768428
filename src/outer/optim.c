/* Outer optimisers (SGD, Adam, lazy Adam) with step-size schedules; elementwise on this rank's
 * v (docs/algorithm.md 1, step 5). */
#include <math.h>
#include <string.h>

#include "outer/engine.h"

static double outer_lr(const nhgd_solver_opts *o, double lr, int64_t k) {
  if (!strcmp(o->outer_schedule, "invsqrt")) return lr / sqrt(1.0 + o->outer_decay * k);
  if (!strcmp(o->outer_schedule, "inv")) return lr / (1.0 + o->outer_decay * k);
  return lr;
}

/* The constants of one Adam step: lr_k, the betas, eps and the bias corrections of step k. */
typedef struct adam_step {
  double lr, b1, b2, eps, c1, c2;
} adam_step;

/* One entry of an Adam step. Adam and lazy Adam share it, so that on a dense h they agree bit
 * for bit. */
static inline void adam_entry(const adam_step *a, double *m, double *s, double *v, double h) {
  *m = a->b1 * *m + (1.0 - a->b1) * h;
  *s = a->b2 * *s + (1.0 - a->b2) * h * h;
  *v -= a->lr * (*m / a->c1) / (sqrt(*s / a->c2) + a->eps);
}

void nhgd_outer_step(const nhgd_solver_opts *o, double lr0, int64_t k, int64_t n, double *m,
                     double *s, double *v, const double *h) {
  const double lr = outer_lr(o, lr0, k);
  const int lazy = !strcmp(o->outer_opt, "lazy-adam");
  if (lazy || !strcmp(o->outer_opt, "adam")) {
    const double b1 = o->adam_beta1, b2 = o->adam_beta2;
    const adam_step a = {
        lr, b1, b2, o->adam_eps, 1.0 - pow(b1, (double)(k + 1)), 1.0 - pow(b2, (double)(k + 1))};
    if (lazy) {
      /* Entries whose hypergradient is exactly 0 (rows a sampled cross term left out) keep m, s
       * and v; the bias corrections stay those of the global step k. A NaN is not 0: it reaches
       * v as with adam. */
      for (int64_t j = 0; j < n; ++j)
        if (h[j] != 0.0) adam_entry(&a, m + j, s + j, v + j, h[j]);
    } else {
      for (int64_t j = 0; j < n; ++j)
        adam_entry(&a, m + j, s + j, v + j, h[j]);
    }
  } else {
    for (int64_t j = 0; j < n; ++j)
      v[j] -= lr * h[j];
  }
}
