/* The `hyperclean` problem: data hyper-cleaning, one weight logit per training row, tuned on
 * the cross-entropy of clean validation data (docs/algorithm.md 4.3). */
#include <cblas.h>
#include <math.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

static double clean_weight(const double *v, int row) {
  return nhgd_pb_sigmoid(v[row]);
}

static double clean_weight_d(const double *v, int row) {
  const double sg = nhgd_pb_sigmoid(v[row]);
  return sg * (1.0 - sg);
}

/* (J^T u)_i = (1/n) sigmoid'(v_i) <s_i, u> with <s_i, u> = r_i^T (U^T x_i): one GEMM gives
 * U^T x_i for a block of local rows, so no per-sample d-vector is ever formed. */
static int hc_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                    double *out) {
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const nhgd_split *tr = &pb->data->train;
  const int m = s->m, C = s->C, n = tr->n_local;
  const double inv_n = 1.0 / (double)tr->n_global;
  for (int b0 = 0; b0 < n; b0 += NHGD_PB_BLOCK) {
    int nk = n - b0 < NHGD_PB_BLOCK ? n - b0 : NHGD_PB_BLOCK;
    NHGD_CHECK(nhgd_pb_reserve(s, nk));
    const double *xb = tr->X + (size_t)b0 * m;
    const int32_t *y = tr->y_class + b0;
    nhgd_softmax_logits(m, C, nk, xb, theta, s->za);
    nhgd_softmax_probs(C, nk, s->za, y, NULL, NULL);
    nhgd_softmax_residuals(C, nk, s->za, y, NULL);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, C, nk, m, 1.0, u, m, xb, m, 0.0, s->zb, C);
    for (int k = 0; k < nk; k++) {
      const double *r = s->za + (size_t)k * C, *a = s->zb + (size_t)k * C;
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
