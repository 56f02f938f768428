/* Estimator `neumann` (stocBiO; ALGORITHM.md 5): after the inner loop, u is Q terms of the
 * Neumann series of H^{-1} = eta sum_{q>=0} (I - eta H)^q applied to g, with a fresh
 * stochastic Hessian in every factor:
 *   u = eta sum_{q=0}^{Q-1} prod_{j=1}^{q} (I - eta H_j) g     (the q = 0 product is I),
 * computed by the recursion p = g, u = eta p, then Q-1 times p -= eta H_j p, u += eta p.
 * H_j v = (1/B) sum_{i in S_j} w_i Hess l_i(theta_T) v + Hess R(theta_T) v, with S_j all
 * training rows (--hvp-batch 0) or a fresh global minibatch drawn from the counter RNG keyed
 * by (seed, outer k, product j, slot), independent of the number of ranks. One
 * MPI_Allreduce of d doubles per product. The series converges when eta < 2 / lambda_max(H);
 * its truncation error is (I - eta H)^Q H^{-1} g. Nothing is carried between outer steps:
 * the checkpoint hooks only record the settings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"

typedef struct neumann_state {
  nhgd_hvp hvp;
  int64_t d;
  int Q;
  double eta;
  double *p, *Hp, *acc;
  int warned;
} neumann_state;

static void neumann_destroy(nhgd_estimator *est) {
  neumann_state *s = est->state;
  if (!s) return;
  nhgd_hvp_free(&s->hvp);
  nhgd_free(&s->p);
  nhgd_free(&s->Hp);
  nhgd_free(&s->acc);
  nhgd_free(&est->state);
}

static int neumann_run(neumann_state *s, nhgd_engine *e, const double *theta, const double *g) {
  const int64_t d = s->d, k = e->k;
  const double eta = s->eta;
  double *p = s->p, *Hp = s->Hp, *acc = s->acc;
  NHGD_CHECK(nhgd_hvp_point(&s->hvp, e, theta));
  memcpy(p, g, (size_t)d * sizeof(double));
  for (int64_t i = 0; i < d; ++i)
    acc[i] = eta * p[i];
  for (int q = 1; q < s->Q; ++q) {
    double B = nhgd_hvp_draw(&s->hvp, e, k, q - 1);
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, e, theta, s->hvp.nb, s->hvp.rows, B, p, Hp));
    int finite = 1;
    for (int64_t i = 0; i < d; ++i) {
      p[i] -= eta * Hp[i];
      acc[i] += eta * p[i];
      finite &= isfinite(acc[i]);
    }
    /* Replicated values: every rank reaches the same verdict. */
    if (!finite)
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "neumann: the series diverged at term %d of outer step %lld: --neumann-eta %g "
                "is too large (it must stay below 2 / lambda_max(H))",
                q, (long long)k, eta);
  }
  const double pp = nhgd_baseline_dot(d, p, p), gg = nhgd_baseline_dot(d, g, g);
  if (pp > gg && !s->warned) {
    nhgd_log(NHGD_LOG_WARN,
             "neumann: the last term of the series is larger than the first (|p_Q| / |g| = "
             "%.3g at outer step %lld): --neumann-eta %g is probably above 2 / lambda_max(H) "
             "and u is not an estimate of H^-1 g",
             sqrt(pp / gg), (long long)k, eta);
    s->warned = 1;
  }
  nhgd_log(NHGD_LOG_DEBUG, "neumann: outer step %lld: %d terms, |p_Q| / |g| = %.3e", (long long)k,
           s->Q, gg > 0.0 ? sqrt(pp / gg) : 0.0);
  return NHGD_OK;
}

static int neumann_solve(nhgd_estimator *est, nhgd_engine *e, const double *theta, const double *g,
                         double *u) {
  neumann_state *s = est->state;
  nhgd_timer_start(&e->timers, NHGD_T_SOLVE);
  int rc = neumann_run(s, e, theta, g);
  nhgd_timer_stop(&e->timers, NHGD_T_SOLVE);
  nhgd_hvp_account(&s->hvp, e);
  NHGD_CHECK(rc);
  memcpy(u, s->acc, (size_t)s->d * sizeof(double));
  return NHGD_OK;
}

static int neumann_save(nhgd_estimator *est, nhgd_engine *e, hid_t g) {
  neumann_state *s = est->state;
  NHGD_CHECK(nhgd_baseline_save_setting(g, "hvp-steps", s->Q));
  NHGD_CHECK(nhgd_baseline_save_setting(g, "hvp-batch", (double)s->hvp.batch));
  return nhgd_baseline_save_setting(g, "neumann-eta", s->eta);
}

static int neumann_load(nhgd_estimator *est, nhgd_engine *e, hid_t g) {
  neumann_state *s = est->state;
  NHGD_CHECK(nhgd_baseline_check_setting(g, "hvp-steps", s->Q));
  NHGD_CHECK(nhgd_baseline_check_setting(g, "hvp-batch", (double)s->hvp.batch));
  return nhgd_baseline_check_setting(g, "neumann-eta", s->eta);
}

int nhgd_estimator_neumann_init(nhgd_estimator *est, nhgd_engine *e) {
  neumann_state *s;
  NHGD_CHECK(nhgd_calloc(&s, 1, sizeof *s, "neumann estimator"));
  est->state = s;
  est->destroy = neumann_destroy;
  est->solve = neumann_solve;
  est->save = neumann_save;
  est->load = neumann_load;
  est->needs_observe = 0;
  const nhgd_options *o = &e->opt;
  if (o->hvp_steps < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "neumann: --hvp-steps %d: the series needs at least one term",
              o->hvp_steps);
  if (!(o->neumann_eta > 0.0) || !isfinite(o->neumann_eta))
    NHGD_FAIL(NHGD_ERR_ARG,
              "neumann: --neumann-eta %g: the step of the series must be positive and finite",
              o->neumann_eta);
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, e, o->hvp_batch, "neumann"));
  s->d = e->d;
  s->Q = o->hvp_steps;
  s->eta = o->neumann_eta;
  NHGD_CHECK(nhgd_calloc(&s->p, (size_t)s->d, sizeof(double), "neumann term"));
  NHGD_CHECK(nhgd_calloc(&s->Hp, (size_t)s->d, sizeof(double), "neumann product"));
  NHGD_CHECK(nhgd_calloc(&s->acc, (size_t)s->d, sizeof(double), "neumann sum"));
  char rows[64] = "all training rows";
  if (o->hvp_batch)
    snprintf(rows, sizeof rows, "a fresh minibatch of %lld rows", (long long)o->hvp_batch);
  nhgd_log(NHGD_LOG_INFO,
           "neumann: %d terms of eta sum_q prod_j (I - eta H_j) g per outer step, eta = %g, "
           "%d Hessian-vector products each over %s; d = %lld",
           s->Q, s->eta, s->Q - 1, rows, (long long)s->d);
  return NHGD_OK;
}
