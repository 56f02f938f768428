/* The `logreg` problem: multinomial logistic regression whose per-feature L2 log-weights v are
 * tuned on the validation cross-entropy (docs/algorithm.md 4.2). */
#include <math.h>

#include "nhgd/errors.h"
#include "problems/builtin.h"

static int logreg_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                             const int *rows, double *g, double *loss) {
  return nhgd_softmax_inner_grad(pb, NULL, theta, v, nb, rows, g, loss);
}

static int logreg_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                               const int *rows, double *S, double *c) {
  return nhgd_softmax_sample_grads(pb, NULL, theta, v, nb, rows, S, c);
}

static int logreg_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                               const int *rows, double *Z) {
  return nhgd_softmax_hess_factors(pb, NULL, theta, v, nb, rows, Z);
}

static int logreg_kron(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                       const int *rows, double *X, double *R, double *A, double *c) {
  return nhgd_softmax_kron_factors(pb, NULL, theta, v, nb, rows, X, R, A, c);
}

static int logreg_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, const double *V, double *HV) {
  return nhgd_softmax_hvp(pb, NULL, theta, v, nb, rows, V, HV);
}

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

static int logreg_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                       const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  return nhgd_softmax_eval(pb, split, theta, loss_sum, gtheta, correct);
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

int nhgd_problem_setup_logreg(nhgd_problem *pb) {
  pb->d = (int64_t)pb->data->m * pb->data->n_classes;
  pb->p = pb->data->m;
  pb->v_per_sample = 0;
  pb->hess_rank = pb->data->n_classes;
  pb->is_classifier = 1;
  pb->init = nhgd_pb_init;
  pb->inner_grad = logreg_inner_grad;
  pb->sample_grads = logreg_sample_grads;
  pb->hess_factors = logreg_hess_factors;
  pb->hvp = logreg_hvp;
  pb->reg = logreg_reg;
  pb->eval = logreg_eval;
  pb->outer_grad_v = NULL;
  pb->cross = logreg_cross;
  pb->kron_m = pb->data->m;
  pb->kron_c = pb->data->n_classes;
  pb->kron_factors = logreg_kron;
  return NHGD_OK;
}
