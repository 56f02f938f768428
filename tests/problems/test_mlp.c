/* Unit tests of the mlp problems: the gradient, the R-operator Hessian-vector product, the
 * cross term J^T u, the regulariser and the validation gradient against central finite
 * differences; per-sample gradients and layer factors against each other and against
 * inner_grad; blocking; the initialisation; the shape errors. Run per group:
 * tanh-hyperclean, relu-hyperclean, tanh-hpo, deep-hpo, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "nhgd/errors.h"
#include "nhgd/problem.h"
#include "pb_fixture.h"
#include "problems/builtin.h"

#include <cblas.h>

#define SEED 20261202u
#define M 5
#define NCLASS 3
#define NTRAIN 24
#define FD_H 1e-6

typedef pb_fx fx;

static const char *g_problem = "mlp-hyperclean", *g_hidden = "4", *g_act = "tanh";
static int g_gn;

static int all_rows[NTRAIN];
static const int batch_rows[] = {3, 0, 17, 5, 5, 11, 23, 8, 2, 14, 9, 6};
#define NB ((int)(sizeof batch_rows / sizeof batch_rows[0]))

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (!f) return -1;
  td_make(&f->data, MPI_COMM_WORLD, SEED, M, NCLASS, NTRAIN, 10, 9);
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.clean_reg = 0.05;
  pp.v_init = 0.25;
  snprintf(pp.hidden, sizeof pp.hidden, "%s", g_hidden);
  pp.activation = strcmp(g_act, "relu") ? NHGD_ACT_TANH : NHGD_ACT_RELU;
  pp.init_seed = 7;
  pp.gauss_newton = g_gn;
  if (nhgd_problem_create(g_problem, &f->data, &pp, &f->pb) != 0) {
    fprintf(stderr, "create %s: %s\n", g_problem, nhgd_error_message());
    return -1;
  }
  f->d = f->pb->d;
  f->nv = f->pb->v_per_sample ? f->data.train.n_local : f->pb->p;
  f->theta = vec(f->d);
  f->v = vec(f->nv);
  assert_int_equal(f->pb->ops.init(f->pb, f->theta, f->v), 0);
  /* Away from the initial point, so that every layer's derivatives matter. */
  double *noise = vec(f->d);
  td_fill(noise, f->d, SEED, 1, 0.3);
  for (int64_t k = 0; k < f->d; ++k)
    f->theta[k] += noise[k];
  free(noise);
  td_fill(f->v, f->nv, SEED, 2, 0.7);
  for (int i = 0; i < NTRAIN; i++)
    all_rows[i] = i;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  return pb_fx_teardown(state);
}

static double inner_loss(const fx *f, const double *theta, const double *v) {
  double *g = vec(f->d), loss = NAN;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, theta, v, NB, batch_rows, g, &loss), 0);
  free(g);
  return loss;
}

/* The dimensions follow the shape: d = sum (in_l) out_l with in_l = width + 1. */
static void test_dims(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  int64_t d = 0;
  assert_true(pb->n_layers >= 2);
  assert_int_equal(pb->layer_in[0], M + 1);
  assert_int_equal(pb->layer_out[pb->n_layers - 1], NCLASS);
  for (int l = 0; l < pb->n_layers; ++l) {
    if (l > 0) assert_int_equal(pb->layer_in[l], pb->layer_out[l - 1] + 1);
    d += (int64_t)pb->layer_in[l] * pb->layer_out[l];
  }
  assert_int_equal(pb->d, d);
  assert_int_equal(pb->p, pb->v_per_sample ? NTRAIN : pb->n_layers);
  assert_null(pb->ops.kron_factors);
  assert_null(pb->ops.hess_factors);
}

/* The initialisation is a pure function of the seed: biases zero, weights within the
 * Glorot bound, not all equal. */
static void test_init(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  double *a = vec(f->d), *b = vec(f->d), *v = vec(f->nv);
  assert_int_equal(pb->ops.init(pb, a, v), 0);
  assert_int_equal(pb->ops.init(pb, b, v), 0);
  assert_memory_equal(a, b, (size_t)f->d * sizeof(double));
  int64_t off = 0;
  for (int l = 0; l < pb->n_layers; ++l) {
    const int in = pb->layer_in[l], out = pb->layer_out[l];
    const double lim = sqrt(6.0 / (in - 1 + out));
    for (int o = 0; o < out; ++o)
      for (int j = 0; j < in; ++j) {
        double w = a[off + j + (int64_t)o * in];
        if (j == in - 1)
          assert_true(w == 0.0);
        else
          assert_true(fabs(w) <= lim);
      }
    off += (int64_t)in * out;
  }
  assert_true(a[0] != a[1]);
  for (int64_t k = 0; k < f->nv; ++k)
    assert_true(v[k] == 0.25);
  free(a);
  free(b);
  free(v);
}

static void test_inner_grad_fd(void **state) {
  fx *f = *state;
  double *g = vec(f->d), *fd = vec(f->d), *t = vec(f->d), loss;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, NB, batch_rows, g, &loss), 0);
  memcpy(t, f->theta, (size_t)f->d * sizeof(double));
  for (int64_t k = 0; k < f->d; ++k) {
    t[k] = f->theta[k] + FD_H;
    double lp = inner_loss(f, t, f->v);
    t[k] = f->theta[k] - FD_H;
    double lm = inner_loss(f, t, f->v);
    t[k] = f->theta[k];
    fd[k] = (lp - lm) / (2 * FD_H);
  }
  expect_close(g, fd, f->d, 1e-6, 1e-2, "inner_grad vs finite differences");
  free(g);
  free(fd);
  free(t);
}

/* The R-operator product against central differences of inner_grad, and symmetric. */
static void test_hvp_fd(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  double *V = vec(d), *W = vec(d), *HV = vec(d), *HW = vec(d), *gp = vec(d), *gm = vec(d),
         *t = vec(d), *fd = vec(d), loss;
  td_fill(V, d, SEED, 3, 1.0);
  td_fill(W, d, SEED, 4, 1.0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, V, HV), 0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, batch_rows, W, HW), 0);
  for (int64_t k = 0; k < d; ++k)
    t[k] = f->theta[k] + FD_H * V[k];
  assert_int_equal(f->pb->ops.inner_grad(f->pb, t, f->v, NB, batch_rows, gp, &loss), 0);
  for (int64_t k = 0; k < d; ++k)
    t[k] = f->theta[k] - FD_H * V[k];
  assert_int_equal(f->pb->ops.inner_grad(f->pb, t, f->v, NB, batch_rows, gm, &loss), 0);
  for (int64_t k = 0; k < d; ++k)
    fd[k] = (gp[k] - gm[k]) / (2 * FD_H);
  expect_close(HV, fd, d, 1e-6, 1e-2, "hvp vs finite differences of inner_grad");
  double wHv = 0.0, vHw = 0.0;
  for (int64_t k = 0; k < d; ++k) {
    wHv += W[k] * HV[k];
    vHw += V[k] * HW[k];
  }
  assert_true(fabs(wHv - vHw) <= 1e-12 * (fabs(wHv) + 1.0));
  free(V);
  free(W);
  free(HV);
  free(HW);
  free(gp);
  free(gm);
  free(t);
  free(fd);
}

/* sum_k c_k s_k = inner_grad; the layer factors give the same per-sample gradients. */
static void test_sample_grads_factors(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  const int64_t d = f->d;
  double *S = vec(d * NB), *c = vec(NB), *g = vec(d), *sum = vec(d), *c2 = vec(NB), loss;
  assert_int_equal(pb->ops.sample_grads(pb, f->theta, f->v, NB, batch_rows, S, c), 0);
  assert_int_equal(pb->ops.inner_grad(pb, f->theta, f->v, NB, batch_rows, g, &loss), 0);
  for (int k = 0; k < NB; ++k)
    for (int64_t j = 0; j < d; ++j)
      sum[j] += c[k] * S[j + k * d];
  expect_close(sum, g, d, 1e-13, 1e-8, "sum of weighted sample gradients vs inner_grad");
  double *a[16], *gl[16];
  for (int l = 0; l < pb->n_layers; ++l) {
    a[l] = vec((int64_t)pb->layer_in[l] * NB);
    gl[l] = vec((int64_t)pb->layer_out[l] * NB);
  }
  assert_int_equal(pb->ops.layer_factors(pb, f->theta, f->v, NB, batch_rows, 0, a, gl, c2), 0);
  assert_memory_equal(c, c2, NB * sizeof(double));
  for (int k = 0; k < NB; ++k) {
    int64_t off = 0;
    for (int l = 0; l < pb->n_layers; ++l) {
      const int in = pb->layer_in[l], out = pb->layer_out[l];
      assert_true(a[l][(size_t)k * in + in - 1] == 1.0); /* the bias's input */
      for (int o = 0; o < out; ++o)
        for (int j = 0; j < in; ++j) {
          double want = a[l][(size_t)k * in + j] * gl[l][(size_t)k * out + o];
          assert_true(S[off + j + (int64_t)o * in + k * d] == want);
        }
      off += (int64_t)in * out;
    }
  }
  for (int l = 0; l < pb->n_layers; ++l) {
    free(a[l]);
    free(gl[l]);
  }
  free(S);
  free(c);
  free(c2);
  free(g);
  free(sum);
}

/* layer_factors after inner_grad (after_grad = 1) takes a sub-list of the rows from the pass
 * inner_grad kept: bit-identical to a pass of their own, and a pass in between, another
 * theta or rows inner_grad did not see make it run its own pass. */
static void test_factors_after_grad(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  const int64_t d = f->d;
  static const int sub[] = {5, 23, 3, 5, 14};
  const int ns = (int)(sizeof sub / sizeof sub[0]);
  double *g = vec(d), *t2 = vec(d), *hv = vec(d), loss, c[2][8];
  double *a[2][16], *gl[2][16];
  for (int r = 0; r < 2; ++r)
    for (int l = 0; l < pb->n_layers; ++l) {
      a[r][l] = vec((int64_t)pb->layer_in[l] * ns);
      gl[r][l] = vec((int64_t)pb->layer_out[l] * ns);
    }
  /* 0: a pass of their own; 1: from inner_grad's pass. Mode 4 breaks the caller's promise
   * (theta changed in place) to show that the kept pass is what after_grad returns. */
  for (int mode = 0; mode < 5; ++mode) {
    assert_int_equal(pb->ops.layer_factors(pb, f->theta, f->v, ns, sub, 0, a[0], gl[0], c[0]), 0);
    assert_int_equal(pb->ops.inner_grad(pb, f->theta, f->v, NB, batch_rows, g, &loss), 0);
    const double *th = f->theta;
    if (mode == 1) /* a pass in between */
      assert_int_equal(pb->ops.hvp(pb, f->theta, f->v, NB, batch_rows, f->theta, hv), 0);
    if (mode == 2) { /* another theta: the kept pass must not be used */
      for (int64_t j = 0; j < d; ++j)
        t2[j] = 0.5 * f->theta[j];
      th = t2;
      assert_int_equal(pb->ops.layer_factors(pb, th, f->v, ns, sub, 0, a[0], gl[0], c[0]), 0);
    }
    if (mode == 4) {
      memcpy(t2, f->theta, (size_t)d * sizeof(double));
      for (int64_t j = 0; j < d; ++j)
        f->theta[j] *= 0.5;
    }
    const int *rows = sub;
    int nrows = ns;
    static const int unseen[] = {5, 1};
    if (mode == 3) { /* row 1 was not in the batch */
      rows = unseen;
      nrows = 2;
      assert_int_equal(pb->ops.layer_factors(pb, th, f->v, nrows, rows, 0, a[0], gl[0], c[0]), 0);
    }
    assert_int_equal(pb->ops.layer_factors(pb, th, f->v, nrows, rows, 1, a[1], gl[1], c[1]), 0);
    for (int l = 0; l < pb->n_layers; ++l) {
      assert_memory_equal(a[0][l], a[1][l], (size_t)pb->layer_in[l] * nrows * sizeof(double));
      assert_memory_equal(gl[0][l], gl[1][l], (size_t)pb->layer_out[l] * nrows * sizeof(double));
    }
    assert_memory_equal(c[0], c[1], (size_t)nrows * sizeof(double));
    if (mode == 4) memcpy(f->theta, t2, (size_t)d * sizeof(double));
  }
  for (int r = 0; r < 2; ++r)
    for (int l = 0; l < pb->n_layers; ++l) {
      free(a[r][l]);
      free(gl[r][l]);
    }
  free(g);
  free(t2);
  free(hv);
}

/* The regulariser's gradient and Hessian diagonal against finite differences. */
static void test_reg_fd(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  double *grad = vec(d), *hd = vec(d), *t = vec(d), *fd = vec(d), *gp = vec(d), *gm = vec(d), val;
  assert_int_equal(f->pb->ops.reg(f->pb, f->theta, f->v, &val, grad, hd), 0);
  memcpy(t, f->theta, (size_t)d * sizeof(double));
  for (int64_t k = 0; k < d; ++k) {
    double vp, vm;
    t[k] = f->theta[k] + FD_H;
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, &vp, NULL, NULL), 0);
    memset(gp, 0, (size_t)d * sizeof(double));
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, NULL, gp, NULL), 0);
    t[k] = f->theta[k] - FD_H;
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, &vm, NULL, NULL), 0);
    memset(gm, 0, (size_t)d * sizeof(double));
    assert_int_equal(f->pb->ops.reg(f->pb, t, f->v, NULL, gm, NULL), 0);
    t[k] = f->theta[k];
    fd[k] = (vp - vm) / (2 * FD_H);
    assert_true(fabs((gp[k] - gm[k]) / (2 * FD_H) - hd[k]) <= 1e-6 * (fabs(hd[k]) + 1.0));
  }
  expect_close(grad, fd, d, 1e-6, 1e-2, "reg grad vs finite differences");
  free(grad);
  free(hd);
  free(t);
  free(fd);
  free(gp);
  free(gm);
}

/* eval's gradient of the validation loss against finite differences. */
static void test_eval_fd(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  double *g = vec(d), *t = vec(d), *fd = vec(d), loss, lp, lm;
  int64_t hits;
  assert_int_equal(f->pb->ops.eval(f->pb, &f->data.val, f->theta, f->v, &loss, g, &hits), 0);
  assert_true(hits >= 0 && hits <= f->data.val.n_local);
  memcpy(t, f->theta, (size_t)d * sizeof(double));
  for (int64_t k = 0; k < d; ++k) {
    t[k] = f->theta[k] + FD_H;
    assert_int_equal(f->pb->ops.eval(f->pb, &f->data.val, t, f->v, &lp, NULL, NULL), 0);
    t[k] = f->theta[k] - FD_H;
    assert_int_equal(f->pb->ops.eval(f->pb, &f->data.val, t, f->v, &lm, NULL, NULL), 0);
    t[k] = f->theta[k];
    fd[k] = (lp - lm) / (2 * FD_H);
  }
  expect_close(g, fd, d, 1e-6, 1e-2, "eval gradient vs finite differences");
  free(g);
  free(t);
  free(fd);
}

static void test_cross_fd(void **state) {
  fx *f = *state;
  double norm = 0.0;
  double e = td_cross_fd_error(f->pb, f->theta, f->v, f->nv, NTRAIN, all_rows,
                               (double)f->data.train.n_global, SEED, 1e-4, &norm);
  if (!(e <= 1e-6)) fail_msg("cross vs finite differences in v: relative error %.3e", e);
  assert_true(norm > 1e-4);
}

/* More rows than one block (NHGD_PB_BLOCK): the blocked passes agree with per-row sums. */
static void test_blocks(void **state) {
  fx *f = *state;
  const int nb = NHGD_PB_BLOCK + 37;
  int *rows = malloc((size_t)nb * sizeof(int));
  assert_non_null(rows);
  for (int k = 0; k < nb; ++k)
    rows[k] = (k * 7) % NTRAIN;
  const int64_t d = f->d;
  double *g = vec(d), *ref = vec(d), *one = vec(d), *V = vec(d), *HV = vec(d), *Href = vec(d), loss,
         lref = 0.0, l1;
  td_fill(V, d, SEED, 8, 1.0);
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, nb, rows, g, &loss), 0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, nb, rows, V, HV), 0);
  for (int k = 0; k < nb; ++k) {
    assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, 1, rows + k, one, &l1), 0);
    lref += l1;
    for (int64_t j = 0; j < d; ++j)
      ref[j] += one[j];
    assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, 1, rows + k, V, one), 0);
    for (int64_t j = 0; j < d; ++j)
      Href[j] += one[j];
  }
  assert_true(fabs(loss - lref) <= 1e-11 * fabs(lref));
  expect_close(g, ref, d, 1e-11, 1e-8, "blocked inner_grad vs row by row");
  expect_close(HV, Href, d, 1e-11, 1e-8, "blocked hvp vs row by row");
  free(rows);
  free(g);
  free(ref);
  free(one);
  free(V);
  free(HV);
  free(Href);
}

/* The Gauss-Newton product is the Fisher of the model's own predictions: for one row,
 * G V = sum_c p_c s_c (s_c^T V) with s_c the gradient for label c and p_c = exp(-loss_c). */
static void test_gauss_newton(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  const int64_t d = f->d;
  double *V = vec(d), *GV = vec(d), *ref = vec(d), *s = vec(d), *g = vec(d), c, loss;
  td_fill(V, d, SEED, 9, 1.0);
  const int row = 0;
  const int32_t keep = f->data.train.y_class[row];
  assert_int_equal(pb->ops.hvp(pb, f->theta, f->v, 1, &row, V, GV), 0);
  for (int cl = 0; cl < NCLASS; ++cl) {
    f->data.train.y_class[row] = cl;
    assert_int_equal(pb->ops.sample_grads(pb, f->theta, f->v, 1, &row, s, &c), 0);
    assert_int_equal(pb->ops.inner_grad(pb, f->theta, f->v, 1, &row, g, &loss), 0);
    const double p = exp(-loss / c), sv = cblas_ddot((int)d, s, 1, V, 1);
    for (int64_t j = 0; j < d; ++j)
      ref[j] += c * p * sv * s[j];
  }
  f->data.train.y_class[row] = keep;
  expect_close(GV, ref, d, 1e-12, 1e-8, "Gauss-Newton product vs the model's Fisher");
  double vgv = cblas_ddot((int)d, V, 1, GV, 1);
  assert_true(vgv >= 0.0);
  free(V);
  free(GV);
  free(ref);
  free(s);
  free(g);
}

/* Shapes that cannot be built are refused with a message naming --hidden. */
static void test_shape_errors(void **state) {
  (void)state;
  nhgd_data data;
  td_make(&data, MPI_COMM_WORLD, SEED, M, NCLASS, NTRAIN, 10, 9);
  const char *bad[] = {"", "0", "4,0", "4,", "a", "4;8", "-3", " "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    nhgd_problem_params pp;
    nhgd_problem_params_default(&pp);
    snprintf(pp.hidden, sizeof pp.hidden, "%s", bad[i]);
    nhgd_problem *pb = NULL;
    assert_int_equal(nhgd_problem_create("mlp-hpo", &data, &pp, &pb), NHGD_ERR_ARG);
    assert_null(pb);
    if (!strstr(nhgd_error_message(), "--hidden"))
      fail_msg("'%s': message does not name --hidden: %s", bad[i], nhgd_error_message());
  }
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.activation = 9;
  nhgd_problem *pb = NULL;
  assert_int_equal(nhgd_problem_create("mlp-hyperclean", &data, &pp, &pb), NHGD_ERR_ARG);
  snprintf(pp.hidden, sizeof pp.hidden, "3, 2");
  pp.activation = NHGD_ACT_RELU;
  assert_int_equal(nhgd_problem_create("mlp-hyperclean", &data, &pp, &pb), 0);
  assert_int_equal(pb->n_layers, 3);
  nhgd_problem_destroy(&pb);
  td_free(&data);
}

#define MLP_TESTS                                                                                  \
  cmocka_unit_test(test_dims), cmocka_unit_test(test_init), cmocka_unit_test(test_inner_grad_fd),  \
      cmocka_unit_test(test_hvp_fd), cmocka_unit_test(test_sample_grads_factors),                  \
      cmocka_unit_test(test_factors_after_grad), cmocka_unit_test(test_reg_fd),                    \
      cmocka_unit_test(test_eval_fd), cmocka_unit_test(test_cross_fd),                             \
      cmocka_unit_test(test_blocks)

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const char *group = argc > 1 ? argv[1] : "tanh-hyperclean";
  int rc;
  if (!strcmp(group, "errors")) {
    const struct CMUnitTest t[] = {cmocka_unit_test(test_shape_errors)};
    rc = cmocka_run_group_tests_name(group, t, NULL, NULL);
  } else {
    if (!strcmp(group, "relu-hyperclean")) {
      g_act = "relu";
      g_hidden = "6";
    } else if (!strcmp(group, "tanh-hpo")) {
      g_problem = "mlp-hpo";
    } else if (!strcmp(group, "gauss-newton")) {
      g_problem = "mlp-hyperclean";
      g_hidden = "4,3";
      g_gn = 1;
    } else if (!strcmp(group, "deep-hpo")) {
      g_problem = "mlp-hpo";
      g_hidden = "4,3";
    } else if (strcmp(group, "tanh-hyperclean")) {
      fprintf(stderr, "unknown group %s\n", group);
      MPI_Finalize();
      return 2;
    }
    const struct CMUnitTest t[] = {MLP_TESTS};
    const struct CMUnitTest tg[] = {
        cmocka_unit_test(test_gauss_newton), cmocka_unit_test(test_dims),
        cmocka_unit_test(test_inner_grad_fd), cmocka_unit_test(test_cross_fd)};
    if (g_gn) {
      rc = cmocka_run_group_tests_name(group, tg, setup, teardown);
      MPI_Finalize();
      return rc;
    }
    rc = cmocka_run_group_tests_name(group, t, setup, teardown);
  }
  MPI_Finalize();
  return rc;
}
