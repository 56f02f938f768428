/* Shared pieces of the baseline estimators cg, neumann and soba (docs/algorithm.md 5): the
 * distributed Hessian-vector product of the inner objective, the minibatches it is taken
 * over, and their shared options. */
#ifndef NHGD_ESTIMATORS_BASELINE_H
#define NHGD_ESTIMATORS_BASELINE_H

#include <stdint.h>

#include "estimators/estimator.h"

/* The shared block (nhgd_hvp_options): --hvp-steps and --hvp-batch. */
typedef struct nhgd_hvp_opts {
  int steps;     /* cg: CG iterations Q; neumann: terms Q of the series */
  int64_t batch; /* rows per Hessian-vector product (0: all) */
} nhgd_hvp_opts;

/* Hessian-vector products of the inner objective over a minibatch S of B global rows:
 *   H_S x = (1/B) sum_{i in S} w_i Hess l_i(theta) x + Hess R(theta) x,
 * each rank summing over the rows of S it owns, one MPI_Allreduce of d doubles. */
typedef struct nhgd_hvp {
  int64_t d;
  int64_t batch; /* rows per drawn minibatch (0: all training rows) */
  int *rows;     /* local rows of the current draw */
  int nb;        /* how many */
  double *hdiag; /* d: diagonal of Hess R at the theta of the last nhgd_hvp_point */
  double *sum;   /* d + 1: local product, then its sum over ranks, and a failure flag */
  double bytes;  /* payload this rank received from the products' allreduces */
  int64_t products;
} nhgd_hvp;

/* Not collective (call it on every rank): check that the problem has an hvp callback and
 * allocate for minibatches of batch rows (0: all training rows). who names the estimator in
 * messages. */
int nhgd_hvp_init(nhgd_hvp *h, nhgd_est_ctx *c, int64_t batch, const char *who);
void nhgd_hvp_free(nhgd_hvp *h);
/* Collective: the budget of --mem-per-rank against what nhgd_hvp_init allocates for batch
 * plus the estimator's own nvec replicated d-vectors; who names the estimator. */
int nhgd_hvp_check_memory(nhgd_est_ctx *c, int64_t batch, int nvec, const char *who);

/* Not collective: h->rows, h->nb = this rank's rows of the global minibatch number j of outer
 * step k, drawn with replacement from (seed, NHGD_STREAM_HVP, k, j, slot) like the inner
 * minibatches, so the draw does not depend on the number of ranks. With batch 0 every local
 * row once. Returns the global size B of the minibatch. */
double nhgd_hvp_draw(nhgd_hvp *h, const nhgd_est_ctx *c, int64_t k, int64_t j);

/* Collective: h->hdiag = diagonal of Hess_theta R at theta. */
int nhgd_hvp_point(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta);

/* Collective: out = (1/B) sum over the listed local rows of every rank of w_i Hess l_i(theta) x,
 * plus h->hdiag .* x. x and out are replicated and must not overlap. */
int nhgd_hvp_apply(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta, int nb, const int *rows,
                   double B, const double *x, double *out);
/* Collective: the same for n (1 or 2) columns of X (d x n) into OUT (d x n), one pass over the
 * rows where the problem has hvp_multi and one allreduce of n d + 1 doubles. */
int nhgd_hvp_apply_n(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta, int nb, const int *rows,
                     double B, int n, const double *X, double *OUT);

/* After a solve of an outer step: charge the products' traffic to the run's counters
 * (spread over the step's inner steps) and reset it. */
void nhgd_hvp_account(nhgd_hvp *h, nhgd_est_ctx *c);

/* Collective: one solve of a baseline: run(state, c, theta, g) timed as the solve stage, the
 * products' traffic charged, then u = result (d entries). */
typedef int (*nhgd_hvp_run_fn)(void *state, nhgd_est_ctx *c, const double *theta, const double *g);
int nhgd_hvp_solve(nhgd_hvp *h, nhgd_est_ctx *c, nhgd_hvp_run_fn run, void *state,
                   const double *theta, const double *g, const double *result, double *u);

/* Dot product and squared norm of replicated d-vectors (the same on every rank). */
double nhgd_baseline_dot(int64_t d, const double *a, const double *b);

#endif
