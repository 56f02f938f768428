/* Estimator `cg` (AID-CG, optimise then approximate; docs/algorithm.md 5): after the inner loop,
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
 * u (the context's u_prev), which every checkpoint holds, so a run resumed between outer steps
 * starts from the same vector; begin() copies it, and save/load carry the copy through a stop
 * inside an inner loop. The initial residual g - H u0 costs one extra product. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"

/* Options of cg's own (the shared --hvp-steps and --hvp-batch come from the hvp block). */
typedef struct cg_opts {
  int warm;
} cg_opts;

typedef struct cg_state {
  nhgd_hvp hvp;
  int64_t d, k;
  int Q, warm;
  double *x0;             /* warm start of the current outer step */
  double *x, *r, *p, *Ap; /* CG vectors */
} cg_state;

static void cg_release(nhgd_estimator *est) {
  cg_state *s = est->state;
  nhgd_hvp_free(&s->hvp);
  double **bufs[] = {&s->x0, &s->x, &s->r, &s->p, &s->Ap};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
}

static int cg_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  cg_state *s = est->state;
  s->k = k;
  if (s->warm)
    memcpy(s->x0, est->ctx->u_prev, (size_t)s->d * sizeof(double));
  else
    memset(s->x0, 0, (size_t)s->d * sizeof(double));
  return NHGD_OK;
}

/* x = H^{-1} g by CG from x0; every vector is replicated, so every rank takes the same
 * decisions. */
static int cg_run(void *state, nhgd_est_ctx *c, const double *theta, const double *g) {
  cg_state *s = state;
  const int64_t d = s->d, k = s->k;
  double *x = s->x, *r = s->r, *p = s->p, *Ap = s->Ap;
  NHGD_CHECK(nhgd_hvp_point(&s->hvp, c, theta));
  const double gg = nhgd_baseline_dot(d, g, g);
  const double tol2 = 1e-24 * gg; /* stop when |r| <= 1e-12 |g| */
  int64_t j = 0;                  /* products taken */
  const double B = nhgd_hvp_draw(&s->hvp, c, k, 0);
  int start = 0;
  for (int64_t i = 0; i < d; ++i)
    start |= s->x0[i] != 0.0;
  memcpy(x, s->x0, (size_t)d * sizeof(double));
  if (start) {
    ++j;
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, c, theta, s->hvp.nb, s->hvp.rows, B, x, Ap));
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
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, c, theta, s->hvp.nb, s->hvp.rows, B, p, Ap));
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

static int cg_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  cg_state *s = est->state;
  return nhgd_hvp_solve(&s->hvp, est->ctx, cg_run, s, theta, g, s->x, u);
}

static int cg_save(nhgd_estimator *est, nhgd_section *sec) {
  cg_state *s = est->state;
  return nhgd_section_put_vector(sec, "warm_start", s->d, s->x0);
}

static int cg_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  cg_state *s = est->state;
  s->k = k;
  NHGD_CHECK(nhgd_section_get_vector(sec, "warm_start", s->d, s->x0));
  return nhgd_section_check_finite(sec, "warm_start", s->d, s->x0);
}

static int cg_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  cg_state *s = est->state;
  const nhgd_hvp_opts *o = nhgd_options_block(c->options, "hvp");
  const cg_opts *own = c->opt;
  if (o->steps < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "cg: --hvp-steps %d: at least one CG iteration is needed", o->steps);
  NHGD_CHECK(nhgd_hvp_check_memory(c, o->batch, 5, "cg"));
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, c, o->batch, "cg"));
  s->d = c->d;
  s->Q = o->steps;
  s->warm = own->warm;
  const size_t d = (size_t)s->d;
  double **bufs[] = {&s->x0, &s->x, &s->r, &s->p, &s->Ap};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    NHGD_CHECK(nhgd_calloc(bufs[i], d, sizeof(double), "cg vectors"));
  char rows[64] = "all training rows";
  if (o->batch)
    snprintf(rows, sizeof rows, "one minibatch of %lld rows per solve", (long long)o->batch);
  nhgd_log(NHGD_LOG_INFO,
           "cg: up to %d conjugate-gradient iterations per outer step (stop at |r| <= 1e-12 "
           "|g|), %s start, each Hessian-vector product over %s%s; d = %lld",
           s->Q, s->warm ? "warm" : "cold", rows,
           o->batch ? " (stochastic CG)" : " (deterministic CG)", (long long)s->d);
  if (!o->batch && s->Q < s->d)
    nhgd_log(NHGD_LOG_INFO,
             "cg: --hvp-steps %d < d = %lld: CG may stop before it reaches H^-1 g exactly", s->Q,
             (long long)s->d);
  return NHGD_OK;
}

static const nhgd_option_spec cg_specs[] = {
    {"hvp-warm", NHGD_OPT_BOOL, offsetof(cg_opts, warm), sizeof(int), "1", 1, 0, NULL,
     "cg: start from the previous outer step's u (0: from u = 0)", NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

static const nhgd_option_scope cg_scopes[] = {{NULL, "estimator=cg"}, {NULL, NULL}};
static const nhgd_option_block cg_options = {"cg", cg_specs, sizeof(cg_opts), NULL, cg_scopes};

const nhgd_estimator_desc nhgd_estimator_cg = {
    .name = "cg",
    .options = &cg_options,
    .state_size = sizeof(cg_state),
    .ops = {.needs_observe = 0,
            .begin = cg_begin,
            .solve = cg_solve,
            .save = cg_save,
            .load = cg_load,
            .release = cg_release,
            .advice = nhgd_est_hessian_advice},
    .init = cg_init,
};
