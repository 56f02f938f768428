/* Estimator `neumann` (stocBiO; docs/algorithm.md 5): after the inner loop, u is Q terms of the
 * Neumann series of H^{-1} = eta sum_{q>=0} (I - eta H)^q applied to g, with a fresh
 * stochastic Hessian in every factor:
 *   u = eta sum_{q=0}^{Q-1} prod_{j=1}^{q} (I - eta H_j) g     (the q = 0 product is I),
 * computed by the recursion p = g, u = eta p, then Q-1 times p -= eta H_j p, u += eta p.
 * H_j v = (1/B) sum_{i in S_j} w_i Hess l_i(theta_T) v + Hess R(theta_T) v, with S_j all
 * training rows (--hvp-batch 0) or a fresh global minibatch drawn from the counter RNG keyed
 * by (seed, outer k, product j, slot), independent of the number of ranks. One
 * MPI_Allreduce of d doubles per product. The series converges when eta < 2 / lambda_max(H);
 * its truncation error is (I - eta H)^Q H^{-1} g. Nothing is carried between outer steps
 * or through the inner loop, so a checkpoint holds nothing of it. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"

typedef struct neumann_opts {
  double eta;
} neumann_opts;

typedef struct neumann_state {
  nhgd_hvp hvp;
  int64_t d, k;
  int Q;
  double eta;
  double *p, *Hp, *acc;
  int warned;
} neumann_state;

static void neumann_release(nhgd_estimator *est) {
  neumann_state *s = est->state;
  nhgd_hvp_free(&s->hvp);
  nhgd_free(&s->p);
  nhgd_free(&s->Hp);
  nhgd_free(&s->acc);
}

static int neumann_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  neumann_state *s = est->state;
  s->k = k;
  return NHGD_OK;
}

static int neumann_run(void *state, nhgd_est_ctx *c, const double *theta, const double *g) {
  neumann_state *s = state;
  const int64_t d = s->d, k = s->k;
  const double eta = s->eta;
  double *p = s->p, *Hp = s->Hp, *acc = s->acc;
  NHGD_CHECK(nhgd_hvp_point(&s->hvp, c, theta));
  memcpy(p, g, (size_t)d * sizeof(double));
  for (int64_t i = 0; i < d; ++i)
    acc[i] = eta * p[i];
  for (int q = 1; q < s->Q; ++q) {
    double B = nhgd_hvp_draw(&s->hvp, c, k, q - 1);
    NHGD_CHECK(nhgd_hvp_apply(&s->hvp, c, theta, s->hvp.nb, s->hvp.rows, B, p, Hp));
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

static int neumann_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  neumann_state *s = est->state;
  return nhgd_hvp_solve(&s->hvp, est->ctx, neumann_run, s, theta, g, s->acc, u);
}

static void neumann_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const neumann_state *s = est->state;
  snprintf(buf, len,
           "lower --neumann-eta (now %g): the series grows without bound when eta is above 2 / "
           "lambda_max(H)",
           s->eta);
}

/* Stateless within an inner loop: a resumed one only needs to know its outer step. */
static int neumann_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  neumann_state *s = est->state;
  s->k = k;
  return NHGD_OK;
}

static int neumann_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  neumann_state *s = est->state;
  const nhgd_hvp_opts *o = nhgd_options_block(c->options, "hvp");
  const neumann_opts *own = c->opt;
  if (o->steps < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "neumann: --hvp-steps %d: the series needs at least one term",
              o->steps);
  if (!(own->eta > 0.0) || !isfinite(own->eta))
    NHGD_FAIL(NHGD_ERR_ARG,
              "neumann: --neumann-eta %g: the step of the series must be positive and finite",
              own->eta);
  NHGD_CHECK(nhgd_hvp_check_memory(c, o->batch, 3, "neumann"));
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, c, o->batch, "neumann"));
  s->d = c->d;
  s->Q = o->steps;
  s->eta = own->eta;
  NHGD_CHECK(nhgd_calloc(&s->p, (size_t)s->d, sizeof(double), "neumann term"));
  NHGD_CHECK(nhgd_calloc(&s->Hp, (size_t)s->d, sizeof(double), "neumann product"));
  NHGD_CHECK(nhgd_calloc(&s->acc, (size_t)s->d, sizeof(double), "neumann sum"));
  char rows[64] = "all training rows";
  if (o->batch) snprintf(rows, sizeof rows, "a fresh minibatch of %lld rows", (long long)o->batch);
  nhgd_log(NHGD_LOG_INFO,
           "neumann: %d terms of eta sum_q prod_j (I - eta H_j) g per outer step, eta = %g, "
           "%d Hessian-vector products each over %s; d = %lld",
           s->Q, s->eta, s->Q - 1, rows, (long long)s->d);
  return NHGD_OK;
}

static const nhgd_option_spec neumann_specs[] = {
    {"neumann-eta", NHGD_OPT_REAL, offsetof(neumann_opts, eta), sizeof(double), "0.1", 0, 1e12,
     NULL,
     "neumann: step eta of u = eta sum_q prod_j (I - eta H_j) g (needs eta < 2 / lambda_max(H))",
     NHGD_OPT_TRAJECTORY | NHGD_OPT_MIN_OPEN},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

static const nhgd_option_scope neumann_scopes[] = {{NULL, "estimator=neumann"}, {NULL, NULL}};
static const nhgd_option_block neumann_options = {"neumann", neumann_specs, sizeof(neumann_opts),
                                                  NULL, neumann_scopes};

const nhgd_estimator_desc nhgd_estimator_neumann = {
    .name = "neumann",
    .options = &neumann_options,
    .state_size = sizeof(neumann_state),
    .ops = {.needs_observe = 0,
            .begin = neumann_begin,
            .solve = neumann_solve,
            .load = neumann_load,
            .release = neumann_release,
            .advice = neumann_advice},
    .init = neumann_init,
};
