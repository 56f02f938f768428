/* Shared pieces of the baseline estimators cg, neumann and soba (ALGORITHM.md 5): the
 * distributed Hessian-vector product of the inner objective, the minibatches it is taken
 * over, and the checkpoint guards of their settings. */
#ifndef NHGD_ESTIMATORS_BASELINE_H
#define NHGD_ESTIMATORS_BASELINE_H

#include <hdf5.h>
#include <stdint.h>

#include "outer/engine.h"

int nhgd_estimator_cg_init(nhgd_estimator *est, nhgd_engine *e);
int nhgd_estimator_neumann_init(nhgd_estimator *est, nhgd_engine *e);
int nhgd_estimator_soba_init(nhgd_estimator *est, nhgd_engine *e);

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
int nhgd_hvp_init(nhgd_hvp *h, nhgd_engine *e, int64_t batch, const char *who);
void nhgd_hvp_free(nhgd_hvp *h);

/* Not collective: h->rows, h->nb = this rank's rows of the global minibatch number j of outer
 * step k, drawn with replacement from (seed, NHGD_STREAM_HVP, k, j, slot) like the inner
 * minibatches, so the draw does not depend on the number of ranks. With batch 0 every local
 * row once. Returns the global size B of the minibatch. */
double nhgd_hvp_draw(nhgd_hvp *h, const nhgd_engine *e, int64_t k, int64_t j);

/* Collective: h->hdiag = diagonal of Hess_theta R at theta. */
int nhgd_hvp_point(nhgd_hvp *h, nhgd_engine *e, const double *theta);

/* Collective: out = (1/B) sum over the listed local rows of every rank of w_i Hess l_i(theta) x,
 * plus h->hdiag .* x. x and out are replicated and must not overlap. */
int nhgd_hvp_apply(nhgd_hvp *h, nhgd_engine *e, const double *theta, int nb, const int *rows,
                   double B, const double *x, double *out);

/* After a solve of an outer step: charge the products' traffic to the engine's counters
 * (spread over the step's inner steps) and reset it. */
void nhgd_hvp_account(nhgd_hvp *h, nhgd_engine *e);

/* Dot product and squared norm of replicated d-vectors (the same on every rank). */
double nhgd_baseline_dot(int64_t d, const double *a, const double *b);

/* Checkpoint guards: record an option's value in the estimator group; on load, refuse a
 * value that differs (a run may only continue with the settings its state was built with). */
int nhgd_baseline_save_setting(hid_t g, const char *option, double value);
int nhgd_baseline_check_setting(hid_t g, const char *option, double value);

#endif
