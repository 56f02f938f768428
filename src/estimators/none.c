/* Estimator `none`: u = 0, so the hypergradient is grad_v f alone. A baseline for timing the
 * inner loop without any curvature work, not a method. */
#include <string.h>

#include "outer/engine.h"

static int none_solve(nhgd_estimator *est, nhgd_engine *e, const double *theta, const double *g,
                      double *u) {
  memset(u, 0, (size_t)e->d * sizeof(double));
  return NHGD_OK;
}

int nhgd_estimator_none_init(nhgd_estimator *est, nhgd_engine *e) {
  est->solve = none_solve;
  est->needs_observe = 0;
  return NHGD_OK;
}
