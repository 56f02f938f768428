/* nhgd_problem_create_custom: the callback table is copied with the caller's size (an older,
 * shorter table reads as absent callbacks; a longer one is refused only when it sets callbacks
 * this library does not know), required callbacks and the name are checked, the library owns
 * the allocation and destroy frees the caller's state through the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "nhgd/errors.h"
#include "nhgd/problem.h"
#include "pb_testdata.h"

static int destroyed;

static int ok_init(const nhgd_problem *pb, double *theta, double *v) {
  return 0;
}
static int ok_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                         const int *rows, double *g, double *loss) {
  return 0;
}
static int ok_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                  const int *rows, const double *V, double *HV) {
  return 0;
}
static int ok_reg(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                  double *grad, double *hdiag) {
  return 0;
}
static int ok_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                   const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  return 0;
}
static int ok_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                    double *out) {
  return 0;
}
static void ok_destroy(nhgd_problem *pb) {
  ++destroyed;
  free(pb->ctx);
  pb->ctx = NULL;
}

static const nhgd_problem_ops full = {
    .init = ok_init,
    .inner_grad = ok_inner_grad,
    .hvp = ok_hvp,
    .reg = ok_reg,
    .eval = ok_eval,
    .cross = ok_cross,
    .destroy = ok_destroy,
};

static void expect_refused(const char *name, const nhgd_data *data, const void *ops, size_t size,
                           const char *part) {
  nhgd_problem *pb = (nhgd_problem *)&pb; /* any non-NULL value: it must come back NULL */
  assert_int_equal(nhgd_problem_create_custom(name, data, ops, size, NULL, &pb), NHGD_ERR_ARG);
  assert_null(pb);
  assert_non_null(strstr(nhgd_error_message(), part));
  nhgd_error_clear();
}

static void test_custom(void **state) {
  (void)state;
  nhgd_data data;
  td_make(&data, MPI_COMM_WORLD, 7, 3, 0, 10, 5, 0);

  /* The whole table: copied, the name copied, the shape zero until set, the state freed by
   * the table's destroy. */
  char name[16] = "mine";
  double *ctx = calloc(4, sizeof(double));
  nhgd_problem *pb = NULL;
  assert_int_equal(nhgd_problem_create_custom(name, &data, &full, sizeof full, ctx, &pb), 0);
  name[0] = 'X';
  assert_string_equal(pb->name, "mine");
  assert_ptr_equal(pb->ctx, ctx);
  assert_ptr_equal(pb->data, &data);
  assert_int_equal(pb->d, 0);
  assert_int_equal(pb->n_layers, 0);
  assert_ptr_equal(pb->ops.hvp, ok_hvp);
  assert_ptr_equal(pb->ops.cross, ok_cross);
  destroyed = 0;
  nhgd_problem_destroy(&pb);
  assert_null(pb);
  assert_int_equal(destroyed, 1);

  /* A caller compiled with a shorter table (up to and including cross): the callbacks after
   * it read as absent. */
  nhgd_problem_ops old = full;
  const size_t short_size = offsetof(nhgd_problem_ops, cross) + sizeof old.cross;
  assert_int_equal(nhgd_problem_create_custom("old", &data, &old, short_size, NULL, &pb), 0);
  assert_ptr_equal(pb->ops.cross, ok_cross);
  assert_null(pb->ops.destroy);
  assert_null(pb->ops.layer_factors);
  nhgd_problem_destroy(&pb);

  /* A caller compiled with a longer table: accepted while the callbacks this library does not
   * know are NULL, refused when one is set. */
  struct {
    nhgd_problem_ops ops;
    void (*later)(void);
  } newer = {full, NULL};
  assert_int_equal(nhgd_problem_create_custom("new", &data, &newer.ops, sizeof newer, NULL, &pb),
                   0);
  nhgd_problem_destroy(&pb);
  newer.later = (void (*)(void))ok_destroy;
  expect_refused("new", &data, &newer, sizeof newer, "does not know");

  /* Required callbacks, the name, the data and the table itself. */
  nhgd_problem_ops missing = full;
  missing.cross = NULL;
  expect_refused("nocross", &data, &missing, sizeof missing, "callback cross is required");
  missing = full;
  missing.reg = NULL;
  expect_refused("noreg", &data, &missing, sizeof missing, "callback reg is required");
  expect_refused("a-name-that-is-far-too-long-for-the-problem-name-field-of-the-library", &data,
                 &full, sizeof full, "longer than 63");
  expect_refused("", &data, &full, sizeof full, "no name");
  expect_refused("nodata", NULL, &full, sizeof full, "no data");
  expect_refused("nosize", &data, &full, 0, "no callback table");
  expect_refused("notable", &data, NULL, sizeof full, "no callback table");
  td_free(&data);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_custom)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return failed ? 1 : 0;
}
