/* Conjugate gradients on replicated vectors, optionally preconditioned, for one or two
 * right-hand sides in lockstep (docs/algorithm.md 5.1): the kernel of cg's solve and of nbo's
 * two systems. The operator and the preconditioner are callbacks, so that the kernel is the
 * same for a distributed Hessian and for a dense test matrix; with two columns, one call of
 * the operator multiplies both (one pass, one reduction where the caller can). Every vector
 * is replicated and every decision is taken from replicated scalars, so all ranks take the
 * same path. */
#ifndef NHGD_ESTIMATORS_PCG_H
#define NHGD_ESTIMATORS_PCG_H

#include <stdint.h>

/* out (d x n, column-major, ld = d) = A X for the n columns of X (n >= 1). Collective when
 * the operator is. Returns 0 or an nhgd_status. */
typedef int (*nhgd_linop_fn)(void *arg, int n, const double *X, double *out);

typedef struct nhgd_pcg_stats {
  int iters;        /* iterations taken (the most of any column) */
  int64_t products; /* columns multiplied by A (the start's residual included) */
  int64_t precs;    /* columns multiplied by M^{-1} */
  double rel[2];    /* |r| / |b| of each column at the end (0 when b = 0) */
} nhgd_pcg_stats;

/* Solve A x_c = b_c for n (1 or 2) columns by at most Q iterations of conjugate gradients,
 * preconditioned by Minv when it is not NULL (z = M^{-1} r), from the start in X (d x n,
 * overwritten by the result).
 * start is a bit mask over the columns: bit c set, a general start of column c,
 * r_0 = b - A x_0 (one product, only when Q > 0); bit c clear, column c is zero on entry
 * (r_0 = b, no product). With one column: 0 (zero start) or 1 (general).
 * A column stops when |r| <= tol |b|; Q = 0 returns the start unchanged. A search direction
 * with p^T A p <= 0 or not finite is an NHGD_ERR_NUMERIC error naming who (e.g. "cg at outer
 * step 3") and the iteration. work: at least 6 d n doubles. st may be NULL. */
int nhgd_pcg(int64_t d, int n, nhgd_linop_fn A, void *Aarg, nhgd_linop_fn Minv, void *Marg,
             const double *B, double *X, int start, int Q, double tol, const char *who,
             double *work, nhgd_pcg_stats *st);

#endif
