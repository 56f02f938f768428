/* The `hyperclean` problem: data hyper-cleaning, one weight logit per training row, tuned on
 * the cross-entropy of clean validation data (docs/algorithm.md 4.3). */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

static double clean_weight(const double *v, int row) {
  return nhgd_pb_sigmoid(v[row]);
}

static double clean_weight_d(const double *v, int row) {
  const double sg = nhgd_pb_sigmoid(v[row]);
  return sg * (1.0 - sg);
}

/* (J^T u)_i = (1/n) sigmoid'(v_i) <s_i, u> with <s_i, u> = r_i^T (U^T x_i). W and U are packed
 * side by side once per call, so that one GEMM per block of local rows gives the logits W^T x_i
 * and U^T x_i together: each block of X is read once, and no per-sample d-vector is formed. */
static int hc_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                    double *out) {
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const nhgd_split *tr = &pb->data->train;
  const int m = s->m, C = s->C, n = tr->n_local;
  const size_t mC = (size_t)m * C;
  const double inv_n = 1.0 / (double)tr->n_global;
  if (n == 0) return NHGD_OK;
  /* The first block is the longest: no block after it reallocates the packed pair. */
  NHGD_CHECK(nhgd_pb_reserve(s, n < NHGD_PB_BLOCK ? n : NHGD_PB_BLOCK));
  memcpy(s->wu, theta, mC * sizeof(double));
  memcpy(s->wu + mC, u, mC * sizeof(double));
  for (int b0 = 0; b0 < n; b0 += NHGD_PB_BLOCK) {
    int nk = n - b0 < NHGD_PB_BLOCK ? n - b0 : NHGD_PB_BLOCK;
    const double *xb = tr->X + (size_t)b0 * m;
    const int32_t *y = tr->y_class + b0;
    /* Column k of zw: the C logits of row k, then the C entries of U^T x_k. */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, 2 * C, nk, m, 1.0, s->wu, m, xb, m, 0.0,
                s->zw, 2 * C);
    for (int k = 0; k < nk; k++)
      memcpy(s->za + (size_t)k * C, s->zw + (size_t)k * 2 * C, (size_t)C * sizeof(double));
    nhgd_softmax_probs(C, nk, s->za, y, NULL, NULL);
    nhgd_softmax_residuals(C, nk, s->za, y, NULL);
    for (int k = 0; k < nk; k++) {
      const double *r = s->za + (size_t)k * C, *a = s->zw + (size_t)k * 2 * C + C;
      double dot = 0.0;
      for (int c = 0; c < C; c++)
        dot += r[c] * a[c];
      double sg = nhgd_pb_sigmoid(v[b0 + k]);
      out[b0 + k] = inv_n * sg * (1.0 - sg) * dot;
    }
  }
  return NHGD_OK;
}

static const nhgd_problem_ops hc_ops = {
    .init = nhgd_pb_init,
    .inner_grad = nhgd_softmax_inner_grad,
    .sample_grads = nhgd_softmax_sample_grads,
    .hess_factors = nhgd_softmax_hess_factors,
    .hvp = nhgd_softmax_hvp,
    .hvp_multi = nhgd_softmax_hvp_multi,
    .reg = nhgd_pb_reg_clean,
    .eval = nhgd_softmax_eval,
    .cross = hc_cross,
    .destroy = nhgd_pb_destroy_ctx,
    .kron_factors = nhgd_softmax_kron_factors,
    .cross_keep = nhgd_softmax_cross_keep,
    .cross_apply = nhgd_softmax_cross_apply,
};

int nhgd_problem_setup_hyperclean(nhgd_problem *pb) {
  ((nhgd_pb_ctx *)pb->ctx)->row_weight = clean_weight;
  ((nhgd_pb_ctx *)pb->ctx)->row_weight_d = clean_weight_d;
  pb->d = (int64_t)pb->data->m * pb->data->n_classes;
  pb->p = pb->data->train.n_global;
  pb->v_per_sample = 1;
  pb->hess_rank = pb->data->n_classes;
  pb->is_classifier = 1;
  pb->kron_m = pb->data->m;
  pb->kron_c = pb->data->n_classes;
  pb->ops = hc_ops;
  pb->cross_width = pb->data->n_classes;
  return NHGD_OK;
}
