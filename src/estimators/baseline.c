/* Shared pieces of the baseline estimators cg, neumann and soba: distributed Hessian-vector
 * products over counter-RNG minibatches, and their shared options. */
#include "estimators/baseline.h"

#include <cblas.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"

int nhgd_hvp_init(nhgd_hvp *h, nhgd_est_ctx *c, int64_t batch, const char *who) {
  memset(h, 0, sizeof *h);
  if (!c->pb->ops.hvp)
    NHGD_FAIL(NHGD_ERR_ARG,
              "estimator %s needs Hessian-vector products, but problem '%s' has no hvp callback",
              who, c->pb->name);
  if (c->d > INT_MAX)
    NHGD_FAIL(NHGD_ERR_ARG, "estimator %s: d = %lld is too large", who, (long long)c->d);
  h->d = c->d;
  h->batch = batch;
  const int64_t n_local = c->data->train.n_local;
  const int64_t cap = batch > n_local ? batch : n_local;
  NHGD_CHECK(nhgd_calloc(&h->rows, (size_t)(cap > 0 ? cap : 1), sizeof(int), "HVP rows"));
  NHGD_CHECK(nhgd_calloc(&h->sum, 2 * (size_t)h->d + 1, sizeof(double), "HVP sum"));
  NHGD_CHECK(nhgd_calloc(&h->hdiag, (size_t)h->d, sizeof(double), "Hessian of R"));
  return NHGD_OK;
}

int nhgd_hvp_check_memory(nhgd_est_ctx *c, int64_t batch, int nvec, const char *who) {
  const int64_t n_local = c->data->train.n_local;
  const double rows = (double)(batch > n_local ? batch : n_local);
  const double bytes = 8.0 * (double)c->d * (2.0 + nvec) + 8.0 + 4.0 * (rows > 0 ? rows : 1);
  return nhgd_est_check_memory(c, who, "its vectors", bytes,
                               "no rank count fits (every rank holds them whole): raise "
                               "--mem-per-rank");
}

void nhgd_hvp_free(nhgd_hvp *h) {
  nhgd_free(&h->rows);
  nhgd_free(&h->hdiag);
  nhgd_free(&h->sum);
}

double nhgd_hvp_draw(nhgd_hvp *h, const nhgd_est_ctx *c, int64_t k, int64_t j) {
  const nhgd_split *tr = &c->data->train;
  h->nb = 0;
  if (h->batch == 0) {
    for (int i = 0; i < tr->n_local; ++i)
      h->rows[h->nb++] = i;
    return (double)tr->n_global;
  }
  for (int64_t slot = 0; slot < h->batch; ++slot) {
    int64_t i = (int64_t)nhgd_rng_below(c->seed, NHGD_STREAM_HVP, (uint64_t)k, (uint64_t)j,
                                        (uint64_t)slot, (uint64_t)tr->n_global);
    if (i >= tr->lo && i < tr->lo + tr->n_local) h->rows[h->nb++] = (int)(i - tr->lo);
  }
  return (double)h->batch;
}

int nhgd_hvp_point(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta) {
  int rc = c->pb->ops.reg(c->pb, theta, c->v, NULL, NULL, h->hdiag);
  return nhgd_error_agree(c->comm, rc);
}

int nhgd_hvp_apply_n(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta, int nb, const int *rows,
                     double B, int n, const double *X, double *OUT) {
  const nhgd_problem *pb = c->pb;
  const int64_t d = h->d;
  const size_t nd = (size_t)n * (size_t)d;
  if (n < 1 || n > 2) NHGD_FAIL(NHGD_ERR_INTERNAL, "HVP of %d columns (1 or 2)", n);
  int rc = NHGD_OK;
  if (nb == 0)
    memset(h->sum, 0, nd * sizeof(double));
  else if (n > 1 && pb->ops.hvp_multi) /* one pass over the rows for every column */
    rc = pb->ops.hvp_multi(pb, theta, c->v, nb, rows, n, X, h->sum);
  else
    for (int j = 0; j < n && !rc; ++j)
      rc = pb->ops.hvp(pb, theta, c->v, nb, rows, X + (size_t)j * d, h->sum + (size_t)j * d);
  /* A failure rides on the product's allreduce: no rank is left waiting, and no extra
   * collective per product. */
  h->sum[nd] = rc ? 1.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, h->sum, (int)nd + 1, MPI_DOUBLE, MPI_SUM, c->comm));
  if (h->sum[nd] > 0.0) NHGD_CHECK(nhgd_error_agree(c->comm, rc));
  h->bytes += 8.0 * (double)nd;
  h->products += n;
  *c->samples += B * n;
  const double invB = 1.0 / B;
  for (int j = 0; j < n; ++j)
    for (int64_t i = 0; i < d; ++i)
      OUT[i + (size_t)j * d] =
          h->sum[i + (size_t)j * d] * invB + h->hdiag[i] * X[i + (size_t)j * d];
  return NHGD_OK;
}

int nhgd_hvp_apply(nhgd_hvp *h, nhgd_est_ctx *c, const double *theta, int nb, const int *rows,
                   double B, const double *x, double *out) {
  return nhgd_hvp_apply_n(h, c, theta, nb, rows, B, 1, x, out);
}

void nhgd_hvp_account(nhgd_hvp *h, nhgd_est_ctx *c) {
  *c->comm_bytes += h->bytes;
  *c->comm_steps += c->inner_steps;
  h->bytes = 0.0;
}

int nhgd_hvp_solve(nhgd_hvp *h, nhgd_est_ctx *c, nhgd_hvp_run_fn run, void *state,
                   const double *theta, const double *g, const double *result, double *u) {
  nhgd_timer_start(c->timers, NHGD_T_SOLVE);
  int rc = run(state, c, theta, g);
  nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
  nhgd_hvp_account(h, c);
  NHGD_CHECK(rc);
  memcpy(u, result, (size_t)h->d * sizeof(double));
  return NHGD_OK;
}

double nhgd_baseline_dot(int64_t d, const double *a, const double *b) {
  return cblas_ddot((int)d, a, 1, b, 1);
}

/* --hvp-steps 0 is an estimate of nothing, except for cg started from NHGD's u (--precond
 * nhgd), where it gives that u. */
static int hvp_check(const void *block, const nhgd_options *all) {
  const nhgd_hvp_opts *o = block;
  const char *est = "", *precond = "none";
  nhgd_options_get_string(all, "estimator", &est);
  nhgd_options_get_string(all, "precond", &precond);
  if (o->steps > 0 || (strcmp(est, "cg") && strcmp(est, "neumann"))) return NHGD_OK;
  if (!strcmp(est, "cg") && !strcmp(precond, "nhgd")) return NHGD_OK;
  NHGD_FAIL(NHGD_ERR_ARG,
            "option --hvp-steps 0: estimator %s needs at least one %s (0 is allowed only for cg "
            "with --precond nhgd, which then returns NHGD's u)",
            est, strcmp(est, "cg") ? "term of the series" : "conjugate-gradient iteration");
}

static const nhgd_option_spec hvp_specs[] = {
    {"hvp-steps", NHGD_OPT_INT, offsetof(nhgd_hvp_opts, steps), sizeof(int), "20", 0, 1 << 20, NULL,
     "cg: conjugate-gradient iterations Q (0: only with --precond nhgd); neumann: terms Q of the "
     "series",
     NHGD_OPT_TRAJECTORY},
    {"hvp-batch", NHGD_OPT_I64, offsetof(nhgd_hvp_opts, batch), sizeof(int64_t), "0", 0, 2147483647,
     NULL,
     "training rows of the sampled Hessian (0: all rows): cg one draw per solve, neumann a "
     "fresh draw per term",
     NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

/* soba takes its products over the inner loop's own minibatches: neither option is its. */
static const nhgd_option_scope hvp_scopes[] = {{NULL, "estimator=cg|neumann"}, {NULL, NULL}};

const nhgd_option_block nhgd_hvp_options = {"hvp", hvp_specs, sizeof(nhgd_hvp_opts), hvp_check,
                                            hvp_scopes};
