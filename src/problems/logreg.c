/* The `logreg` problem: multinomial logistic regression whose per-feature L2 log-weights v are
 * tuned on the validation cross-entropy (docs/algorithm.md 4.2). */
#include <math.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

/* R = (1/2) sum_j exp(v_j) sum_c W_jc^2: one weight per input feature, shared by its row of W. */
static int logreg_reg(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                      double *grad, double *hdiag) {
  const int m = pb->data->m, C = pb->data->n_classes;
  double total = 0.0;
  for (int c = 0; c < C; c++)
    for (int j = 0; j < m; j++) {
      size_t k = (size_t)j + (size_t)c * m;
      double ev = exp(v[j]);
      total += 0.5 * ev * theta[k] * theta[k];
      if (grad) grad[k] += ev * theta[k];
      if (hdiag) hdiag[k] = ev;
    }
  if (value) *value = total;
  return NHGD_OK;
}

/* d/dv_j of grad_W R is exp(v_j) W_j (row j of W), so (J^T u)_j = exp(v_j) <W_j, U_j>. */
static int logreg_cross(const nhgd_problem *pb, const double *theta, const double *v,
                        const double *u, double *out) {
  const int m = pb->data->m, C = pb->data->n_classes;
  for (int j = 0; j < m; j++) {
    double dot = 0.0;
    for (int c = 0; c < C; c++) {
      size_t k = (size_t)j + (size_t)c * m;
      dot += theta[k] * u[k];
    }
    out[j] = exp(v[j]) * dot;
  }
  return NHGD_OK;
}

static const nhgd_problem_ops logreg_ops = {
    .init = nhgd_pb_init,
    .inner_grad = nhgd_softmax_inner_grad,
    .sample_grads = nhgd_softmax_sample_grads,
    .hess_factors = nhgd_softmax_hess_factors,
    .hvp = nhgd_softmax_hvp,
    .hvp_multi = nhgd_softmax_hvp_multi,
    .reg = logreg_reg,
    .eval = nhgd_softmax_eval,
    .cross = logreg_cross,
    .destroy = nhgd_pb_destroy_ctx,
    .kron_factors = nhgd_softmax_kron_factors,
};

int nhgd_problem_setup_logreg(nhgd_problem *pb) {
  pb->d = (int64_t)pb->data->m * pb->data->n_classes;
  pb->p = pb->data->m;
  pb->v_per_sample = 0;
  pb->hess_rank = pb->data->n_classes;
  pb->is_classifier = 1;
  pb->kron_m = pb->data->m;
  pb->kron_c = pb->data->n_classes;
  pb->ops = logreg_ops;
  return NHGD_OK;
}
