/* The `hyperclean` problem: data hyper-cleaning, one weight logit per training row, tuned on
 * the cross-entropy of clean validation data (docs/algorithm.md 4.3). */
#include <cblas.h>
#include <math.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

static double clean_weight(const double *v, int row) {
  return nhgd_pb_sigmoid(v[row]);
}

static int hc_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                         const int *rows, double *g, double *loss) {
  return nhgd_softmax_inner_grad(pb, clean_weight, theta, v, nb, rows, g, loss);
}

static int hc_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, double *S, double *c) {
  return nhgd_softmax_sample_grads(pb, clean_weight, theta, v, nb, rows, S, c);
}

static int hc_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, double *Z) {
  return nhgd_softmax_hess_factors(pb, clean_weight, theta, v, nb, rows, Z);
}

static int hc_kron(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                   const int *rows, double *X, double *R, double *A, double *c) {
  return nhgd_softmax_kron_factors(pb, clean_weight, theta, v, nb, rows, X, R, A, c);
}

static int hc_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                  const int *rows, const double *V, double *HV) {
  return nhgd_softmax_hvp(pb, clean_weight, theta, v, nb, rows, V, HV);
}

static int hc_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                   const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  return nhgd_softmax_eval(pb, split, theta, loss_sum, gtheta, correct);
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

int nhgd_problem_setup_hyperclean(nhgd_problem *pb) {
  pb->d = (int64_t)pb->data->m * pb->data->n_classes;
  pb->p = pb->data->train.n_global;
  pb->v_per_sample = 1;
  pb->hess_rank = pb->data->n_classes;
  pb->is_classifier = 1;
  pb->init = nhgd_pb_init;
  pb->inner_grad = hc_inner_grad;
  pb->sample_grads = hc_sample_grads;
  pb->hess_factors = hc_hess_factors;
  pb->hvp = hc_hvp;
  pb->reg = nhgd_pb_reg_clean;
  pb->eval = hc_eval;
  pb->outer_grad_v = NULL;
  pb->cross = hc_cross;
  pb->kron_m = pb->data->m;
  pb->kron_c = pb->data->n_classes;
  pb->kron_factors = hc_kron;
  return NHGD_OK;
}
