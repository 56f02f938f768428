/* Unit tests of `import-libsvm`: malformed lines name file and line; valid files import. */
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

static void options(nhgd_import_libsvm_options *o, const char *input, const char *output) {
  nhgd_import_libsvm_options_default(o);
  snprintf(o->input, sizeof o->input, "%s", input);
  snprintf(o->output, sizeof o->output, "%s", output);
}

static void test_defaults(void **state) {
  (void)state;
  nhgd_import_libsvm_options o;
  memset(&o, 0x5a, sizeof o);
  nhgd_import_libsvm_options_default(&o);
  assert_true(o.val_fraction == 0.2);
  assert_true(o.test_fraction == 0.2);
  assert_int_equal(o.standardize, 1);
  assert_int_equal(o.regression, 0);
  assert_int_equal(o.features, 0);
  assert_int_equal(o.seed, 0);
  assert_string_equal(o.input, "");
  assert_string_equal(o.test, "");
}

/* Each bad third line (after a comment and a good row) fails with "file: line 3: ...". */
static void test_malformed_lines(void **state) {
  (void)state;
  static const struct {
    const char *line;
    int regression;
    int64_t features;
    const char *phrase;
  } cases[] = {
      {"abc 1:1", 0, 0, "line 3: bad label 'abc' (expected a number)"},
      {"1.5 1:1", 0, 0, "line 3: bad label '1.5': class labels must be integers"},
      {"nan 1:1", 1, 0, "line 3: bad label 'nan' (not finite)"},
      {"1x 1:1", 1, 0, "line 3: bad label '1x'"},
      {"1 x:1", 0, 0, "line 3: bad index 'x' (must be a positive integer)"},
      {"1 1.5:2", 0, 0, "line 3: bad index '1.5'"},
      {"1 :2", 0, 0, "line 3: bad index in ':2': no index before ':'"},
      {"1 0:1", 0, 0, "line 3: bad index 0 in '0:1' (indices are 1-based)"},
      {"1 -2:1", 0, 0, "line 3: negative index in '-2:1'"},
      {"1 3:1 2:1", 0, 0, "line 3: index 2 does not increase (previous index 3)"},
      {"1 2:1 2:1", 0, 0, "line 3: index 2 does not increase (previous index 2)"},
      {"1 3", 0, 0, "line 3: missing ':' in '3' (expected index:value)"},
      {"1 3:abc", 0, 0, "line 3: bad value in '3:abc'"},
      {"1 3:", 0, 0, "line 3: bad value in '3:'"},
      {"1 3:1.0x", 0, 0, "line 3: bad value in '3:1.0x'"},
      {"1 3:nan", 0, 0, "line 3: value 'nan' of index 3 is not finite"},
      {"1 3:-inf", 0, 0, "line 3: value '-inf' of index 3 is not finite"},
      {"1 3:1e999", 0, 0, "line 3: value '1e999' of index 3 is not finite"},
      {"1 9:1", 0, 5, "line 3: index 9 exceeds the feature count 5"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; ++k) {
    char text[256], expect[320];
    snprintf(text, sizeof text, "# header comment\n-1 1:0.5 3:1\n%s\n1 2:1\n", cases[k].line);
    assert_int_equal(tu_write_text("svm_bad.txt", text), 0);
    nhgd_import_libsvm_options o;
    options(&o, "svm_bad.txt", "svm_bad.h5");
    o.regression = cases[k].regression;
    o.features = cases[k].features;
    remove(o.output);
    nhgd_error_clear();
    assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
    snprintf(expect, sizeof expect, "svm_bad.txt: %s", cases[k].phrase);
    fprintf(stderr, "  %-12s -> %s\n", cases[k].line, nhgd_error_message());
    assert_true(tu_contains(nhgd_error_message(), expect));
    assert_int_equal(tu_file_size("svm_bad.h5"), -1);
  }
  remove("svm_bad.txt");
}

/* Problems of whole files. */
static void test_file_errors(void **state) {
  (void)state;
  nhgd_import_libsvm_options o;
  options(&o, "svm_missing.txt", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_IO);
  assert_true(tu_contains(nhgd_error_message(), "svm_missing.txt: cannot open: No such file"));

  assert_int_equal(tu_write_text("svm_empty.txt", "# nothing\n\n"), 0);
  options(&o, "svm_empty.txt", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(tu_contains(nhgd_error_message(), "svm_empty.txt: no data rows"));

  assert_int_equal(tu_write_text("svm_one.txt", "2 1:1\n2 2:1\n2 1:3\n2 1:1\n2 2:2\n"), 0);
  options(&o, "svm_one.txt", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(tu_contains(nhgd_error_message(),
                          "svm_one.txt: every label is 2; classification needs at least 2"));

  assert_int_equal(tu_write_text("svm_nofeat.txt", "1\n2\n1\n2\n1\n2\n"), 0);
  options(&o, "svm_nofeat.txt", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(
      tu_contains(nhgd_error_message(), "svm_nofeat.txt: no features (every row is empty)"));

  assert_int_equal(tu_write_text("svm_few.txt", "1 1:1\n2 1:2\n"), 0);
  options(&o, "svm_few.txt", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(tu_contains(nhgd_error_message(), "svm_few.txt: 2 rows are too few to split"));

  /* A test file with a label that training never saw, at its line 3. */
  assert_int_equal(tu_write_text("svm_train.txt", "1 1:1\n2 1:2\n1 2:1\n2 2:2\n1 1:3\n2 1:4\n"), 0);
  assert_int_equal(tu_write_text("svm_test.txt", "1 1:1\n\n7 1:2\n"), 0);
  options(&o, "svm_train.txt", "svm_err.h5");
  snprintf(o.test, sizeof o.test, "svm_test.txt");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(tu_contains(nhgd_error_message(),
                          "svm_test.txt: line 3: label 7 does not occur in the training file "
                          "svm_train.txt"));
  /* Malformed lines of the test file are reported the same way. */
  assert_int_equal(tu_write_text("svm_test.txt", "1 1:1\n2 4:1 3:1\n"), 0);
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_DATA);
  assert_true(tu_contains(nhgd_error_message(), "svm_test.txt: line 2: index 3 does not increase"));

  /* Option checks. */
  options(&o, "svm_train.txt", "svm_err.h5");
  o.val_fraction = 0;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_ARG);
  assert_true(tu_contains(nhgd_error_message(), "val_fraction = 0 must be in (0, 1)"));
  options(&o, "svm_train.txt", "svm_err.h5");
  o.test_fraction = 1;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_ARG);
  assert_true(tu_contains(nhgd_error_message(), "test_fraction = 1 must be in [0, 1)"));
  options(&o, "", "svm_err.h5");
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), NHGD_ERR_ARG);
  assert_true(tu_contains(nhgd_error_message(), "no input file given"));
  assert_int_equal(tu_file_size("svm_err.h5"), -1);
  const char *files[] = {"svm_empty.txt", "svm_one.txt",   "svm_nofeat.txt",
                         "svm_few.txt",   "svm_train.txt", "svm_test.txt"};
  for (size_t i = 0; i < sizeof files / sizeof *files; ++i)
    remove(files[i]);
}

/* Ten rows: row r (0-based) has feature 1 = r + 1 (naming it), label -1 for even r and +1 for
 * odd r, and a few other sparse entries. Comments, blank lines, CRLF and tabs are allowed. */
static const char *const valid_text = "# a LIBSVM file\n"
                                      "-1 1:1 4:0.5\n"
                                      "+1 1:2 2:-1.25   # trailing comment\r\n"
                                      "\n"
                                      "-1\t1:3 6:2e-1\n"
                                      "1 1:4\n"
                                      "   \n"
                                      "-1 1:5 3:7\n"
                                      "1 1:6 2:1 3:1 4:1\n"
                                      "-1.0 1:7\n"
                                      "1 1:8 5:-3\n"
                                      "-1 1:9\n"
                                      "1 1:10 6:1\n";

/* Dense value of feature j (0-based) of row r, as written above. */
static double valid_x(int r, int j) {
  static const double extra[10][6] = {
      {0, 0, 0, 0.5, 0, 0}, {0, -1.25, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0.2}, {0, 0, 0, 0, 0, 0},
      {0, 0, 7, 0, 0, 0},   {0, 1, 1, 1, 0, 0},     {0, 0, 0, 0, 0, 0},   {0, 0, 0, 0, -3, 0},
      {0, 0, 0, 0, 0, 0},   {0, 0, 0, 0, 0, 1}};
  return j == 0 ? r + 1 : extra[r][j];
}

static void check_split(const char *path, const char *split, int64_t rows, int64_t m, int *seen) {
  char xp[32], yp[32];
  snprintf(xp, sizeof xp, "/%s/X", split);
  snprintf(yp, sizeof yp, "/%s/y", split);
  int64_t n, cols;
  double *X = tu_read_doubles(path, xp, &n, &cols);
  int32_t *y = tu_read_ints(path, yp, NULL);
  assert_non_null(X);
  assert_non_null(y);
  assert_int_equal(n, rows);
  assert_int_equal(cols, m);
  for (int64_t i = 0; i < n; ++i) {
    const int r = (int)X[i * m] - 1;
    assert_true(r >= 0 && r < 10);
    seen[r]++;
    assert_int_equal(y[i], r % 2); /* -1 -> class 0, +1 -> class 1 */
    for (int j = 0; j < m; ++j)
      assert_true(X[i * m + j] == (j < 6 ? valid_x(r, j) : 0));
  }
  free(X);
  free(y);
}

static void test_valid_classification(void **state) {
  (void)state;
  assert_int_equal(tu_write_text("svm_valid.txt", valid_text), 0);
  nhgd_import_libsvm_options o;
  options(&o, "svm_valid.txt", "svm_valid.h5");
  o.standardize = 0;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  /* 10 rows: test round(0.2 * 10) = 2, val round(0.2 * 8) = 2, train 6; m = largest index 6. */
  int seen[10] = {0};
  check_split("svm_valid.h5", "train", 6, 6, seen);
  check_split("svm_valid.h5", "val", 2, 6, seen);
  check_split("svm_valid.h5", "test", 2, 6, seen);
  for (int r = 0; r < 10; ++r)
    assert_int_equal(seen[r], 1);
  long long nc;
  assert_int_equal(tu_attr_int("svm_valid.h5", "n_classes", &nc), 0);
  assert_int_equal(nc, 2);
  double values[4];
  int64_t nv = 0;
  assert_int_equal(tu_attr_doubles("svm_valid.h5", "label_values", values, 4, &nv), 0);
  assert_int_equal(nv, 2);
  assert_true(values[0] == -1 && values[1] == 1);
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type("svm_valid.h5", "/train/X", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 8);

  /* A given feature count pads with zero columns. */
  o.features = 8;
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  memset(seen, 0, sizeof seen);
  check_split("svm_valid.h5", "train", 6, 8, seen);

  /* test_fraction 0: no /test group. */
  o.features = 0;
  o.test_fraction = 0;
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  memset(seen, 0, sizeof seen);
  check_split("svm_valid.h5", "train", 8, 6, seen);
  check_split("svm_valid.h5", "val", 2, 6, seen);
  assert_false(tu_exists("svm_valid.h5", "/test"));
  remove("svm_valid.txt");
  remove("svm_valid.h5");
}

/* Labels 3, 1, 2 map to classes 2, 0, 1; a separate test file is used in its order, and its
 * larger index widens the feature space of every split. Standardisation uses train only. */
static void test_multiclass_with_test_file(void **state) {
  (void)state;
  assert_int_equal(tu_write_text("svm_mc.txt", "3 1:1\n1 1:2 2:1\n2 1:3\n3 1:4\n1 1:5\n2 1:6\n"
                                               "3 1:7\n1 1:8\n2 1:9\n3 1:10\n"),
                   0);
  assert_int_equal(tu_write_text("svm_mc_test.txt", "2 1:100 9:1\n3 1:200\n1 1:300\n"), 0);
  nhgd_import_libsvm_options o;
  options(&o, "svm_mc.txt", "svm_mc.h5");
  snprintf(o.test, sizeof o.test, "svm_mc_test.txt");
  o.standardize = 0;
  o.val_fraction = 0.3;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  double values[4];
  int64_t nv = 0;
  assert_int_equal(tu_attr_doubles("svm_mc.h5", "label_values", values, 4, &nv), 0);
  assert_int_equal(nv, 3);
  assert_true(values[0] == 1 && values[1] == 2 && values[2] == 3);
  int64_t n, m;
  double *X = tu_read_doubles("svm_mc.h5", "/train/X", &n, &m);
  int32_t *y = tu_read_ints("svm_mc.h5", "/train/y", NULL);
  assert_int_equal(n, 7); /* val round(0.3 * 10) = 3 */
  assert_int_equal(m, 9);
  for (int64_t i = 0; i < n; ++i) {
    const int r = (int)X[i * m] - 1; /* original labels cycle 3, 1, 2 */
    const int label = r % 3 == 0 ? 3 : r % 3 == 1 ? 1 : 2;
    assert_int_equal(y[i], label - 1);
  }
  free(X);
  free(y);
  X = tu_read_doubles("svm_mc.h5", "/test/X", &n, &m);
  y = tu_read_ints("svm_mc.h5", "/test/y", NULL);
  assert_int_equal(n, 3);
  assert_true(X[0] == 100 && X[8] == 1 && X[m] == 200 && X[2 * m] == 300);
  assert_true(y[0] == 1 && y[1] == 2 && y[2] == 0);
  free(X);
  free(y);

  /* Standardised: train columns have mean 0; the test file uses the train statistics. */
  o.standardize = 1;
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  X = tu_read_doubles("svm_mc.h5", "/train/X", &n, &m);
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += X[i * m];
  assert_true(fabs(s) < 1e-12);
  double *T = tu_read_doubles("svm_mc.h5", "/test/X", NULL, NULL);
  /* Column 9 is zero in training (constant): test value 1 stays 1 - 0 = 1 (scale 1). */
  assert_true(T[8] == 1);
  free(X);
  free(T);
  remove("svm_mc.txt");
  remove("svm_mc_test.txt");
  remove("svm_mc.h5");
}

static void test_regression(void **state) {
  (void)state;
  assert_int_equal(tu_write_text("svm_reg.txt", "0.5 1:1\n-2.25 1:2\n3e2 1:3 2:1\n1 1:4\n7 1:5\n"
                                                "8 1:6\n9 1:7\n10.5 1:8\n"),
                   0);
  nhgd_import_libsvm_options o;
  options(&o, "svm_reg.txt", "svm_reg.h5");
  o.regression = 1;
  o.standardize = 0;
  o.test_fraction = 0;
  o.val_fraction = 0.25;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_libsvm(&o), 0);
  long long nc;
  assert_int_equal(tu_attr_int("svm_reg.h5", "n_classes", &nc), -1);
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type("svm_reg.h5", "/train/y", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 8);
  const double targets[8] = {0.5, -2.25, 300, 1, 7, 8, 9, 10.5};
  int64_t n, m;
  double *X = tu_read_doubles("svm_reg.h5", "/train/X", &n, &m);
  double *y = tu_read_doubles("svm_reg.h5", "/train/y", NULL, NULL);
  assert_int_equal(n, 6);
  assert_int_equal(m, 2);
  for (int64_t i = 0; i < n; ++i)
    assert_true(y[i] == targets[(int)X[i * m] - 1]);
  free(X);
  free(y);
  remove("svm_reg.txt");
  remove("svm_reg.h5");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_malformed_lines),
      cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_valid_classification),
      cmocka_unit_test(test_multiclass_with_test_file),
      cmocka_unit_test(test_regression),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
