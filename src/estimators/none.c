/* Estimator `none`: u = 0, so the hypergradient is grad_v f alone. A baseline for timing the
 * inner loop without any curvature work, not a method. */
#include <string.h>

#include "estimators/estimator.h"

static int none_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  memset(u, 0, (size_t)est->ctx->d * sizeof(double));
  return NHGD_OK;
}

const nhgd_estimator_desc nhgd_estimator_none = {.name = "none", .ops = {.solve = none_solve}};
