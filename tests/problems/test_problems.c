/* Unit tests of the built-in problems: every derivative against central finite differences,
 * the consistency of the batched callbacks, stability, blocking, and the registry's errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "nhgd/errors.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"
#include "pb_fixture.h"

#define SEED 20240607u
#define M 6
#define NCLASS 3
#define NTRAIN 20
#define NVAL 10
#define NTEST 9
#define FD_H 1e-6
#define FD_RTOL 1e-6
#define EXACT_RTOL 1e-11

typedef struct fx {
  nhgd_data data;
  nhgd_problem *pb;
  int64_t d, nv; /* inner dimension, entries of this rank's v */
  double *theta, *v;
  double sigma, clean_reg;
} fx;

/* ---- helpers ---- */

static void all_finite(const double *x, int64_t n, const char *what) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) fail_msg("%s[%lld] = %g is not finite", what, (long long)i, x[i]);
}

static double sigmoid_ref(double v) {
  return 1.0 / (1.0 + exp(-v));
}

/* Weight of local training row i as the model defines it. */
static double ref_weight(const fx *f, const double *v, int i) {
  return f->pb->v_per_sample ? sigmoid_ref(v[i]) : 1.0;
}

static void ref_logits(const fx *f, const double *x, const double *theta, double *z) {
  int C = f->data.n_classes;
  for (int c = 0; c < C; c++) {
    z[c] = 0.0;
    for (int j = 0; j < M; j++)
      z[c] += x[j] * theta[j + c * M];
  }
}

/* Unweighted per-row loss: cross-entropy, or (y - x^T theta)^2 / (2 scale^2). */
static double ref_row_loss(const fx *f, const nhgd_split *s, int i, const double *theta,
                           double scale) {
  const double *x = s->X + (size_t)i * M;
  if (!f->pb->is_classifier) {
    double r = s->y_real[i];
    for (int j = 0; j < M; j++)
      r -= x[j] * theta[j];
    return r * r / (2.0 * scale * scale);
  }
  double z[NCLASS], zmax = -INFINITY, sum = 0.0;
  ref_logits(f, x, theta, z);
  for (int c = 0; c < NCLASS; c++)
    zmax = z[c] > zmax ? z[c] : zmax;
  for (int c = 0; c < NCLASS; c++)
    sum += exp(z[c] - zmax);
  return zmax + log(sum) - z[s->y_class[i]];
}

static double inner_value(const fx *f, const double *theta, const double *v, int nb,
                          const int *rows) {
  double *g = vec(f->d), loss = NAN;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, theta, v, nb, rows, g, &loss), 0);
  free(g);
  return loss;
}

static void inner_gradient(const fx *f, const double *theta, const double *v, int nb,
                           const int *rows, double *g) {
  double loss;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, theta, v, nb, rows, g, &loss), 0);
}

/* A batch with a repeated row, as minibatches drawn with replacement have. */
static const int batch_rows[] = {3, 0, 17, 5, 5, 11, 19, 8, 2, 14, 9, 6};
#define NB ((int)(sizeof batch_rows / sizeof batch_rows[0]))

static int all_rows[NTRAIN];

/* ---- fixtures ---- */

static int setup_problem(void **state, const char *name, int C) {
  fx *f = calloc(1, sizeof *f);
  if (!f) return -1;
  td_make(&f->data, MPI_COMM_WORLD, SEED, M, C, NTRAIN, NVAL, NTEST);
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = 0.7;
  pp.clean_reg = 0.05;
  pp.v_init = 0.25;
  f->sigma = pp.noise_sigma;
  f->clean_reg = pp.clean_reg;
  if (nhgd_problem_create(name, &f->data, &pp, &f->pb) != 0) {
    fprintf(stderr, "create %s: %s\n", name, nhgd_error_message());
    return -1;
  }
  f->d = f->pb->d;
  f->nv = f->pb->v_per_sample ? f->data.train.n_local : f->pb->p;
  f->theta = vec(f->d);
  f->v = vec(f->nv);
  td_fill(f->theta, f->d, SEED, 1, 0.5);
  td_fill(f->v, f->nv, SEED, 2, 0.7);
  for (int i = 0; i < NTRAIN; i++)
    all_rows[i] = i;
  *state = f;
  return 0;
}

static int setup_ridge(void **state) {
  return setup_problem(state, "ridge", 0);
}
static int setup_logreg(void **state) {
  return setup_problem(state, "logreg", NCLASS);
}
static int setup_hyperclean(void **state) {
  return setup_problem(state, "hyperclean", NCLASS);
}

static int teardown_problem(void **state) {
  fx *f = *state;
  if (!f) return 0;
  nhgd_problem_destroy(&f->pb);
  td_free(&f->data);
  free(f->theta);
  free(f->v);
  free(f);
  return 0;
}

/* ---- tests run for every problem ---- */

/* Dimensions and initial values follow the problem's definition. */
static void test_dims_init(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  int classifier = f->data.task == NHGD_TASK_CLASSIFICATION;
  assert_int_equal(pb->d, classifier ? M * NCLASS : M);
  assert_int_equal(pb->hess_rank, classifier ? NCLASS : 1);
  assert_int_equal(pb->is_classifier, classifier);
  if (strcmp(pb->name, "hyperclean") == 0) {
    assert_int_equal(pb->v_per_sample, 1);
    assert_int_equal(pb->p, NTRAIN);
  } else {
    assert_int_equal(pb->v_per_sample, 0);
    assert_int_equal(pb->p, M);
  }
  assert_null(pb->ops.outer_grad_v);
  assert_ptr_equal(pb->data, &f->data);
  double *theta = vec(f->d), *v = vec(f->nv);
  for (int64_t k = 0; k < f->d; k++)
    theta[k] = 9.0;
  assert_int_equal(pb->ops.init(pb, theta, v), 0);
  for (int64_t k = 0; k < f->d; k++)
    assert_true(theta[k] == 0.0);
  for (int64_t k = 0; k < f->nv; k++)
    assert_true(v[k] == 0.25);
  free(theta);
  free(v);
}

/* inner_grad's gradient is the derivative of its loss, and its loss is the weighted sum of
 * independently computed per-row losses. */
static void test_inner_grad_fd(void **state) {
  fx *f = *state;
  double *g = vec(f->d), *fd = vec(f->d), *t = vec(f->d), loss;
  for (int64_t k = 0; k < f->d; k++)
    g[k] = 123.0; /* must be zeroed by the callback */
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, NB, batch_rows, g, &loss), 0);
  double ref = 0.0;
  for (int k = 0; k < NB; k++)
    ref += ref_weight(f, f->v, batch_rows[k]) * ref_row_loss(f, &f->data.train, batch_rows[k],
                                                             f->theta,
                                                             f->pb->is_classifier ? 1.0 : f->sigma);
  assert_true(fabs(loss - ref) <= 1e-12 * fabs(ref));
  for (int64_t k = 0; k < f->d; k++) {
    memcpy(t, f->theta, (size_t)f->d * sizeof(double));
    t[k] += FD_H;
    double lp = inner_value(f, t, f->v, NB, batch_rows);
    t[k] -= 2 * FD_H;
    double lm = inner_value(f, t, f->v, NB, batch_rows);
    fd[k] = (lp - lm) / (2 * FD_H);
  }
  expect_close(g, fd, f->d, FD_RTOL, 1e-2, "inner_grad vs finite differences");
  free(g);
  free(fd);
  free(t);
}

/* sum_k c_k S_k equals inner_grad's g, and c_k is the row's weight. */
static void test_sample_grads(void **state) {
  fx *f = *state;
  double *S = vec(f->d * NB), c[NB], *g = vec(f->d), *sum = vec(f->d);
  assert_int_equal(f->pb->ops.sample_grads(f->pb, f->theta, f->v, NB, batch_rows, S, c), 0);
  inner_gradient(f, f->theta, f->v, NB, batch_rows, g);
  for (int k = 0; k < NB; k++) {
    double w = ref_weight(f, f->v, batch_rows[k]);
    assert_true(fabs(c[k] - w) <= 1e-14 * w);
    for (int64_t j = 0; j < f->d; j++)
      sum[j] += c[k] * S[(size_t)k * f->d + j];
  }
  expect_close(sum, g, f->d, EXACT_RTOL, 1e-12, "sum c_k S_k vs inner_grad");
  free(S);
  free(g);
  free(sum);
}

/* hvp is the directional derivative of inner_grad. */
static void test_hvp_fd(void **state) {
  fx *f = *state;
  double *V = vec(f->d), *HV = vec(f->d), *gp = vec(f->d), *gm = vec(f->d), *t = vec(f->d),
         *fd = vec(f->d);
  td_fill(V, f->d, SEED, 3, 1.0);
  for (int64_t k = 0; k < f->d; k++)
    HV[k] = -5.0;
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, V, HV), 0);
  for (int64_t k = 0; k < f->d; k++)
    t[k] = f->theta[k] + FD_H * V[k];
  inner_gradient(f, t, f->v, NB, batch_rows, gp);
  for (int64_t k = 0; k < f->d; k++)
    t[k] = f->theta[k] - FD_H * V[k];
  inner_gradient(f, t, f->v, NB, batch_rows, gm);
  for (int64_t k = 0; k < f->d; k++)
    fd[k] = (gp[k] - gm[k]) / (2 * FD_H);
  expect_close(HV, fd, f->d, FD_RTOL, 1e-2, "hvp vs finite differences of inner_grad");
  free(V);
  free(HV);
  free(gp);
  free(gm);
  free(t);
  free(fd);
}

/* hvp_multi, where a problem has it, gives each column what hvp gives, bit for bit. */
static void test_hvp_multi(void **state) {
  fx *f = *state;
  if (!f->pb->ops.hvp_multi) return;
  double *V = vec(2 * f->d), *HV = vec(2 * f->d), *one = vec(f->d);
  td_fill(V, 2 * f->d, SEED, 5, 1.0);
  for (int64_t k = 0; k < 2 * f->d; k++)
    HV[k] = -5.0;
  assert_int_equal(f->pb->ops.hvp_multi(f->pb, f->theta, f->v, NB, batch_rows, 2, V, HV), 0);
  for (int j = 0; j < 2; ++j) {
    assert_int_equal(
        f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, V + (size_t)j * f->d, one), 0);
    assert_memory_equal(one, HV + (size_t)j * f->d, (size_t)f->d * sizeof(double));
  }
  free(V);
  free(HV);
  free(one);
}

/* sum over rows of Z_k Z_k^T V equals hvp: the factors include the weights. */
static void test_hess_factors(void **state) {
  fx *f = *state;
  const int q = f->pb->hess_rank;
  double *Z = vec(f->d * NB * q), *V = vec(f->d), *HV = vec(f->d), *ZZV = vec(f->d);
  td_fill(V, f->d, SEED, 4, 1.0);
  assert_int_equal(f->pb->ops.hess_factors(f->pb, f->theta, f->v, NB, batch_rows, Z), 0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, V, HV), 0);
  for (int col = 0; col < NB * q; col++) {
    const double *z = Z + (size_t)col * f->d;
    double zv = 0.0;
    for (int64_t j = 0; j < f->d; j++)
      zv += z[j] * V[j];
    for (int64_t j = 0; j < f->d; j++)
      ZZV[j] += z[j] * zv;
  }
  expect_close(ZZV, HV, f->d, EXACT_RTOL, 1e-12, "Z Z^T V vs hvp");
  free(Z);
  free(V);
  free(HV);
  free(ZZV);
}

/* The Kronecker factors reproduce the per-sample gradients (s_k = x_k (x) r_k) and the
 * weighted Hessian (sum_k (x_k x_k^T) (x) A_k V == hvp); ridge declares no such structure. */
static void test_kron_factors(void **state) {
  fx *f = *state;
  if (!f->pb->ops.kron_factors) {
    assert_string_equal(f->pb->name, "ridge");
    assert_int_equal(f->pb->kron_m, 0);
    return;
  }
  const int m = f->pb->kron_m, C = f->pb->kron_c;
  assert_int_equal((int64_t)m * C, f->d);
  double *X = vec((int64_t)m * NB), *R = vec((int64_t)C * NB), *A = vec((int64_t)C * C * NB);
  double c[NB], c2[NB], *S = vec(f->d * NB), *V = vec(f->d), *HV = vec(f->d), *KV = vec(f->d);
  assert_int_equal(f->pb->ops.kron_factors(f->pb, f->theta, f->v, NB, batch_rows, X, R, A, c), 0);
  assert_int_equal(f->pb->ops.sample_grads(f->pb, f->theta, f->v, NB, batch_rows, S, c2), 0);
  double *ks = vec(f->d);
  for (int k = 0; k < NB; k++) {
    assert_true(c[k] == c2[k]);
    for (int cc = 0; cc < C; cc++)
      for (int j = 0; j < m; j++)
        ks[j + cc * m] = X[j + k * m] * R[cc + k * C];
    expect_close(ks, S + (size_t)k * f->d, f->d, EXACT_RTOL, 1e-14, "x (x) r vs sample_grads");
  }
  td_fill(V, f->d, SEED, 8, 1.0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, V, HV), 0);
  for (int k = 0; k < NB; k++) {
    /* (x x^T (x) A) vec(V) = vec(x x^T V A^T) with V reshaped m x C. */
    const double *x = X + (size_t)k * m, *a = A + (size_t)k * C * C;
    for (int c1 = 0; c1 < C; c1++) {
      double xv = 0.0;
      for (int c3 = 0; c3 < C; c3++) {
        double t = 0.0;
        for (int j = 0; j < m; j++)
          t += x[j] * V[j + c3 * m];
        xv += a[c1 + c3 * C] * t;
      }
      for (int j = 0; j < m; j++)
        KV[j + c1 * m] += x[j] * xv;
    }
  }
  expect_close(KV, HV, f->d, EXACT_RTOL, 1e-12, "Kronecker Hessian vs hvp");
  /* Every output may be omitted. */
  assert_int_equal(
      f->pb->ops.kron_factors(f->pb, f->theta, f->v, NB, batch_rows, NULL, R, NULL, NULL), 0);
  free(X), free(R), free(A), free(S), free(V), free(HV), free(KV), free(ks);
}

static double reg_value(const fx *f, const double *theta, const double *v) {
  double val = NAN;
  assert_int_equal(f->pb->ops.reg(f->pb, theta, v, &val, NULL, NULL), 0);
  return val;
}

/* reg's gradient (added) and Hessian diagonal (set) against finite differences; the
 * Hessian must be diagonal. */
static void test_reg_fd(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  double *base = vec(d), *grad = vec(d), *hdiag = vec(d), *fd = vec(d), *t = vec(d), *gp = vec(d),
         *gm = vec(d), val;
  td_fill(base, d, SEED, 5, 1.0);
  memcpy(grad, base, (size_t)d * sizeof(double));
  for (int64_t k = 0; k < d; k++)
    hdiag[k] = -7.0;
  assert_int_equal(f->pb->ops.reg(f->pb, f->theta, f->v, &val, grad, hdiag), 0);
  assert_true(fabs(val - reg_value(f, f->theta, f->v)) <= 1e-15 * fabs(val));
  for (int64_t k = 0; k < d; k++)
    grad[k] -= base[k];
  for (int64_t k = 0; k < d; k++) {
    memcpy(t, f->theta, (size_t)d * sizeof(double));
    t[k] += FD_H;
    double vp = reg_value(f, t, f->v);
    t[k] -= 2 * FD_H;
    double vm = reg_value(f, t, f->v);
    fd[k] = (vp - vm) / (2 * FD_H);
  }
  expect_close(grad, fd, d, FD_RTOL, 1e-2, "reg grad vs finite differences");
  double offdiag = 0.0, scale = 0.0;
  for (int64_t k = 0; k < d; k++) {
    memcpy(t, f->theta, (size_t)d * sizeof(double));
    memset(gp, 0, (size_t)d * sizeof(double));
    memset(gm, 0, (size_t)d * sizeof(double));
    t[k] += FD_H;
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, NULL, gp, NULL), 0);
    t[k] -= 2 * FD_H;
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, NULL, gm, NULL), 0);
    for (int64_t j = 0; j < d; j++) {
      double h = (gp[j] - gm[j]) / (2 * FD_H);
      if (j == k)
        fd[k] = h;
      else if (fabs(h) > offdiag)
        offdiag = fabs(h);
    }
    if (fabs(hdiag[k]) > scale) scale = fabs(hdiag[k]);
  }
  expect_close(hdiag, fd, d, FD_RTOL, 1e-2, "reg hdiag vs finite differences");
  assert_true(offdiag <= FD_RTOL * scale);
  free(base);
  free(grad);
  free(hdiag);
  free(fd);
  free(t);
  free(gp);
  free(gm);
}

static double eval_value(const fx *f, const nhgd_split *s, const double *theta) {
  double loss = NAN;
  assert_int_equal(f->pb->ops.eval(f->pb, s, theta, f->v, &loss, NULL, NULL), 0);
  return loss;
}

/* eval on val and test: loss against a direct sum, gradient against finite differences,
 * correct against a direct argmax count. */
static void test_eval_fd(void **state) {
  fx *f = *state;
  const nhgd_split *splits[2] = {&f->data.val, &f->data.test};
  double *g = vec(f->d), *fd = vec(f->d), *t = vec(f->d);
  for (int si = 0; si < 2; si++) {
    const nhgd_split *s = splits[si];
    double loss = NAN, ref = 0.0;
    int64_t correct = 99, ref_correct = 0;
    for (int64_t k = 0; k < f->d; k++)
      g[k] = 42.0;
    assert_int_equal(f->pb->ops.eval(f->pb, s, f->theta, f->v, &loss, g, &correct), 0);
    for (int i = 0; i < s->n_local; i++) {
      ref += ref_row_loss(f, s, i, f->theta, 1.0);
      if (f->pb->is_classifier) {
        double z[NCLASS];
        ref_logits(f, s->X + (size_t)i * M, f->theta, z);
        int arg = 0;
        for (int c = 1; c < NCLASS; c++)
          if (z[c] > z[arg]) arg = c;
        ref_correct += arg == s->y_class[i];
      }
    }
    assert_true(fabs(loss - ref) <= 1e-12 * fabs(ref));
    assert_int_equal(correct, ref_correct);
    if (f->pb->is_classifier) assert_true(ref_correct > 0 && ref_correct < s->n_local);
    for (int64_t k = 0; k < f->d; k++) {
      memcpy(t, f->theta, (size_t)f->d * sizeof(double));
      t[k] += FD_H;
      double lp = eval_value(f, s, t);
      t[k] -= 2 * FD_H;
      double lm = eval_value(f, s, t);
      fd[k] = (lp - lm) / (2 * FD_H);
    }
    expect_close(g, fd, f->d, FD_RTOL, 1e-2, "eval gtheta vs finite differences");
  }
  free(g);
  free(fd);
  free(t);
}

/* <grad_theta g(v, theta), u> with grad_theta g = (1/n) sum_i w_i grad l_i + grad R over all
 * training rows (one process holds them all here). */
static double phi(const fx *f, const double *v, const double *u) {
  double *g = vec(f->d);
  inner_gradient(f, f->theta, v, NTRAIN, all_rows, g);
  for (int64_t k = 0; k < f->d; k++)
    g[k] /= (double)f->data.train.n_global;
  assert_int_equal(f->pb->ops.reg(f->pb, f->theta, v, NULL, g, NULL), 0);
  double s = 0.0;
  for (int64_t k = 0; k < f->d; k++)
    s += g[k] * u[k];
  free(g);
  return s;
}

/* cross (J^T u) against finite differences in every entry of v. */
static void test_cross_fd(void **state) {
  fx *f = *state;
  double *u = vec(f->d), *out = vec(f->nv), *fd = vec(f->nv), *w = vec(f->nv);
  td_fill(u, f->d, SEED, 6, 1.0);
  assert_int_equal(f->pb->ops.cross(f->pb, f->theta, f->v, u, out), 0);
  for (int64_t i = 0; i < f->nv; i++) {
    memcpy(w, f->v, (size_t)f->nv * sizeof(double));
    w[i] += FD_H;
    double pp = phi(f, w, u);
    w[i] -= 2 * FD_H;
    double pm = phi(f, w, u);
    fd[i] = (pp - pm) / (2 * FD_H);
  }
  /* The hyperclean entries carry a 1/n factor: compare on their own scale. */
  expect_close(out, fd, f->nv, FD_RTOL, 1e-4, "cross vs finite differences in v");
  double nrm = 0.0;
  for (int64_t i = 0; i < f->nv; i++)
    nrm += fabs(out[i]);
  assert_true(nrm > 1e-3);
  free(u);
  free(out);
  free(fd);
  free(w);
}

/* Logits of order 1e3 must not turn into NaN or Inf anywhere. */
static void test_huge_logits(void **state) {
  fx *f = *state;
  const int q = f->pb->hess_rank;
  double *t = vec(f->d), *g = vec(f->d), *HV = vec(f->d), *S = vec(f->d * NB), c[NB],
         *Z = vec(f->d * NB * q), *u = vec(f->d), *out = vec(f->nv), loss;
  int64_t correct;
  for (int64_t k = 0; k < f->d; k++)
    t[k] = 1e3 * f->theta[k];
  td_fill(u, f->d, SEED, 7, 1.0);
  assert_int_equal(f->pb->ops.inner_grad(f->pb, t, f->v, NB, batch_rows, g, &loss), 0);
  assert_true(isfinite(loss) && loss > 0);
  all_finite(g, f->d, "inner_grad g");
  assert_int_equal(f->pb->ops.hvp(f->pb, t, f->v, NB, batch_rows, u, HV), 0);
  all_finite(HV, f->d, "hvp");
  assert_int_equal(f->pb->ops.sample_grads(f->pb, t, f->v, NB, batch_rows, S, c), 0);
  all_finite(S, f->d * NB, "sample_grads");
  assert_int_equal(f->pb->ops.hess_factors(f->pb, t, f->v, NB, batch_rows, Z), 0);
  all_finite(Z, f->d * NB * q, "hess_factors");
  assert_int_equal(f->pb->ops.eval(f->pb, &f->data.val, t, f->v, &loss, g, &correct), 0);
  assert_true(isfinite(loss));
  all_finite(g, f->d, "eval gtheta");
  assert_int_equal(f->pb->ops.cross(f->pb, t, f->v, u, out), 0);
  all_finite(out, f->nv, "cross");
  if (f->pb->is_classifier) {
    /* At this scale the CE of a row is its logit margin: compare with the direct value. */
    double ref = 0.0;
    for (int i = 0; i < f->data.val.n_local; i++)
      ref += ref_row_loss(f, &f->data.val, i, t, 1.0);
    assert_true(fabs(loss - ref) <= 1e-12 * fabs(ref));
  }
  free(t);
  free(g);
  free(HV);
  free(S);
  free(Z);
  free(u);
  free(out);
}

/* An empty batch writes zeros and needs no row list. */
static void test_empty_batch(void **state) {
  fx *f = *state;
  double *g = vec(f->d), *HV = vec(f->d), *V = vec(f->d), loss = 7.0, dummy[1] = {3.0};
  for (int64_t k = 0; k < f->d; k++)
    g[k] = HV[k] = 1.0;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, 0, NULL, g, &loss), 0);
  assert_true(loss == 0.0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, 0, NULL, V, HV), 0);
  for (int64_t k = 0; k < f->d; k++)
    assert_true(g[k] == 0.0 && HV[k] == 0.0);
  assert_int_equal(f->pb->ops.sample_grads(f->pb, f->theta, f->v, 0, NULL, dummy, dummy), 0);
  assert_int_equal(f->pb->ops.hess_factors(f->pb, f->theta, f->v, 0, NULL, dummy), 0);
  assert_true(dummy[0] == 3.0);
  free(g);
  free(HV);
  free(V);
}

/* A row index outside the local rows is an argument error, not a wild read. */
static void test_bad_row(void **state) {
  fx *f = *state;
  int rows[2] = {0, NTRAIN};
  double *g = vec(f->d), loss;
  nhgd_error_clear();
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, 2, rows, g, &loss), NHGD_ERR_ARG);
  assert_non_null(strstr(nhgd_error_message(), "row index 20"));
  nhgd_error_clear();
  free(g);
}

/* Batches and splits longer than the internal block of rows give the same sums as short ones:
 * row lists repeat the 20 rows, and tiled data repeats every split. */
static void test_blocks(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  const int reps = 125, nbig = NTRAIN * reps; /* 2500 rows: more than two blocks */
  int *rows = malloc((size_t)nbig * sizeof(int));
  assert_non_null(rows);
  for (int k = 0; k < nbig; k++)
    rows[k] = k % NTRAIN;
  double *g1 = vec(d), *g2 = vec(d), *V = vec(d), *h1 = vec(d), *h2 = vec(d), l1, l2;
  td_fill(V, d, SEED, 8, 1.0);
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, NTRAIN, all_rows, g1, &l1), 0);
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, nbig, rows, g2, &l2), 0);
  for (int64_t k = 0; k < d; k++)
    g1[k] *= reps;
  expect_close(g2, g1, d, 1e-12, 1e-12, "inner_grad over many blocks");
  assert_true(fabs(l2 - reps * l1) <= 1e-12 * fabs(l2));
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NTRAIN, all_rows, V, h1), 0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, nbig, rows, V, h2), 0);
  for (int64_t k = 0; k < d; k++)
    h1[k] *= reps;
  expect_close(h2, h1, d, 1e-12, 1e-12, "hvp over many blocks");
  /* The last 20 columns (rows 0..19 again, in the third block) match a short batch. */
  const int q = f->pb->hess_rank;
  double *S1 = vec(d * NTRAIN), *S2 = vec(d * nbig), *c1 = vec(NTRAIN), *c2 = vec(nbig);
  double *Z1 = vec(d * NTRAIN * q), *Z2 = vec(d * nbig * q);
  assert_int_equal(f->pb->ops.sample_grads(f->pb, f->theta, f->v, NTRAIN, all_rows, S1, c1), 0);
  assert_int_equal(f->pb->ops.sample_grads(f->pb, f->theta, f->v, nbig, rows, S2, c2), 0);
  expect_close(S2 + d * (nbig - NTRAIN), S1, d * NTRAIN, 1e-14, 1e-14, "sample_grads tail");
  expect_close(c2 + (nbig - NTRAIN), c1, NTRAIN, 1e-15, 1e-15, "sample weights tail");
  assert_int_equal(f->pb->ops.hess_factors(f->pb, f->theta, f->v, NTRAIN, all_rows, Z1), 0);
  assert_int_equal(f->pb->ops.hess_factors(f->pb, f->theta, f->v, nbig, rows, Z2), 0);
  expect_close(Z2 + d * q * (nbig - NTRAIN), Z1, d * q * NTRAIN, 1e-14, 1e-14, "hess_factors tail");

  /* Tiled data: eval over a 2100-row split, and hyperclean's cross over 2100 local rows. */
  const int tiles = 105;
  nhgd_data big = f->data;
  td_tile(&big.train, &f->data.train, tiles);
  td_tile(&big.val, &f->data.val, tiles * 2);
  big.has_test = 0;
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = f->sigma;
  pp.clean_reg = f->clean_reg;
  nhgd_problem *pbig = NULL;
  assert_int_equal(nhgd_problem_create(f->pb->name, &big, &pp, &pbig), 0);
  int64_t c_small, c_big;
  assert_int_equal(f->pb->ops.eval(f->pb, &f->data.val, f->theta, f->v, &l1, g1, &c_small), 0);
  double *vbig = vec(pbig->v_per_sample ? big.train.n_local : pbig->p);
  for (int i = 0; i < (pbig->v_per_sample ? big.train.n_local : pbig->p); i++)
    vbig[i] = f->v[i % f->nv];
  assert_int_equal(pbig->ops.eval(pbig, &big.val, f->theta, vbig, &l2, g2, &c_big), 0);
  assert_true(fabs(l2 - 2 * tiles * l1) <= 1e-12 * fabs(l2));
  assert_int_equal(c_big, 2 * tiles * c_small);
  for (int64_t k = 0; k < d; k++)
    g1[k] *= 2 * tiles;
  expect_close(g2, g1, d, 1e-12, 1e-12, "eval over many blocks");
  double *out1 = vec(f->nv), *out2 = vec(pbig->v_per_sample ? big.train.n_local : pbig->p);
  assert_int_equal(f->pb->ops.cross(f->pb, f->theta, f->v, V, out1), 0);
  assert_int_equal(pbig->ops.cross(pbig, f->theta, vbig, V, out2), 0);
  if (pbig->v_per_sample) {
    /* Same rows, but n is tiles times larger. */
    for (int i = 0; i < big.train.n_local; i++)
      assert_true(fabs(out2[i] * tiles - out1[i % NTRAIN]) <=
                  1e-12 * fabs(out1[i % NTRAIN]) + 1e-300);
  } else {
    expect_close(out2, out1, f->nv, 1e-15, 1e-15, "cross with more rows");
  }
  nhgd_problem_destroy(&pbig);
  assert_null(pbig);
  td_split_free(&big.train);
  td_split_free(&big.val);
  free(rows);
  free(g1);
  free(g2);
  free(V);
  free(h1);
  free(h2);
  free(S1);
  free(S2);
  free(c1);
  free(c2);
  free(Z1);
  free(Z2);
  free(vbig);
  free(out1);
  free(out2);
}

/* ---- registry ---- */

/* Every field of nhgd_problem_params gets the default nhgd/problem.h documents, which is also
 * the default of its run option (the problem block's option specs; --seed for init_seed), so
 * the library and `nhgd run` start from the same problem. */
static void test_params_default(void **state) {
  (void)state;
  nhgd_problem_params pp;
  memset(&pp, 0xa5, sizeof pp); /* a field left unset keeps this pattern */
  nhgd_problem_params_default(&pp);
  assert_true(pp.noise_sigma == 1.0);
  assert_true(pp.clean_reg == 1e-3);
  assert_true(pp.v_init == 0.0);
  assert_memory_equal(pp.hidden, "256", 4);
  assert_int_equal(pp.activation, NHGD_ACT_TANH);
  assert_int_equal(pp.init_seed, 0);
  assert_int_equal(pp.gauss_newton, 0);
  assert_int_equal(pp.distill_per_class, 1);
  assert_int_equal(pp.distill_mlp, 0);

  nhgd_options *o = NULL;
  assert_int_equal(nhgd_options_create_run(&o), 0);
  double r = -1.0;
  int64_t i = -1;
  const char *str = NULL;
  assert_int_equal(nhgd_options_get_real(o, "noise-sigma", &r), 0);
  assert_true(r == pp.noise_sigma);
  assert_int_equal(nhgd_options_get_real(o, "clean-reg", &r), 0);
  assert_true(r == pp.clean_reg);
  assert_int_equal(nhgd_options_get_real(o, "v-init", &r), 0);
  assert_true(r == pp.v_init);
  assert_int_equal(nhgd_options_get_string(o, "hidden", &str), 0);
  assert_string_equal(str, pp.hidden);
  assert_int_equal(nhgd_options_get_string(o, "activation", &str), 0);
  assert_string_equal(str, pp.activation == NHGD_ACT_RELU ? "relu" : "tanh");
  assert_int_equal(nhgd_options_get_int(o, "seed", &i), 0);
  assert_int_equal(i, pp.init_seed);
  assert_int_equal(nhgd_options_get_string(o, "mlp-hvp", &str), 0);
  assert_string_equal(str, pp.gauss_newton ? "gauss-newton" : "exact");
  assert_int_equal(nhgd_options_get_int(o, "distill-per-class", &i), 0);
  assert_int_equal(i, pp.distill_per_class);
  assert_int_equal(nhgd_options_get_string(o, "distill-model", &str), 0);
  assert_string_equal(str, pp.distill_mlp ? "mlp" : "linear");
  nhgd_options_destroy(&o);
  nhgd_problem_params_default(NULL);
}

static void expect_create_error(const char *name, const nhgd_data *d, const nhgd_problem_params *pp,
                                int code, const char *part1, const char *part2) {
  static nhgd_problem sentinel;
  nhgd_problem *pb = &sentinel; /* must be reset to NULL on error */
  nhgd_error_clear();
  assert_int_equal(nhgd_problem_create(name, d, pp, &pb), code);
  assert_null(pb);
  const char *msg = nhgd_error_message();
  if (!strstr(msg, part1) || (part2 && !strstr(msg, part2)))
    fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", msg, part1, part2 ? part2 : "");
  nhgd_error_clear();
}

static void test_create_errors(void **state) {
  (void)state;
  nhgd_data cls, reg;
  td_make(&cls, MPI_COMM_WORLD, SEED, M, NCLASS, NTRAIN, NVAL, NTEST);
  td_make(&reg, MPI_COMM_WORLD, SEED, M, 0, NTRAIN, NVAL, NTEST);
  expect_create_error("lasso", &cls, NULL, NHGD_ERR_ARG, "unknown problem 'lasso'",
                      "ridge, logreg, hyperclean");
  expect_create_error(NULL, &cls, NULL, NHGD_ERR_ARG, "ridge, logreg, hyperclean", NULL);
  expect_create_error("ridge", &cls, NULL, NHGD_ERR_ARG, "problem 'ridge' needs regression",
                      "is a classification");
  expect_create_error("logreg", &reg, NULL, NHGD_ERR_ARG, "problem 'logreg' needs classification",
                      "is a regression");
  expect_create_error("hyperclean", &reg, NULL, NHGD_ERR_ARG,
                      "problem 'hyperclean' needs classification", "is a regression");
  strcpy(reg.path, "synthetic.h5");
  expect_create_error("logreg", &reg, NULL, NHGD_ERR_ARG, "synthetic.h5", "regression");
  expect_create_error("ridge", NULL, NULL, NHGD_ERR_ARG, "no data", NULL);

  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = 0.0;
  expect_create_error("ridge", &reg, &pp, NHGD_ERR_ARG, "noise_sigma", NULL);
  nhgd_problem_params_default(&pp);
  pp.clean_reg = -1.0;
  expect_create_error("hyperclean", &cls, &pp, NHGD_ERR_ARG, "clean_reg", NULL);
  nhgd_problem_params_default(&pp);
  pp.v_init = NAN;
  expect_create_error("logreg", &cls, &pp, NHGD_ERR_ARG, "v_init", NULL);

  cls.val.y_class[3] = NCLASS;
  expect_create_error("logreg", &cls, NULL, NHGD_ERR_DATA, "split val row 3 has label 3", NULL);
  cls.val.y_class[3] = 0;

  /* NULL parameters mean the defaults; destroy is NULL-safe and clears the handle. */
  nhgd_problem *pb = NULL;
  assert_int_equal(nhgd_problem_create("hyperclean", &cls, NULL, &pb), 0);
  assert_string_equal(pb->name, "hyperclean");
  nhgd_problem_destroy(&pb);
  assert_null(pb);
  nhgd_problem_destroy(&pb);
  nhgd_problem_destroy(NULL);
  td_free(&cls);
  td_free(&reg);
}

/* hyperclean's cross term over several blocks of rows (the last one short), with m and C of a
 * realistic shape, against a straightforward per-row reference: logits, softmax, residual r_i,
 * U^T x_i and (1/n) sigmoid'(v_i) r_i^T U^T x_i, to 1e-12 of the terms' magnitudes. The scratch
 * is first sized by a short batch, so that the cross call has to grow it; a second call with
 * another direction uses that direction. */
static void test_hyperclean_cross_reference(void **state) {
  (void)state;
  enum { MF = 300, CF = 7, NF = 2100 };
  nhgd_data data;
  td_make(&data, MPI_COMM_WORLD, SEED + 1, MF, CF, NF, 5, 5);
  nhgd_problem *pb = NULL;
  assert_int_equal(nhgd_problem_create("hyperclean", &data, NULL, &pb), 0);
  const int64_t d = pb->d;
  const int n = data.train.n_local;
  double *theta = vec(d), *u = vec(d), *v = vec(n), *out = vec(n), *g = vec(d), loss;
  td_fill(theta, d, SEED, 11, 0.2);
  td_fill(v, n, SEED, 12, 1.0);
  assert_int_equal(pb->ops.inner_grad(pb, theta, v, NB, batch_rows, g, &loss), 0);
  for (int call = 0; call < 2; call++) {
    td_fill(u, d, SEED, 13 + call, 1.0);
    assert_int_equal(pb->ops.cross(pb, theta, v, u, out), 0);
    double worst = 0.0;
    for (int i = 0; i < n; i++) {
      const double *x = data.train.X + (size_t)i * MF;
      double z[CF], a[CF], zmax = -INFINITY, sum = 0.0, dot = 0.0, mag = 0.0;
      for (int c = 0; c < CF; c++) {
        z[c] = a[c] = 0.0;
        for (int j = 0; j < MF; j++) {
          z[c] += x[j] * theta[j + c * MF];
          a[c] += x[j] * u[j + c * MF];
        }
        zmax = z[c] > zmax ? z[c] : zmax;
      }
      for (int c = 0; c < CF; c++)
        sum += exp(z[c] - zmax);
      for (int c = 0; c < CF; c++) {
        const double r = exp(z[c] - zmax) / sum - (c == data.train.y_class[i] ? 1.0 : 0.0);
        dot += r * a[c];
        mag += fabs(r * a[c]);
      }
      const double sg = sigmoid_ref(v[i]), w = sg * (1.0 - sg) / (double)data.train.n_global;
      const double e = fabs(out[i] - w * dot) / (w * mag);
      worst = e > worst || isnan(e) ? e : worst;
    }
    if (!(worst <= 1e-12))
      fail_msg("cross, call %d: relative error %.3e against the reference", call, worst);
  }
  nhgd_problem_destroy(&pb);
  td_free(&data);
  free(theta);
  free(u);
  free(v);
  free(out);
  free(g);
}

#define PROBLEM_TESTS                                                                              \
  cmocka_unit_test(test_dims_init), cmocka_unit_test(test_inner_grad_fd),                          \
      cmocka_unit_test(test_sample_grads), cmocka_unit_test(test_hvp_fd),                          \
      cmocka_unit_test(test_hvp_multi), cmocka_unit_test(test_hess_factors),                       \
      cmocka_unit_test(test_kron_factors), cmocka_unit_test(test_reg_fd),                          \
      cmocka_unit_test(test_eval_fd), cmocka_unit_test(test_cross_fd),                             \
      cmocka_unit_test(test_huge_logits), cmocka_unit_test(test_empty_batch),                      \
      cmocka_unit_test(test_bad_row), cmocka_unit_test(test_blocks)

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const char *which = argc > 1 ? argv[1] : "all";
  const struct CMUnitTest tests[] = {PROBLEM_TESTS};
  const struct CMUnitTest registry[] = {cmocka_unit_test(test_params_default),
                                        cmocka_unit_test(test_create_errors)};
  const struct CMUnitTest cross[] = {cmocka_unit_test(test_hyperclean_cross_reference)};
  static const struct {
    const char *name;
    CMFixtureFunction setup;
  } groups[] = {{"ridge", setup_ridge}, {"logreg", setup_logreg}, {"hyperclean", setup_hyperclean}};
  int failed = 0, ran = 0;
  for (int k = 0; k < 3; k++)
    if (!strcmp(which, groups[k].name) || !strcmp(which, "all")) {
      failed +=
          cmocka_run_group_tests_name(groups[k].name, tests, groups[k].setup, teardown_problem);
      ran++;
    }
  if (!strcmp(which, "registry") || !strcmp(which, "all")) {
    failed += cmocka_run_group_tests_name("registry", registry, NULL, NULL);
    ran++;
  }
  if (!strcmp(which, "hyperclean-cross") || !strcmp(which, "all")) {
    failed += cmocka_run_group_tests_name("hyperclean-cross", cross, NULL, NULL);
    ran++;
  }
  if (!ran) {
    fprintf(stderr, "usage: %s [ridge|logreg|hyperclean|hyperclean-cross|registry|all]\n", argv[0]);
    failed = 1;
  }
  MPI_Finalize();
  return failed ? 1 : 0;
}
