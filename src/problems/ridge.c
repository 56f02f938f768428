/* The `ridge` problem: a linear-Gaussian model with per-coordinate L2 log-weights v, whose
 * closed forms make it the test oracle for every estimator (docs/algorithm.md 4.1). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

static int block_len(int nb, int b0) {
  return nb - b0 < NHGD_PB_BLOCK ? nb - b0 : NHGD_PB_BLOCK;
}

/* res = y - X_b^T theta for nb contiguous columns of xb. */
static void residuals(int m, int nb, const double *xb, const double *y, const double *theta,
                      double *res) {
  memcpy(res, y, (size_t)nb * sizeof(double));
  cblas_dgemv(CblasColMajor, CblasTrans, m, nb, -1.0, xb, m, theta, 1, 1.0, res, 1);
}

static int ridge_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, double *g, double *loss) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  const nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m;
  const double is2 = 1.0 / (ctx->sigma * ctx->sigma);
  memset(g, 0, (size_t)m * sizeof(double));
  double total = 0.0;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk = block_len(nb, b0);
    NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nk, rows + b0, s));
    residuals(m, nk, s->xb, s->yr, theta, s->rl);
    for (int k = 0; k < nk; k++)
      total += 0.5 * is2 * s->rl[k] * s->rl[k];
    cblas_dgemv(CblasColMajor, CblasNoTrans, m, nk, -is2, s->xb, m, s->rl, 1, 1.0, g, 1);
  }
  *loss = total;
  return NHGD_OK;
}

static int ridge_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *S, double *c) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  const nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m;
  const double is2 = 1.0 / (ctx->sigma * ctx->sigma);
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk = block_len(nb, b0);
    NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nk, rows + b0, s));
    residuals(m, nk, s->xb, s->yr, theta, s->rl);
    for (int k = 0; k < nk; k++) {
      double *col = S + (size_t)(b0 + k) * m;
      const double *x = s->xb + (size_t)k * m;
      for (int j = 0; j < m; j++)
        col[j] = -is2 * s->rl[k] * x[j];
      c[b0 + k] = 1.0;
    }
  }
  return NHGD_OK;
}

/* Hess l_i = x_i x_i^T / sigma^2 whatever theta: the factor is x_i / sigma. */
static int ridge_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *Z) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  const nhgd_split *tr = &pb->data->train;
  const int m = tr->m;
  const double is = 1.0 / ((const nhgd_pb_ctx *)pb->ctx)->sigma;
  for (int k = 0; k < nb; k++) {
    int i = rows[k];
    if (i < 0 || i >= tr->n_local)
      NHGD_FAIL(NHGD_ERR_ARG, "row index %d outside the %d local rows", i, tr->n_local);
    const double *x = tr->X + (size_t)i * m;
    double *col = Z + (size_t)k * m;
    for (int j = 0; j < m; j++)
      col[j] = is * x[j];
  }
  return NHGD_OK;
}

static int ridge_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                     const int *rows, const double *V, double *HV) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  const nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m;
  const double is2 = 1.0 / (ctx->sigma * ctx->sigma);
  memset(HV, 0, (size_t)m * sizeof(double));
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk = block_len(nb, b0);
    NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nk, rows + b0, s));
    cblas_dgemv(CblasColMajor, CblasTrans, m, nk, 1.0, s->xb, m, V, 1, 0.0, s->rl, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, m, nk, is2, s->xb, m, s->rl, 1, 1.0, HV, 1);
  }
  return NHGD_OK;
}

static int ridge_reg(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                     double *grad, double *hdiag) {
  double total = 0.0;
  for (int64_t j = 0; j < pb->d; j++) {
    double ev = exp(v[j]);
    total += 0.5 * ev * theta[j] * theta[j];
    if (grad) grad[j] += ev * theta[j];
    if (hdiag) hdiag[j] = ev;
  }
  if (value) *value = total;
  return NHGD_OK;
}

/* Outer loss per row (y - x^T theta)^2 / 2, so that f is half the validation MSE. */
static int ridge_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                      const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  if (!split) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': eval needs a split", pb->name);
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m, n = split->n_local;
  if (gtheta) memset(gtheta, 0, (size_t)m * sizeof(double));
  double total = 0.0;
  for (int b0 = 0; b0 < n; b0 += NHGD_PB_BLOCK) {
    int nk = block_len(n, b0);
    NHGD_CHECK(nhgd_pb_reserve(s, nk));
    const double *xb = split->X + (size_t)b0 * m;
    residuals(m, nk, xb, split->y_real + b0, theta, s->rl);
    for (int k = 0; k < nk; k++)
      total += 0.5 * s->rl[k] * s->rl[k];
    if (gtheta)
      cblas_dgemv(CblasColMajor, CblasNoTrans, m, nk, -1.0, xb, m, s->rl, 1, 1.0, gtheta, 1);
  }
  *loss_sum = total;
  if (correct) *correct = 0;
  return NHGD_OK;
}

/* d/dv_j of grad_theta R is exp(v_j) theta_j e_j: J is diagonal. */
static int ridge_cross(const nhgd_problem *pb, const double *theta, const double *v,
                       const double *u, double *out) {
  for (int64_t j = 0; j < pb->d; j++)
    out[j] = exp(v[j]) * theta[j] * u[j];
  return NHGD_OK;
}

static const nhgd_problem_ops ridge_ops = {
    .init = nhgd_pb_init,
    .inner_grad = ridge_inner_grad,
    .sample_grads = ridge_sample_grads,
    .hess_factors = ridge_hess_factors,
    .hvp = ridge_hvp,
    .reg = ridge_reg,
    .eval = ridge_eval,
    .cross = ridge_cross,
    .destroy = nhgd_pb_destroy_ctx,
};

int nhgd_problem_setup_ridge(nhgd_problem *pb) {
  pb->d = pb->data->m;
  pb->p = pb->data->m;
  pb->v_per_sample = 0;
  pb->hess_rank = 1;
  pb->is_classifier = 0;
  pb->ops = ridge_ops;
  return NHGD_OK;
}
