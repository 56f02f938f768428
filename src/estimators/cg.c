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
 * inside an inner loop. The initial residual g - H u0 costs one extra product.
 *
 * Preconditioned (--precond nhgd, docs/algorithm.md 5.3): NHGD's M of the same run, kept
 * during the inner loop (observe), preconditions the iterations. Q = 0 returns NHGD's u,
 * M^{-1} g; Q >= 1 runs Q + 1 iterations from zero, whose first iterate is NHGD's u rescaled
 * by an exact line search, alpha M^{-1} g, and Q more from there (Q + 1 products).
 * The iterations are those of the PCG kernel (pcg.h), preconditioned or not. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"
#include "estimators/pcg.h"
#include "estimators/precond.h"

/* Options of cg's own (the shared --hvp-steps and --hvp-batch come from the hvp block). */
typedef struct cg_opts {
  int warm;
} cg_opts;

typedef struct cg_state {
  nhgd_hvp hvp;
  nhgd_precond *pc; /* --precond nhgd (NULL: none) */
  int64_t d, k;
  int Q, warm;
  double *x0;   /* warm start of the current outer step */
  double *x;    /* the iterate */
  double *work; /* the PCG kernel's: 6 d */
  /* the solve in progress, for the operator callbacks */
  nhgd_est_ctx *c;
  const double *theta;
  double B; /* rows of its minibatch */
} cg_state;

static void cg_release(nhgd_estimator *est) {
  cg_state *s = est->state;
  nhgd_precond_destroy(&s->pc);
  nhgd_hvp_free(&s->hvp);
  double **bufs[] = {&s->x0, &s->x, &s->work};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
}

static int cg_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  cg_state *s = est->state;
  s->k = k;
  if (s->pc) return nhgd_precond_begin(s->pc, k, theta0);
  if (s->warm)
    memcpy(s->x0, est->ctx->u_prev, (size_t)s->d * sizeof(double));
  else
    memset(s->x0, 0, (size_t)s->d * sizeof(double));
  return NHGD_OK;
}

static int cg_observe(nhgd_estimator *est, const double *theta, int nb, const int *rows) {
  cg_state *s = est->state;
  return nhgd_precond_observe(s->pc, theta, nb, rows);
}

/* The operators of the kernel: H_S (the solve's minibatch) and M^{-1}, column by column. */
static int cg_hessian(void *arg, int n, const double *X, double *out) {
  cg_state *s = arg;
  return nhgd_hvp_apply_n(&s->hvp, s->c, s->theta, s->hvp.nb, s->hvp.rows, s->B, n, X, out);
}

static int cg_minv(void *arg, int n, const double *X, double *out) {
  cg_state *s = arg;
  for (int j = 0; j < n; ++j)
    NHGD_CHECK(nhgd_precond_apply(s->pc, s->theta, X + (size_t)j * s->d, out + (size_t)j * s->d));
  return NHGD_OK;
}

/* x = H^{-1} g by (P)CG from the start in x; every vector is replicated, so every rank takes
 * the same decisions. */
static int cg_run(void *state, nhgd_est_ctx *c, const double *theta, const double *g) {
  cg_state *s = state;
  const int64_t d = s->d, k = s->k;
  int start = 0;
  for (int64_t i = 0; i < d && !start; ++i)
    start = s->x[i] != 0.0;
  nhgd_pcg_stats st = {0};
  if (s->Q > 0) {
    NHGD_CHECK(nhgd_hvp_point(&s->hvp, c, theta));
    s->c = c;
    s->theta = theta;
    s->B = nhgd_hvp_draw(&s->hvp, c, k, 0);
    char who[64];
    snprintf(who, sizeof who, "cg at outer step %lld", (long long)k);
    NHGD_CHECK(nhgd_pcg(d, 1, cg_hessian, s, s->pc ? cg_minv : NULL, s, g, s->x, start,
                        s->Q + (s->pc ? 1 : 0), 1e-12, who, s->work, &st));
  }
  char rel[48] = "not measured (no iteration)";
  if (s->Q > 0) snprintf(rel, sizeof rel, "%.3e", st.rel[0]);
  nhgd_log(NHGD_LOG_DEBUG,
           "cg: outer step %lld: %d iterations, %lld products, %lld applications of M^-1, "
           "|r| / |g| = %s",
           (long long)k, st.iters, (long long)st.products,
           (long long)(st.precs + (s->pc && s->Q == 0)), rel);
  return NHGD_OK;
}

static int cg_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  cg_state *s = est->state;
  /* The start: NHGD's u, M^{-1} g, its solve timed and charged as the nhgd estimator's own;
   * or the warm start. */
  if (s->pc) {
    NHGD_CHECK(nhgd_precond_apply(s->pc, theta, g, s->x));
    /* Q >= 1: the kernel from zero, whose first iterate is x_1 = alpha M^{-1} g, NHGD's u at
     * the length an exact line search in the H-norm gives it (the kernel's first z is the
     * application above, kept by the preconditioner), then Q more iterations. */
    if (s->Q > 0) memset(s->x, 0, (size_t)s->d * sizeof(double));
  } else {
    memcpy(s->x, s->x0, (size_t)s->d * sizeof(double));
  }
  return nhgd_hvp_solve(&s->hvp, est->ctx, cg_run, s, theta, g, s->x, u);
}

static int cg_save(nhgd_estimator *est, nhgd_section *sec) {
  cg_state *s = est->state;
  if (s->pc) return nhgd_precond_save(s->pc, sec);
  return nhgd_section_put_vector(sec, "warm_start", s->d, s->x0);
}

static int cg_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  cg_state *s = est->state;
  s->k = k;
  if (s->pc) return nhgd_precond_load(s->pc, sec, k);
  NHGD_CHECK(nhgd_section_get_vector(sec, "warm_start", s->d, s->x0));
  return nhgd_section_check_finite(sec, "warm_start", s->d, s->x0);
}

static int cg_load_kept(nhgd_estimator *est, nhgd_section *sec) {
  cg_state *s = est->state;
  return nhgd_precond_load_kept(s->pc, sec);
}

/* Not finite: H, or with the preconditioner M, is nearly singular. */
static void cg_precond_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const cg_state *s = est->state;
  char mine[160];
  nhgd_est_hessian_advice(est, buf, len);
  nhgd_precond_advice(s->pc, mine, sizeof mine);
  const size_t used = strlen(buf);
  if (mine[0] && used < len)
    snprintf(buf + used, len - used, "; or the preconditioner's: %s", mine);
}

/* With --precond nhgd the estimator observes the inner loop (for M) and carries M's running
 * state, not a warm start, through checkpoints. */
static const nhgd_estimator_ops cg_precond_ops = {.needs_observe = 1,
                                                  .begin = cg_begin,
                                                  .observe = cg_observe,
                                                  .solve = cg_solve,
                                                  .save = cg_save,
                                                  .load = cg_load,
                                                  .load_kept = cg_load_kept,
                                                  .release = cg_release,
                                                  .advice = cg_precond_advice};

static int cg_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  cg_state *s = est->state;
  const nhgd_hvp_opts *o = nhgd_options_block(c->options, "hvp");
  const cg_opts *own = c->opt;
  /* The PCG kernel's workspace, the iterate and the warm start. */
  NHGD_CHECK(nhgd_hvp_check_memory(c, o->batch, 8, "cg"));
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, c, o->batch, "cg"));
  s->d = c->d;
  s->Q = o->steps;
  s->warm = own->warm;
  const size_t d = (size_t)s->d;
  NHGD_CHECK(nhgd_calloc(&s->x0, d, sizeof(double), "cg warm start"));
  NHGD_CHECK(nhgd_calloc(&s->x, d, sizeof(double), "cg iterate"));
  NHGD_CHECK(nhgd_calloc(&s->work, 6 * d, sizeof(double), "cg vectors"));
  NHGD_CHECK(nhgd_precond_create(c, resume, "cg", &s->pc));
  if (s->pc) est->ops = &cg_precond_ops;
  char rows[64] = "all training rows";
  if (o->batch)
    snprintf(rows, sizeof rows, "one minibatch of %lld rows per solve", (long long)o->batch);
  nhgd_log(NHGD_LOG_INFO,
           "cg: up to %d %sconjugate-gradient iterations per outer step (stop at |r| <= 1e-12 "
           "|g|), %s start, each Hessian-vector product over %s%s; d = %lld",
           s->Q, s->pc ? "preconditioned " : "",
           s->pc     ? "M^-1 g"
           : s->warm ? "warm"
                     : "cold",
           rows, o->batch ? " (stochastic CG)" : " (deterministic CG)", (long long)s->d);
  if (s->pc)
    nhgd_log(NHGD_LOG_INFO,
             "cg: --precond nhgd: every solve starts from NHGD's u = M^-1 g, so --hvp-warm is not "
             "used%s",
             s->Q == 0 ? "; --hvp-steps 0: u is NHGD's u" : "");
  else if (!o->batch && s->Q < s->d)
    nhgd_log(NHGD_LOG_INFO,
             "cg: --hvp-steps %d < d = %lld: CG may stop before it reaches H^-1 g exactly", s->Q,
             (long long)s->d);
  return NHGD_OK;
}

static const nhgd_option_spec cg_specs[] = {
    {"hvp-warm", NHGD_OPT_BOOL, offsetof(cg_opts, warm), sizeof(int), "1", 1, 0, NULL,
     "cg: start from the previous outer step's u (0: from u = 0; not with --precond nhgd, which "
     "starts from M^-1 g)",
     NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

static const nhgd_option_scope cg_scopes[] = {{NULL, "estimator=cg,precond=none"}, {NULL, NULL}};
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
