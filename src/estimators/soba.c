/* Estimator `soba` (single loop; docs/algorithm.md 5): a vector z that tracks H^{-1} g takes one
 * step alongside every inner SGD step, on the step's own minibatch S_t and at the iterate
 * theta_t the step's gradient used:
 *   z <- z - rho (H_{S_t} z - g_val),
 *   H_{S_t} z = (1/B) sum_{i in S_t} w_i Hess l_i(theta_t) z + Hess R(theta_t) z,
 * each rank summing over its rows of S_t, one MPI_Allreduce of d doubles per step. solve()
 * returns u = z. Sign: the engine forms h = grad_v f - J^T u, so z tracks +H^{-1} g (the
 * paper's z is its negative).
 *
 * g_val is the validation gradient at the start of the inner loop, computed once per outer
 * step in begin() (one more allreduce of d doubles) rather than at every inner step, to keep
 * the cost down, on the validation rows the engine uses for the outer step (with --val-batch
 * those drawn for it). With --inner-steps 1 the method is exactly single-loop SOBA: one theta
 * step, one z step and one v step per outer step, all at the same point. z is carried across
 * outer steps (warm): it is the solver's u of the previous outer step, which every checkpoint
 * holds; begin() takes it from there, and save/load carry z and g_val through a stop inside
 * an inner loop. The z recursion converges when rho < 2 / lambda_max(H). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"

typedef struct soba_opts {
  double rho;
} soba_opts;

typedef struct soba_state {
  nhgd_hvp hvp;
  int64_t d;
  double rho;
  double B; /* global rows of an inner minibatch */
  double *z, *gval, *Hz, *buf;
  int64_t k, steps; /* outer step of the current inner loop, z steps taken in it */
  double bytes;     /* payload received in the current inner loop */
} soba_state;

static void soba_release(nhgd_estimator *est) {
  soba_state *s = est->state;
  nhgd_hvp_free(&s->hvp);
  double **bufs[] = {&s->z, &s->gval, &s->Hz, &s->buf};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
}

/* g_val = grad_theta f on the validation rows of the outer step at theta (replicated). */
static int val_grad(soba_state *s, nhgd_est_ctx *c, const double *theta) {
  const nhgd_problem *pb = c->pb;
  const nhgd_split *val = c->val_rows ? c->val_rows(c->val_rows_arg, s->k) : &c->data->val;
  double loss = 0.0;
  nhgd_timer_start(c->timers, NHGD_T_EVAL);
  int rc = pb->ops.eval(pb, val, theta, c->v, &loss, s->buf, NULL);
  rc = nhgd_error_agree(c->comm, rc);
  if (!rc && MPI_Allreduce(s->buf, s->gval, (int)s->d, MPI_DOUBLE, MPI_SUM, c->comm) != MPI_SUCCESS)
    rc = nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__,
                        "soba: MPI_Allreduce of the validation gradient failed");
  nhgd_timer_stop(c->timers, NHGD_T_EVAL);
  NHGD_CHECK(rc);
  s->bytes += 8.0 * (double)s->d;
  *c->samples += (double)val->n_global;
  const double inv = 1.0 / (double)val->n_global;
  for (int64_t j = 0; j < s->d; ++j)
    s->gval[j] *= inv;
  return NHGD_OK;
}

static int soba_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  soba_state *s = est->state;
  s->k = k;
  s->steps = 0;
  s->bytes = 0.0;
  memcpy(s->z, est->ctx->u_prev, (size_t)s->d * sizeof(double));
  return val_grad(s, est->ctx, theta0);
}

static int soba_observe(nhgd_estimator *est, const double *theta, int nb, const int *rows) {
  soba_state *s = est->state;
  nhgd_est_ctx *c = est->ctx;
  const int64_t d = s->d;
  nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
  s->hvp.bytes = 0.0;
  int rc = nhgd_hvp_point(&s->hvp, c, theta);
  if (!rc) rc = nhgd_hvp_apply(&s->hvp, c, theta, nb, rows, s->B, s->z, s->Hz);
  int finite = 1;
  if (!rc) {
    s->bytes += s->hvp.bytes;
    for (int64_t j = 0; j < d; ++j) {
      s->z[j] -= s->rho * (s->Hz[j] - s->gval[j]);
      finite &= isfinite(s->z[j]);
    }
    ++s->steps;
  }
  nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
  NHGD_CHECK(rc);
  /* z is replicated: every rank reaches the same verdict. */
  if (!finite)
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "soba: z diverged at outer step %lld, inner step %lld: --soba-rho %g is too large "
              "(it must stay below 2 / lambda_max(H))",
              (long long)s->k, (long long)s->steps, s->rho);
  return NHGD_OK;
}

static int soba_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  soba_state *s = est->state;
  memcpy(u, s->z, (size_t)s->d * sizeof(double));
  *est->ctx->comm_bytes += s->bytes;
  *est->ctx->comm_steps += s->steps;
  s->bytes = 0.0;
  s->steps = 0;
  return NHGD_OK;
}

static void soba_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const soba_state *s = est->state;
  snprintf(buf, len,
           "lower --soba-rho (now %g): z grows without bound when rho is above 2 / "
           "lambda_max(H)",
           s->rho);
}

static int soba_save(nhgd_estimator *est, nhgd_section *sec) {
  soba_state *s = est->state;
  NHGD_CHECK(nhgd_section_put_int(sec, "steps", s->steps));
  NHGD_CHECK(nhgd_section_put_real(sec, "bytes", s->bytes));
  NHGD_CHECK(nhgd_section_put_vector(sec, "z", s->d, s->z));
  return nhgd_section_put_vector(sec, "g_val", s->d, s->gval);
}

static int soba_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  soba_state *s = est->state;
  NHGD_CHECK(nhgd_section_get_int(sec, "steps", &s->steps));
  NHGD_CHECK(nhgd_section_get_real(sec, "bytes", &s->bytes));
  NHGD_CHECK(nhgd_section_get_vector(sec, "z", s->d, s->z));
  NHGD_CHECK(nhgd_section_check_finite(sec, "z", s->d, s->z));
  NHGD_CHECK(nhgd_section_get_vector(sec, "g_val", s->d, s->gval));
  NHGD_CHECK(nhgd_section_check_finite(sec, "g_val", s->d, s->gval));
  s->k = k;
  return NHGD_OK;
}

static int soba_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  soba_state *s = est->state;
  const soba_opts *o = c->opt;
  if (!(o->rho > 0.0) || !isfinite(o->rho))
    NHGD_FAIL(NHGD_ERR_ARG, "soba: --soba-rho %g: the step of z must be positive and finite",
              o->rho);
  if (c->inner_steps < 1)
    NHGD_FAIL(NHGD_ERR_ARG,
              "soba: --inner-steps 0 leaves z (and so u) at zero: SOBA takes its z steps "
              "alongside the inner SGD steps; use --inner-steps 1 for the single-loop method");
  /* The rows come from the inner loop: the draw size of the helper is not used. */
  NHGD_CHECK(nhgd_hvp_check_memory(c, 0, 4, "soba"));
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, c, 0, "soba"));
  s->d = c->d;
  s->rho = o->rho;
  s->B = (double)nhgd_est_batch_rows(c);
  double **bufs[] = {&s->z, &s->gval, &s->Hz, &s->buf};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    NHGD_CHECK(nhgd_calloc(bufs[i], (size_t)s->d, sizeof(double), "soba vectors"));
  nhgd_log(NHGD_LOG_INFO,
           "soba: z -= rho (H_batch z - g_val) after every inner step, rho = %g, Hessian-vector "
           "product over the step's own minibatch of %.0f rows (--hvp-batch is not used), g_val "
           "at the start of each inner loop, z carried across outer steps; d = %lld",
           s->rho, s->B, (long long)s->d);
  return NHGD_OK;
}

static const nhgd_option_spec soba_specs[] = {
    {"soba-rho", NHGD_OPT_REAL, offsetof(soba_opts, rho), sizeof(double), "0.05", 0, 1e12, NULL,
     "soba: step rho of z -= rho (H_batch z - g) after every inner step (needs rho < 2 / "
     "lambda_max(H))",
     NHGD_OPT_TRAJECTORY | NHGD_OPT_MIN_OPEN},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

static const nhgd_option_scope soba_scopes[] = {{NULL, "estimator=soba"}, {NULL, NULL}};
static const nhgd_option_block soba_options = {"soba", soba_specs, sizeof(soba_opts), NULL,
                                               soba_scopes};

const nhgd_estimator_desc nhgd_estimator_soba = {
    .name = "soba",
    .options = &soba_options,
    .state_size = sizeof(soba_state),
    .ops = {.needs_observe = 1,
            .begin = soba_begin,
            .observe = soba_observe,
            .solve = soba_solve,
            .save = soba_save,
            .load = soba_load,
            .release = soba_release,
            .advice = soba_advice},
    .init = soba_init,
};
