/* cmocka helpers shared by the problem tests (include after cmocka.h): zeroed vectors, the
 * relative-error assertion, and the fixture of one problem bound to hand-built data. */
#ifndef NHGD_TESTS_PB_FIXTURE_H
#define NHGD_TESTS_PB_FIXTURE_H

#include "pb_testdata.h"

static inline double *vec(int64_t n) {
  double *x = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
  assert_non_null(x);
  return x;
}

static inline void expect_close(const double *a, const double *b, int64_t n, double rtol,
                                double floor, const char *what) {
  double e = td_relerr(a, b, n, floor);
  if (!(e <= rtol)) fail_msg("%s: relative error %.3e exceeds %.1e", what, e, rtol);
}

/* One problem, its data, a point theta and this rank's v (nv entries). */
typedef struct pb_fx {
  nhgd_data data;
  nhgd_problem *pb;
  int64_t d, nv;
  double *theta, *v;
} pb_fx;

static inline int pb_fx_teardown(void **state) {
  pb_fx *f = *state;
  if (!f) return 0;
  nhgd_problem_destroy(&f->pb);
  td_free(&f->data);
  free(f->theta);
  free(f->v);
  free(f);
  return 0;
}

#endif
