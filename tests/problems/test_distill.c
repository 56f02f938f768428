/* Unit tests of the distill problem, with the linear softmax and with a network (3-2 tanh) as
 * the inner model: its view of the data (synthetic rows as the training split with fixed
 * labels, the real training split as validation), the initialisation, and the gradient,
 * Hessian-vector product and cross term J^T u (in the pixels of the synthetic images) against
 * central finite differences; the errors of a bad image count. */
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

#define SEED 20261203u
#define M 4
#define NCLASS 3
#define PER 3
#define NSYN (PER * NCLASS)
#define FD_H 1e-6

typedef pb_fx fx;

static const int rows[] = {0, 4, 4, 8, 2, 7, 1};
#define NB ((int)(sizeof rows / sizeof rows[0]))
static int all[NSYN];
static int net_model; /* the group under test: 1 with the mlp inner model */

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (!f) return -1;
  td_make(&f->data, MPI_COMM_WORLD, SEED, M, NCLASS, 30, 10, 9);
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.clean_reg = 0.05;
  pp.distill_per_class = PER;
  pp.init_seed = 5;
  pp.distill_mlp = net_model;
  snprintf(pp.hidden, sizeof pp.hidden, "3,2");
  if (nhgd_problem_create("distill", &f->data, &pp, &f->pb)) {
    fprintf(stderr, "create: %s\n", nhgd_error_message());
    return -1;
  }
  f->d = f->pb->d;
  f->nv = f->pb->p; /* one rank: every synthetic row is local */
  f->theta = vec(f->d);
  f->v = vec(f->nv);
  assert_int_equal(f->pb->ops.init(f->pb, f->theta, f->v), 0);
  td_fill(f->theta, f->d, SEED, 1, 0.5);
  for (int i = 0; i < NSYN; ++i)
    all[i] = i;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  return pb_fx_teardown(state);
}

/* The view: k C synthetic rows with labels i / k, features in v; val is the real training
 * split; test the real test split. */
static void test_view(void **state) {
  fx *f = *state;
  const nhgd_problem *pb = f->pb;
  assert_ptr_not_equal(pb->data, &f->data);
  assert_int_equal(pb->data->train.n_global, NSYN);
  assert_int_equal(pb->data->train.n_local, NSYN);
  for (int i = 0; i < NSYN; ++i)
    assert_int_equal(pb->data->train.y_class[i], i / PER);
  assert_int_equal(pb->data->val.n_global, f->data.train.n_global);
  assert_ptr_equal(pb->data->val.X, f->data.train.X);
  assert_ptr_equal(pb->data->test.X, f->data.test.X);
  assert_int_equal(pb->v_per_sample, M);
  assert_int_equal(pb->p, NSYN * M);
  assert_int_equal(pb->d, net_model ? (M + 1) * 3 + 4 * 2 + 3 * NCLASS : M * NCLASS);
  assert_int_equal(pb->n_layers, net_model ? 3 : 0);
  /* The images are noise around --v-init, the same at every call. */
  double *t = vec(f->d), *v = vec(f->nv);
  assert_int_equal(pb->ops.init(pb, t, v), 0);
  assert_memory_equal(v, f->v, (size_t)f->nv * sizeof(double));
  assert_true(v[0] != v[1]);
  free(t);
  free(v);
}

static double loss_at(const fx *f, const double *theta, const double *v) {
  double *g = vec(f->d), loss;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, theta, v, NB, rows, g, &loss), 0);
  free(g);
  return loss;
}

static void test_inner_grad_hvp_fd(void **state) {
  fx *f = *state;
  const int64_t d = f->d;
  double *g = vec(d), *fd = vec(d), *t = vec(d), *V = vec(d), *HV = vec(d), *gp = vec(d),
         *gm = vec(d), loss;
  assert_int_equal(f->pb->ops.inner_grad(f->pb, f->theta, f->v, NB, rows, g, &loss), 0);
  memcpy(t, f->theta, (size_t)d * sizeof(double));
  for (int64_t k = 0; k < d; ++k) {
    t[k] = f->theta[k] + FD_H;
    double lp = loss_at(f, t, f->v);
    t[k] = f->theta[k] - FD_H;
    double lm = loss_at(f, t, f->v);
    t[k] = f->theta[k];
    fd[k] = (lp - lm) / (2 * FD_H);
  }
  expect_close(g, fd, d, 1e-6, 1e-2, "inner_grad vs finite differences");
  td_fill(V, d, SEED, 3, 1.0);
  assert_int_equal(f->pb->ops.hvp(f->pb, f->theta, f->v, NB, rows, V, HV), 0);
  for (int64_t k = 0; k < d; ++k)
    t[k] = f->theta[k] + FD_H * V[k];
  assert_int_equal(f->pb->ops.inner_grad(f->pb, t, f->v, NB, rows, gp, &loss), 0);
  for (int64_t k = 0; k < d; ++k)
    t[k] = f->theta[k] - FD_H * V[k];
  assert_int_equal(f->pb->ops.inner_grad(f->pb, t, f->v, NB, rows, gm, &loss), 0);
  for (int64_t k = 0; k < d; ++k)
    fd[k] = (gp[k] - gm[k]) / (2 * FD_H);
  expect_close(HV, fd, d, 1e-6, 1e-2, "hvp vs finite differences of inner_grad");
  free(g);
  free(fd);
  free(t);
  free(V);
  free(HV);
  free(gp);
  free(gm);
}

static void test_cross_fd(void **state) {
  fx *f = *state;
  double norm = 0.0;
  double e =
      td_cross_fd_error(f->pb, f->theta, f->v, f->nv, NSYN, all, (double)NSYN, SEED, 1e-4, &norm);
  if (!(e <= 1e-6)) fail_msg("cross vs finite differences in v: relative error %.3e", e);
  assert_true(norm > 1e-4);
}

/* The outer loss is the real training split's cross-entropy: eval on the view's val split
 * equals eval on the real training split. */
static void test_outer_split(void **state) {
  fx *f = *state;
  double a, b;
  int64_t ca, cb;
  assert_int_equal(f->pb->ops.eval(f->pb, &f->pb->data->val, f->theta, f->v, &a, NULL, &ca), 0);
  assert_int_equal(f->pb->ops.eval(f->pb, &f->data.train, f->theta, f->v, &b, NULL, &cb), 0);
  assert_true(a == b && ca == cb);
}

static void test_errors(void **state) {
  (void)state;
  nhgd_data data;
  td_make(&data, MPI_COMM_WORLD, SEED, M, NCLASS, 30, 10, 9);
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  nhgd_problem *pb = NULL;
  pp.distill_per_class = 11; /* 33 images from 30 rows */
  assert_int_equal(nhgd_problem_create("distill", &data, &pp, &pb), NHGD_ERR_ARG);
  assert_non_null(strstr(nhgd_error_message(), "--distill-per-class 11"));
  assert_null(pb);
  pp.distill_per_class = 0;
  nhgd_error_clear();
  assert_int_equal(nhgd_problem_create("distill", &data, &pp, &pb), NHGD_ERR_ARG);
  assert_non_null(strstr(nhgd_error_message(), "at least one image per class"));
  pp.distill_per_class = 10;
  assert_int_equal(nhgd_problem_create("distill", &data, &pp, &pb), 0);
  nhgd_problem_destroy(&pb);
  td_free(&data);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_view), cmocka_unit_test(test_inner_grad_hvp_fd),
      cmocka_unit_test(test_cross_fd), cmocka_unit_test(test_outer_split)};
  const struct CMUnitTest e[] = {cmocka_unit_test(test_errors)};
  int rc = cmocka_run_group_tests_name("distill", t, setup, teardown);
  net_model = 1;
  rc |= cmocka_run_group_tests_name("distill with the mlp model", t, setup, teardown);
  rc |= cmocka_run_group_tests_name("distill errors", e, NULL, NULL);
  MPI_Finalize();
  return rc;
}
