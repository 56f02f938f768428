/* Unit tests of the synthetic data writer: options, model, reproducibility, tmp files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/testutil.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"

static void test_defaults(void **state) {
  (void)state;
  nhgd_synth_options o;
  memset(&o, 0x5a, sizeof o);
  nhgd_synth_options_default(&o);
  assert_string_equal(o.kind, "ridge");
  assert_string_equal(o.output, "synth.h5");
  assert_int_equal(o.n_train, 1000);
  assert_int_equal(o.n_val, 500);
  assert_int_equal(o.n_test, 500);
  assert_int_equal(o.features, 20);
  assert_int_equal(o.classes, 3);
  assert_true(o.noise == 1.0);
  assert_int_equal(o.seed, 0);
}

/* Each invalid option fails with NHGD_ERR_ARG, a message naming it, and no file. */
static void test_validation(void **state) {
  (void)state;
  struct {
    const char *field;
    const char *phrase;
  } cases[] = {{"kind", "unknown kind 'lasso'"},
               {"n_train", "n_train = 0 must be >= 1"},
               {"n_val", "n_val = -3 must be >= 1"},
               {"n_test", "n_test = -1 must be >= 0"},
               {"features", "features = 0 must be >= 1"},
               {"classes", "classes = 1 must be >= 2 for kind logistic"},
               {"noise", "noise = -0.5 must be finite and >= 0"},
               {"noise_nan", "noise = nan must be finite and >= 0"},
               {"output", "no output file given"}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
    nhgd_synth_options o;
    nhgd_synth_options_default(&o);
    snprintf(o.output, sizeof o.output, "synth_invalid.h5");
    remove(o.output);
    const char *f = cases[k].field;
    if (!strcmp(f, "kind")) snprintf(o.kind, sizeof o.kind, "lasso");
    if (!strcmp(f, "n_train")) o.n_train = 0;
    if (!strcmp(f, "n_val")) o.n_val = -3;
    if (!strcmp(f, "n_test")) o.n_test = -1;
    if (!strcmp(f, "features")) o.features = 0;
    if (!strcmp(f, "classes")) {
      snprintf(o.kind, sizeof o.kind, "logistic");
      o.classes = 1;
    }
    if (!strcmp(f, "noise")) o.noise = -0.5;
    if (!strcmp(f, "noise_nan")) o.noise = NAN;
    if (!strcmp(f, "output")) o.output[0] = '\0';
    nhgd_error_clear();
    assert_int_equal(nhgd_data_synth(&o), NHGD_ERR_ARG);
    assert_true(tu_contains(nhgd_error_message(), cases[k].phrase));
    assert_int_equal(tu_file_size("synth_invalid.h5"), -1);
  }
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += a[i] * b[i];
  return s;
}

/* Without noise y = X theta_true exactly (up to rounding); with noise sigma the residuals
 * have standard deviation sigma. */
static void test_ridge_model(void **state) {
  (void)state;
  nhgd_synth_options o;
  nhgd_synth_options_default(&o);
  snprintf(o.output, sizeof o.output, "synth_ridge0.h5");
  o.noise = 0;
  o.features = 9;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_synth(&o), 0);
  int64_t n, m, tm, tc;
  double *theta = tu_read_doubles(o.output, "/truth/theta", &tm, &tc);
  assert_non_null(theta);
  assert_int_equal(tm, 9);
  assert_int_equal(tc, 1);
  const char *splits[3][2] = {
      {"/train/X", "/train/y"}, {"/val/X", "/val/y"}, {"/test/X", "/test/y"}};
  const int64_t rows[3] = {1000, 500, 500};
  for (int s = 0; s < 3; ++s) {
    double *X = tu_read_doubles(o.output, splits[s][0], &n, &m);
    double *y = tu_read_doubles(o.output, splits[s][1], NULL, NULL);
    assert_non_null(X);
    assert_non_null(y);
    assert_int_equal(n, rows[s]);
    assert_int_equal(m, 9);
    double sx = 0, sxx = 0;
    for (int64_t i = 0; i < n; ++i) {
      assert_true(fabs(y[i] - dot(X + i * m, theta, m)) < 1e-12 * (1 + fabs(y[i])));
      for (int64_t j = 0; j < m; ++j) {
        sx += X[i * m + j];
        sxx += X[i * m + j] * X[i * m + j];
      }
    }
    /* X ~ N(0, 1): mean and variance within a few standard errors. */
    const double cnt = (double)(n * m);
    assert_true(fabs(sx / cnt) < 5 / sqrt(cnt));
    assert_true(fabs(sxx / cnt - 1) < 5 * sqrt(2 / cnt));
    free(X);
    free(y);
  }
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type(o.output, "/train/X", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 8);
  assert_int_equal(tu_dataset_type(o.output, "/train/y", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 8);
  long long v;
  assert_int_equal(tu_attr_int(o.output, "n_classes", &v), -1); /* regression */
  assert_int_equal(tu_attr_int(o.output, "format_version", &v), 0);
  assert_int_equal(v, 1);
  char str[64];
  assert_int_equal(tu_attr_string(o.output, "format", str, sizeof str), 0);
  assert_string_equal(str, "nhgd-data");
  assert_int_equal(tu_attr_string(o.output, "kind", str, sizeof str), 0);
  assert_string_equal(str, "ridge");
  double sigma = -1;
  assert_int_equal(tu_attr_double(o.output, "noise_sigma", &sigma), 0);
  assert_true(sigma == 0);
  free(theta);
  remove(o.output);

  snprintf(o.output, sizeof o.output, "synth_ridge_noise.h5");
  o.noise = 0.5;
  o.n_train = 20000;
  assert_int_equal(nhgd_data_synth(&o), 0);
  theta = tu_read_doubles(o.output, "/truth/theta", NULL, NULL);
  double *X = tu_read_doubles(o.output, "/train/X", &n, &m);
  double *y = tu_read_doubles(o.output, "/train/y", NULL, NULL);
  assert_non_null(theta);
  assert_non_null(X);
  assert_non_null(y);
  double ss = 0, s1 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = y[i] - dot(X + i * m, theta, m);
    s1 += r;
    ss += r * r;
  }
  assert_true(fabs(s1 / (double)n) < 5 * 0.5 / sqrt((double)n));
  assert_true(fabs(sqrt(ss / (double)n) - 0.5) < 0.02);
  assert_int_equal(tu_attr_double(o.output, "noise_sigma", &sigma), 0);
  assert_true(sigma == 0.5);
  free(theta);
  free(X);
  free(y);
  remove(o.output);
}

/* Labels are in range, every class occurs, and they follow softmax(W^T x): the most likely
 * class under the true W is chosen far more often than chance. */
static void test_logistic_model(void **state) {
  (void)state;
  nhgd_synth_options o;
  nhgd_synth_options_default(&o);
  snprintf(o.kind, sizeof o.kind, "logistic");
  snprintf(o.output, sizeof o.output, "synth_logistic.h5");
  o.n_train = 6000;
  o.n_test = 0;
  o.features = 10;
  o.classes = 4;
  o.seed = 11;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_synth(&o), 0);
  long long nc = 0;
  assert_int_equal(tu_attr_int(o.output, "n_classes", &nc), 0);
  assert_int_equal(nc, 4);
  int64_t tm, tc, n, m, yn;
  double *W = tu_read_doubles(o.output, "/truth/theta", &tm, &tc);
  double *X = tu_read_doubles(o.output, "/train/X", &n, &m);
  int32_t *y = tu_read_ints(o.output, "/train/y", &yn);
  assert_non_null(W);
  assert_non_null(X);
  assert_non_null(y);
  assert_int_equal(tm, 10);
  assert_int_equal(tc, 4);
  assert_int_equal(yn, 6000);
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type(o.output, "/train/y", &cls, &sz), 0);
  assert_true(cls == H5T_INTEGER && sz == 4);
  assert_false(tu_exists(o.output, "/test"));
  double wss = 0;
  for (int64_t k = 0; k < tm * tc; ++k)
    wss += W[k] * W[k];
  /* W ~ N(0, 1/m): sum of squares about C. */
  assert_true(fabs(wss / 4 - 1) < 0.6);
  int64_t count[4] = {0}, agree = 0;
  for (int64_t i = 0; i < n; ++i) {
    assert_true(y[i] >= 0 && y[i] < 4);
    count[y[i]]++;
    int best = 0;
    double top = -INFINITY;
    for (int k = 0; k < 4; ++k) {
      double z = 0;
      for (int j = 0; j < m; ++j)
        z += X[i * m + j] * W[j * 4 + k];
      if (z > top) top = z, best = k;
    }
    agree += best == y[i];
  }
  for (int k = 0; k < 4; ++k)
    assert_true(count[k] > 300);
  assert_true((double)agree / (double)n > 0.4);
  free(W);
  free(X);
  free(y);
  remove(o.output);
}

/* The same options give byte-identical files (no timestamps); another seed changes the data;
 * overwriting goes through the temporary file and leaves none behind. */
static void test_reproducible(void **state) {
  (void)state;
  nhgd_synth_options o;
  nhgd_synth_options_default(&o);
  o.n_train = 200;
  snprintf(o.output, sizeof o.output, "synth_rep_a.h5");
  assert_int_equal(nhgd_data_synth(&o), 0);
  snprintf(o.output, sizeof o.output, "synth_rep_b.h5");
  assert_int_equal(nhgd_data_synth(&o), 0);
  assert_true(tu_same_bytes("synth_rep_a.h5", "synth_rep_b.h5"));
  o.seed = 1;
  assert_int_equal(nhgd_data_synth(&o), 0); /* overwrite b */
  assert_int_equal(tu_file_size("synth_rep_b.h5.tmp"), -1);
  int64_t n, m;
  double *a = tu_read_doubles("synth_rep_a.h5", "/train/X", &n, &m);
  double *b = tu_read_doubles("synth_rep_b.h5", "/train/X", NULL, NULL);
  assert_non_null(a);
  assert_non_null(b);
  assert_true(memcmp(a, b, sizeof(double) * (size_t)(n * m)) != 0);
  long long seed = -1;
  assert_int_equal(tu_attr_int("synth_rep_b.h5", "seed", &seed), 0);
  assert_int_equal(seed, 1);
  free(a);
  free(b);
  remove("synth_rep_a.h5");
  remove("synth_rep_b.h5");
}

/* An output that cannot be created fails cleanly, naming the file. */
static void test_unwritable_output(void **state) {
  (void)state;
  nhgd_synth_options o;
  nhgd_synth_options_default(&o);
  snprintf(o.output, sizeof o.output, "no_such_dir/synth.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_synth(&o), NHGD_ERR_IO);
  assert_true(tu_contains(nhgd_error_message(), "no_such_dir/synth.h5"));
  assert_true(tu_contains(nhgd_error_message(), "cannot create the temporary file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),     cmocka_unit_test(test_validation),
      cmocka_unit_test(test_ridge_model),  cmocka_unit_test(test_logistic_model),
      cmocka_unit_test(test_reproducible), cmocka_unit_test(test_unwritable_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
