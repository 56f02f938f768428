/* Estimator `nbo` (curvature-aware hypergradients with an inexact Newton step; docs/algorithm.md
 * 5.2): after the inner loop, at theta = theta_T, the inner problem's Newton direction and the
 * hypergradient's linear system share one Hessian H = Hess_theta g(v, theta) and are solved
 * together:
 *   H d = grad_theta g(v, theta)                  (Newton direction of the inner problem)
 *   H u = grad_theta f(v, theta), from u_prev     (the paper's H w = H u_prev - g_f, u = u_prev -
 * w) each inexactly by Q steps (--nbo-steps) of gd   x <- x - eta (H x - b) on one minibatch S per
 * outer step (all rows with --nbo-batch 0), cg   conjugate gradients on the same fixed H_S (both
 * systems in lockstep, nhgd_pcg), sgd  x <- x - eta (H_{S_j} x - b_{S_j}) with a fresh minibatch
 * S_j per step (the Newton right-hand side is the gradient on S_j too; the validation gradient is
 * the engine's), every product of a step taken for both systems at once (two columns, one
 * reduction). Then
 * (--nbo-newton 1) theta <- theta - d through the estimator's correct op, before the engine
 * forms h = grad_v f - J^T u at the corrected theta and before the next inner loop starts
 * from it. Minibatches come from the counter RNG keyed by (seed, HVP stream, outer k, step j,
 * slot), so the run does not depend on the number of ranks.
 *
 * With --precond nhgd, M^{-1} of the nhgd estimator of the same run preconditions both systems
 * and gives their starts, d_0 = M^{-1} grad g and u_0 = M^{-1} g_f: with Q = 0, u is NHGD's u;
 * cg then runs Q + 1 iterations from zero, whose first iterate is that start rescaled by an
 * exact line search.
 * Without it the starts are d_0 = 0 and u_0 = u_prev (the previous outer step's u, which
 * every checkpoint holds).
 *
 * Reduction to SOBA: gd with Q = 1, eta = rho, --inner-steps 0 and full batches gives
 * theta <- theta - rho grad g(theta) and u <- u_prev - rho (H u_prev - g_f), both at the
 * theta the outer step starts from: SOBA's theta and z steps with --inner-steps 1,
 * --inner-lr rho and --soba-rho rho (tests/estimators/test_nbo.c). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/baseline.h"
#include "estimators/pcg.h"
#include "estimators/precond.h"

enum { NBO_GD = 0, NBO_CG, NBO_SGD };
static const char *const solver_names[] = {"gd", "cg", "sgd"};

typedef struct nbo_opts {
  char solver[8]; /* gd | cg | sgd */
  int steps;      /* Q */
  double lr;      /* eta of gd and sgd */
  int64_t batch;  /* rows per minibatch (0: all) */
  int newton;     /* take the Newton step */
} nbo_opts;

typedef struct nbo_state {
  nhgd_hvp hvp;
  nhgd_est_ctx *c;
  nhgd_precond *pre;
  int64_t d, k;
  int solver, Q, newton, n; /* n: systems solved (2 with the Newton step, else 1) */
  double lr;
  const double *theta; /* of the solve in progress */
  double B;            /* rows of the current minibatch */
  double *X;           /* d x 2: [d, u] */
  double *Bm;          /* d x 2: right-hand sides [grad g, g_f] */
  double *HX, *Z;      /* d x 2 */
  double *work;        /* 6 d x 2: pcg */
  double dnorm;        /* |d| of the last solve */
} nbo_state;

static void nbo_release(nhgd_estimator *est) {
  nbo_state *s = est->state;
  nhgd_precond_destroy(&s->pre);
  nhgd_hvp_free(&s->hvp);
  double **bufs[] = {&s->X, &s->Bm, &s->HX, &s->Z, &s->work};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
}

/* Collective: OUT = H_S X for the n columns of X over the current minibatch, both systems in
 * one pass and one allreduce. */
static int hvp_op(void *arg, int n, const double *X, double *OUT) {
  nbo_state *s = arg;
  return nhgd_hvp_apply_n(&s->hvp, s->c, s->theta, s->hvp.nb, s->hvp.rows, s->B, n, X, OUT);
}

/* Collective: OUT = M^{-1} X column by column. */
static int prec_op(void *arg, int n, const double *X, double *OUT) {
  nbo_state *s = arg;
  for (int j = 0; j < n; ++j)
    NHGD_CHECK(nhgd_precond_apply(s->pre, s->theta, X + (size_t)j * s->d, OUT + (size_t)j * s->d));
  return NHGD_OK;
}

/* Collective: draw minibatch j of the outer step and, with the Newton step, the gradient of
 * the inner objective on it into column 0 of Bm: (1/B) sum w_i grad l_i + grad R. */
static int draw(nbo_state *s, int64_t j) {
  nhgd_est_ctx *c = s->c;
  const nhgd_problem *pb = c->pb;
  const int64_t d = s->d;
  s->B = nhgd_hvp_draw(&s->hvp, c, s->k, j);
  if (!s->newton) return NHGD_OK;
  double loss = 0.0;
  int rc = NHGD_OK;
  if (s->hvp.nb > 0)
    rc = pb->ops.inner_grad(pb, s->theta, c->v, s->hvp.nb, s->hvp.rows, s->hvp.sum, &loss);
  else
    memset(s->hvp.sum, 0, (size_t)d * sizeof(double));
  s->hvp.sum[d] = rc ? 1.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, s->hvp.sum, (int)d + 1, MPI_DOUBLE, MPI_SUM, c->comm));
  if (s->hvp.sum[d] > 0.0) NHGD_CHECK(nhgd_error_agree(c->comm, rc));
  s->hvp.bytes += 8.0 * (double)(d + 1);
  *c->samples += s->B;
  const double invB = 1.0 / s->B;
  for (int64_t i = 0; i < d; ++i)
    s->Bm[i] = s->hvp.sum[i] * invB;
  rc = pb->ops.reg(pb, s->theta, c->v, NULL, s->Bm, NULL);
  return nhgd_error_agree(c->comm, rc);
}

/* Q steps of (preconditioned) gradient descent on the quadratics 1/2 x^T H x - b^T x, a fresh
 * minibatch per step for sgd. */
static int descend(nbo_state *s) {
  const int64_t d = s->d;
  const int n = s->n, col0 = 2 - n; /* without the Newton step only column 1 (u) */
  double *X = s->X + (size_t)col0 * d, *Bm = s->Bm + (size_t)col0 * d;
  for (int q = 0; q < s->Q; ++q) {
    if (s->solver == NBO_SGD && q > 0) NHGD_CHECK(draw(s, q));
    NHGD_CHECK(hvp_op(s, n, X, s->HX));
    for (size_t i = 0; i < (size_t)n * d; ++i)
      s->HX[i] -= Bm[i];
    const double *step = s->HX;
    if (s->pre) {
      NHGD_CHECK(prec_op(s, n, s->HX, s->Z));
      step = s->Z;
    }
    int finite = 1;
    for (size_t i = 0; i < (size_t)n * d; ++i) {
      X[i] -= s->lr * step[i];
      finite &= isfinite(X[i]);
    }
    if (!finite)
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "nbo: the %s iterates diverged at step %d of outer step %lld: --nbo-lr %g is too "
                "large (it must stay below 2 / lambda_max of the %sHessian)",
                solver_names[s->solver], q, (long long)s->k, s->lr,
                s->pre ? "preconditioned " : "");
  }
  return NHGD_OK;
}

static int nbo_run(void *state, nhgd_est_ctx *c, const double *theta, const double *g) {
  nbo_state *s = state;
  const int64_t d = s->d;
  const size_t bytes = (size_t)d * sizeof(double);
  s->theta = theta;
  NHGD_CHECK(nhgd_hvp_point(&s->hvp, c, theta));
  NHGD_CHECK(draw(s, 0));
  memcpy(s->Bm + d, g, bytes);
  /* The starts: M^{-1} b (M^{-1} g_f is already in the u column: nbo_solve), or d_0 = 0 and
   * u_0 = u_prev. */
  if (s->pre) {
    if (s->newton) NHGD_CHECK(nhgd_precond_apply(s->pre, theta, s->Bm, s->X));
  } else {
    memset(s->X, 0, bytes);
    memcpy(s->X + d, c->u_prev, bytes);
  }
  const int col0 = 2 - s->n;
  const int64_t before = s->hvp.products;
  if (s->solver == NBO_CG) {
    char who[64];
    snprintf(who, sizeof who, "nbo cg at outer step %lld", (long long)s->k);
    nhgd_pcg_stats st;
    /* Unpreconditioned, d_0 = 0 needs no product for its residual and u_0 = u_prev one.
     * Preconditioned, both from zero with one iteration more: the first iterate is M^{-1} b
     * at the length of an exact line search (the kernel's first z is the application that gave
     * the start, kept by the preconditioner), then Q more. */
    int start = 1 << (s->n - 1), iters = s->Q;
    if (s->pre && s->Q > 0) {
      memset(s->X, 0, 2 * bytes);
      start = 0;
      iters = s->Q + 1;
    }
    NHGD_CHECK(nhgd_pcg(d, s->n, hvp_op, s, s->pre ? prec_op : NULL, s, s->Bm + (size_t)col0 * d,
                        s->X + (size_t)col0 * d, start, iters, 1e-12, who, s->work, &st));
    nhgd_log(NHGD_LOG_DEBUG, "nbo cg: outer step %lld: %d iterations, |r| / |b| = %.3e (u)%s%.3e",
             (long long)s->k, st.iters, st.rel[s->n - 1], s->newton ? ", Newton " : "",
             s->newton ? st.rel[0] : 0.0);
  } else {
    NHGD_CHECK(descend(s));
  }
  s->dnorm = s->newton ? sqrt(nhgd_baseline_dot(d, s->X, s->X)) : 0.0;
  nhgd_log(NHGD_LOG_DEBUG, "nbo: outer step %lld: %lld products, |d| = %.3e", (long long)s->k,
           (long long)(s->hvp.products - before), s->dnorm);
  return NHGD_OK;
}

static int nbo_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  nbo_state *s = est->state;
  s->k = k;
  return s->pre ? nhgd_precond_begin(s->pre, k, theta0) : NHGD_OK;
}

static int nbo_observe(nhgd_estimator *est, const double *theta, int nb, const int *rows) {
  nbo_state *s = est->state;
  return nhgd_precond_observe(s->pre, theta, nb, rows);
}

static int nbo_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  nbo_state *s = est->state;
  /* The first application of M^{-1} in the outer step completes M: outside the solve's timer,
   * timed and charged as the nhgd estimator's own, as cg does. */
  if (s->pre) NHGD_CHECK(nhgd_precond_apply(s->pre, theta, g, s->X + s->d));
  return nhgd_hvp_solve(&s->hvp, est->ctx, nbo_run, s, theta, g, s->X + s->d, u);
}

/* theta <- theta - d: the Newton step, after the solve of the same outer step. */
static int nbo_correct(nhgd_estimator *est, double *theta) {
  nbo_state *s = est->state;
  if (!s->newton) return NHGD_OK;
  int finite = 1;
  for (int64_t i = 0; i < s->d; ++i) {
    theta[i] -= s->X[i];
    finite &= isfinite(theta[i]);
  }
  /* theta and d are replicated: every rank reaches the same verdict. */
  if (!finite)
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "nbo: the Newton step of outer step %lld made theta non-finite (|d| = %g): %s",
              (long long)s->k, s->dnorm,
              s->solver == NBO_CG ? "the Hessian is nearly singular here; take fewer --nbo-steps "
                                    "or --nbo-newton 0"
                                  : "lower --nbo-lr");
  return NHGD_OK;
}

static void nbo_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const nbo_state *s = est->state;
  if (s->solver != NBO_CG)
    snprintf(buf, len,
             "lower --nbo-lr (now %g): the %s iterates grow without bound when it is above 2 / "
             "lambda_max(H)",
             s->lr, solver_names[s->solver]);
  else if (s->pre)
    nhgd_precond_advice(s->pre, buf, len);
  else
    nhgd_est_hessian_advice(est, buf, len);
}

static int nbo_save(nhgd_estimator *est, nhgd_section *sec) {
  nbo_state *s = est->state;
  return s->pre ? nhgd_precond_save(s->pre, sec) : NHGD_OK;
}

static int nbo_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  nbo_state *s = est->state;
  s->k = k;
  return s->pre ? nhgd_precond_load(s->pre, sec, k) : NHGD_OK;
}

static int nbo_load_kept(nhgd_estimator *est, nhgd_section *sec) {
  nbo_state *s = est->state;
  return s->pre ? nhgd_precond_load_kept(s->pre, sec) : NHGD_OK;
}

static const nhgd_estimator_ops nbo_ops_precond;

static int nbo_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  nbo_state *s = est->state;
  const nbo_opts *o = c->opt;
  s->c = c;
  s->d = c->d;
  for (s->solver = 0; s->solver < 3 && strcmp(o->solver, solver_names[s->solver]); ++s->solver)
    ;
  s->Q = o->steps;
  s->lr = o->lr;
  s->newton = o->newton;
  s->n = s->newton ? 2 : 1;
  NHGD_CHECK(nhgd_hvp_check_memory(c, o->batch, 16, "nbo"));
  NHGD_CHECK(nhgd_hvp_init(&s->hvp, c, o->batch, "nbo"));
  if (s->newton && !c->pb->ops.inner_grad)
    NHGD_FAIL(NHGD_ERR_ARG, "nbo: problem '%s' has no inner gradient for the Newton step",
              c->pb->name);
  const size_t d = (size_t)s->d;
  NHGD_CHECK(nhgd_calloc(&s->X, 2 * d, sizeof(double), "nbo vectors"));
  NHGD_CHECK(nhgd_calloc(&s->Bm, 2 * d, sizeof(double), "nbo vectors"));
  NHGD_CHECK(nhgd_calloc(&s->HX, 2 * d, sizeof(double), "nbo vectors"));
  NHGD_CHECK(nhgd_calloc(&s->Z, 2 * d, sizeof(double), "nbo vectors"));
  NHGD_CHECK(nhgd_calloc(&s->work, 12 * d, sizeof(double), "nbo vectors"));
  NHGD_CHECK(nhgd_precond_create(c, resume, "nbo", &s->pre));
  if (s->pre) est->ops = &nbo_ops_precond;
  char rows[80] = "all training rows";
  if (o->batch)
    snprintf(rows, sizeof rows, "%s minibatch of %lld rows",
             s->solver == NBO_SGD ? "a fresh" : "one", (long long)o->batch);
  char lr[48] = "";
  if (s->solver != NBO_CG) snprintf(lr, sizeof lr, ", eta = %g", s->lr);
  nhgd_log(NHGD_LOG_INFO,
           "nbo: %s, %d steps per outer step on %s%s%s, products over %s%s; d = %lld",
           solver_names[s->solver], s->Q,
           s->newton ? "the Newton system H d = grad g and H u = g_f" : "H u = g_f only", lr,
           s->pre ? ", preconditioned by NHGD's M and started from M^-1 b" : "", rows,
           s->solver == NBO_SGD && o->batch ? " per step" : "", (long long)s->d);
  return NHGD_OK;
}

/* Q = 0 is a start without steps: only the preconditioner gives a start worth having. */
static int nbo_check(const void *block, const nhgd_options *all) {
  const nbo_opts *o = block;
  const char *est = NULL, *pre = NULL;
  if (o->steps == 0 && !nhgd_options_get_string(all, "estimator", &est) && !strcmp(est, "nbo") &&
      !nhgd_options_get_string(all, "precond", &pre) && strcmp(pre, "nhgd") != 0)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --nbo-steps 0: without --precond nhgd it leaves d at 0 and u at the "
              "previous outer step's u (0 at the start); take at least one step, or start from "
              "NHGD's answer with --precond nhgd");
  return NHGD_OK;
}

#define F(field) offsetof(nbo_opts, field), sizeof(((nbo_opts *)0)->field)
static const nhgd_option_spec nbo_specs[] = {
    {"nbo-solver", NHGD_OPT_CHOICE, F(solver), "gd", 1, 0, "gd|cg|sgd",
     "nbo: how the Newton and hypergradient systems are solved (gd, cg: one minibatch per outer "
     "step; sgd: a fresh one per step; the default by bench/precond_fmnist.sh)",
     NHGD_OPT_TRAJECTORY},
    {"nbo-steps", NHGD_OPT_INT, F(steps), "3", 0, 1 << 20, NULL,
     "nbo: steps Q per system per outer step (each costs one Hessian-vector product per system)",
     NHGD_OPT_TRAJECTORY},
    {"nbo-lr", NHGD_OPT_REAL, F(lr), "0.1", 0, 1e12, NULL,
     "nbo: step eta of gd and sgd on the quadratics (needs eta < 2 / lambda_max(H))",
     NHGD_OPT_TRAJECTORY | NHGD_OPT_MIN_OPEN},
    {"nbo-batch", NHGD_OPT_I64, F(batch), "256", 0, 2147483647, NULL,
     "nbo: training rows of each sampled Hessian and Newton gradient (0: all rows)",
     NHGD_OPT_TRAJECTORY},
    {"nbo-newton", NHGD_OPT_BOOL, F(newton), "1", 1, 0, NULL,
     "nbo: take the inner Newton step theta -= d after the inner loop (0: solve only for u)",
     NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F

static const nhgd_option_scope nbo_scopes[] = {
    {"nbo-lr", "estimator=nbo,nbo-solver=gd|sgd"}, {NULL, "estimator=nbo"}, {NULL, NULL}};
static const nhgd_option_block nbo_options = {"nbo", nbo_specs, sizeof(nbo_opts), nbo_check,
                                              nbo_scopes};

#define NBO_OPS(observing)                                                                         \
  {                                                                                                \
    .needs_observe = (observing), .begin = nbo_begin, .observe = nbo_observe, .solve = nbo_solve,  \
    .correct = nbo_correct, .save = nbo_save, .load = nbo_load, .load_kept = nbo_load_kept,        \
    .release = nbo_release, .advice = nbo_advice                                                   \
  }
static const nhgd_estimator_ops nbo_ops_precond = NBO_OPS(1);

const nhgd_estimator_desc nhgd_estimator_nbo = {
    .name = "nbo",
    .options = &nbo_options,
    .state_size = sizeof(nbo_state),
    .ops = NBO_OPS(0),
    .init = nbo_init,
};
