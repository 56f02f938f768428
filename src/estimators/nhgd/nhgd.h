/* What the nhgd estimator offers beyond its ops: M^{-1} applied again after its solve, for the
 * preconditioner of other estimators (estimators/precond.h). */
#ifndef NHGD_ESTIMATORS_NHGD_NHGD_H
#define NHGD_ESTIMATORS_NHGD_NHGD_H

#include "estimators/estimator.h"

/* Collective: out = M^{-1} x (d entries, replicated; x and out must not overlap) with the M
 * that the estimator's solve of the current outer step completed, reusing what that solve
 * factored: bit for bit the u the solve would have returned for g = x. Only after that solve,
 * and only for an estimator created with ctx->precond = 1 (an NHGD_ERR_INTERNAL error
 * otherwise). No timer of its own (the caller's stage runs); the traffic of the kfac route is
 * charged to ctx->comm_bytes, as its solve's is. */
int nhgd_efim_reapply(nhgd_estimator *est, const double *x, double *out);

#endif
