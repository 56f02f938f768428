/* Estimator `cg` (AID-CG, optimise then approximate; ALGORITHM.md 5): after the inner loop,
 * solve H u = g by Q conjugate-gradient iterations with Hessian-vector products of the inner
 * objective,
 *   H_S v = (1/B) sum_{i in S} w_i Hess l_i(theta_T) v + Hess R(theta_T) v,
 * S all training rows (--hvp-batch 0: deterministic CG, which reaches H^{-1} g in at most d
 * iterations up to rounding) or one global minibatch of --hvp-batch rows per solve, drawn
 * from the counter RNG keyed by (seed, outer k, 0, slot) so that the result does not depend
 * on the number of ranks. Every product of a solve uses the same minibatch: CG then solves
 * H_S u = g with a fixed matrix and keeps its conjugacy (a fresh draw per product would make
 * the search directions conjugate to no single matrix). One MPI_Allreduce of d doubles per
 * product.
 *
 * Warm start (--hvp-warm 1): iterate from the previous outer step's u. That is the engine's
 * u (e->u), which every checkpoint holds, so a run resumed between outer steps starts from
 * the same vector; begin() copies it, and save/load carry the copy through a stop inside an
 * inner loop. The initial residual g - H u0 costs one extra product. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"
#include "io/h5util.h"

typedef struct cg_state {
  nhgd_hvp hvp;
  int64_t d;
  int Q, warm;
  double *x0;             /* warm start of the current outer step */
  double *x, *r, *p, *Ap; /* CG vectors */
} cg_state;

static void cg_destroy(nhgd_estimator *est) {
  cg_state *s = est->state;
  if (!s) return;
  nhgd_hvp_free(&s->hvp);
  double **bufs[] = {&s->x0, &s->x, &s->r, &s->p, &s->Ap};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_free(&est->state);
}

static int cg_begin(nhgd_estimator *est, nhgd_engine *e, int64_t k) {
  cg_state *s = est->state;
  if (s->warm)
    memcpy(s->x0, e->u, (size_t)s->d * sizeof(double));
  else
    memset(s->x0, 0, (size_t)s->d * sizeof(double));
  return NHGD_OK;
}

/* x = H^{-1} g by CG from x0; every vector is replicated, so every rank takes the same
 * decisions. */
static int cg_run(cg_state *s, nhgd_engine *e, const double *theta, const double *g) {
  const int64_t d = s->d, k = e->k;
  double *x = s->x, *r = s->r, *p = s->p, *Ap = s->Ap;
  NHGD_CHECK(nhgd_hvp_point(&s->hvp, e, theta));
  const double gg = nhgd_baseline_dot(d, g, g);
  const double tol2 = 1e-24 * gg; /* stop when |r| <= 1e-12 |g| */
  int64_t j = 0;                  /* products taken */
  const double B = nhgd_hvp_draw(&s->hvp, e, k, 0);
  int start = 0;
  for (int64_t i = 0; i < d; ++i)
    start |= s->x0[i] != 0.0;
  memcpy(x, s->x0, (size_t)d * sizeof(double));
  if (start) {
    ++j;
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, e, theta, s->hvp.nb, s->hvp.rows, B, x, Ap));
    for (int64_t i = 0; i < d; ++i)
      r[i] = g[i] - Ap[i];
  } else {
    memcpy(r, g, (size_t)d * sizeof(double));
  }
  memcpy(p, r, (size_t)d * sizeof(double));
  double rr = nhgd_baseline_dot(d, r, r);
  int q = 0;
  for (; q < s->Q && rr > tol2; ++q) {
    ++j;
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, e, theta, s->hvp.nb, s->hvp.rows, B, p, Ap));
    const double pAp = nhgd_baseline_dot(d, p, Ap);
    if (!(pAp > 0.0) || !isfinite(pAp))
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "cg: no positive curvature along the search direction (p^T H p = %g) at "
                "iteration %d of outer step %lld: the Hessian%s is not positive definite; use a "
                "positive regulariser%s",
                pAp, q, (long long)k, s->hvp.batch ? " of the minibatch" : "",
                s->hvp.batch ? " or a larger --hvp-batch" : "");
    const double alpha = rr / pAp;
    for (int64_t i = 0; i < d; ++i) {
      x[i] += alpha * p[i];
      r[i] -= alpha * Ap[i];
    }
    const double rr_new = nhgd_baseline_dot(d, r, r);
    const double beta = rr_new / rr;
    for (int64_t i = 0; i < d; ++i)
      p[i] = r[i] + beta * p[i];
    rr = rr_new;
  }
  if (!isfinite(rr))
    NHGD_FAIL(NHGD_ERR_NUMERIC, "cg: the residual at outer step %lld is not finite", (long long)k);
  nhgd_log(NHGD_LOG_DEBUG, "cg: outer step %lld: %d iterations, %lld products, |r| / |g| = %.3e",
           (long long)k, q, (long long)j, gg > 0.0 ? sqrt(rr / gg) : 0.0);
  return NHGD_OK;
}

static int cg_solve(nhgd_estimator *est, nhgd_engine *e, const double *theta, const double *g,
                    double *u) {
  cg_state *s = est->state;
  nhgd_timer_start(&e->timers, NHGD_T_SOLVE);
  int rc = cg_run(s, e, theta, g);
  nhgd_timer_stop(&e->timers, NHGD_T_SOLVE);
  nhgd_hvp_account(&s->hvp, e);
  NHGD_CHECK(rc);
  memcpy(u, s->x, (size_t)s->d * sizeof(double));
  return NHGD_OK;
}

static int cg_save(nhgd_estimator *est, nhgd_engine *e, hid_t g) {
  cg_state *s = est->state;
  NHGD_CHECK(nhgd_baseline_save_setting(g, "hvp-steps", s->Q));
  NHGD_CHECK(nhgd_baseline_save_setting(g, "hvp-batch", (double)s->hvp.batch));
  NHGD_CHECK(nhgd_baseline_save_setting(g, "hvp-warm", s->warm));
  return nhgd_h5_write_vector_ex(g, "warm_start", s->d, 0, e->rank == 0 ? s->d : 0, s->x0, 1);
}

static int cg_load(nhgd_estimator *est, nhgd_engine *e, hid_t g) {
  cg_state *s = est->state;
  NHGD_CHECK(nhgd_baseline_check_setting(g, "hvp-steps", s->Q));
  NHGD_CHECK(nhgd_baseline_check_setting(g, "hvp-batch", (double)s->hvp.batch));
  NHGD_CHECK(nhgd_baseline_check_setting(g, "hvp-warm", s->warm));
  return nhgd_h5_read_vector_coll(g, "warm_start", s->d, 0, s->d, s->x0);
}

int nhgd_estimator_cg_init(nhgd_estimator *est, nhgd_engine *e) {
  cg_state *s;
  NHGD_CHECK(nhgd_calloc(&s, 1, sizeof *s, "cg estimator"));
  est->state = s;
  est->destroy = cg_destroy;
  est->begin = cg_begin;
  est->solve = cg_solve;
  est->save = cg_save;
  est->load = cg_load;
  est->needs_observe = 0;
  const nhgd_options *o = &e->opt;
  if (o->hvp_steps < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "cg: --hvp-steps %d: at least one CG iteration is needed",
              o->hvp_steps);
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, e, o->hvp_batch, "cg"));
  s->d = e->d;
  s->Q = o->hvp_steps;
  s->warm = o->hvp_warm;
  const size_t d = (size_t)s->d;
  double **bufs[] = {&s->x0, &s->x, &s->r, &s->p, &s->Ap};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    NHGD_CHECK(nhgd_calloc(bufs[i], d, sizeof(double), "cg vectors"));
  char rows[64] = "all training rows";
  if (o->hvp_batch)
    snprintf(rows, sizeof rows, "one minibatch of %lld rows per solve", (long long)o->hvp_batch);
  nhgd_log(NHGD_LOG_INFO,
           "cg: up to %d conjugate-gradient iterations per outer step (stop at |r| <= 1e-12 "
           "|g|), %s start, each Hessian-vector product over %s%s; d = %lld",
           s->Q, s->warm ? "warm" : "cold", rows,
           o->hvp_batch ? " (stochastic CG)" : " (deterministic CG)", (long long)s->d);
  if (!o->hvp_batch && s->Q < s->d)
    nhgd_log(NHGD_LOG_INFO,
             "cg: --hvp-steps %d < d = %lld: CG may stop before it reaches H^-1 g exactly", s->Q,
             (long long)s->d);
  return NHGD_OK;
}
