/* Tests of the Fashion-MNIST hyper-cleaning writer on the real dataset and on fake IDX files. */
/* A small file from Debian's dataset-fashion-mnist has the right shapes, corruption rate and
 * standardisation and is reproducible from its seed; option and input errors are reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/testutil.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"

static const char *const dataset_dir = "/usr/share/datasets/fashion-mnist";

static void test_defaults(void **state) {
  (void)state;
  nhgd_fmnist_options o;
  memset(&o, 0x5a, sizeof o);
  nhgd_fmnist_options_default(&o);
  assert_string_equal(o.dir, dataset_dir);
  assert_string_equal(o.output, "fashion_mnist.h5");
  assert_int_equal(o.n_train, 20000);
  assert_int_equal(o.n_val, 5000);
  assert_true(o.corruption == 0.5);
  assert_int_equal(o.seed, 0);
  assert_int_equal(o.standardize, 1);
}

static void build(const char *output, uint64_t seed) {
  nhgd_fmnist_options o;
  nhgd_fmnist_options_default(&o);
  snprintf(o.output, sizeof o.output, "%s", output);
  o.n_train = 2000;
  o.n_val = 500;
  o.seed = seed;
  nhgd_error_clear();
  const int rc = nhgd_data_fashion_mnist(&o);
  if (rc) fprintf(stderr, "%s\n", nhgd_error_message());
  assert_int_equal(rc, 0);
}

/* Content of every dataset of two files is identical (1) or not (0). */
static int same_content(const char *a, const char *b) {
  static const char *const sets[] = {"/train/X", "/train/y", "/train/y_clean", "/train/corrupted",
                                     "/val/X",   "/val/y",   "/test/X",        "/test/y"};
  int same = 1;
  for (size_t k = 0; k < sizeof sets / sizeof *sets; ++k) {
    int64_t na, ma, nb, mb;
    double *x = tu_read_doubles(a, sets[k], &na, &ma), *y = tu_read_doubles(b, sets[k], &nb, &mb);
    assert_non_null(x);
    assert_non_null(y);
    if (na != nb || ma != mb || memcmp(x, y, sizeof(double) * (size_t)(na * ma)) != 0) same = 0;
    free(x);
    free(y);
  }
  return same;
}

static void test_small_file(void **state) {
  (void)state;
  if (access(dataset_dir, R_OK) != 0) {
    fprintf(stderr, "%s missing (install dataset-fashion-mnist)\n", dataset_dir);
    fail();
  }
  build("fmnist_a.h5", 0);
  const char *f = "fmnist_a.h5";
  int64_t n, m, nv, mv, nt, mt, ny, nc, ncor, nvy, nty;
  double *X = tu_read_doubles(f, "/train/X", &n, &m);
  double *V = tu_read_doubles(f, "/val/X", &nv, &mv);
  double *T = tu_read_doubles(f, "/test/X", &nt, &mt);
  int32_t *y = tu_read_ints(f, "/train/y", &ny);
  int32_t *yc = tu_read_ints(f, "/train/y_clean", &nc);
  int32_t *cor = tu_read_ints(f, "/train/corrupted", &ncor);
  int32_t *vy = tu_read_ints(f, "/val/y", &nvy);
  int32_t *ty = tu_read_ints(f, "/test/y", &nty);
  assert_non_null(X);
  assert_non_null(V);
  assert_non_null(T);
  assert_non_null(y);
  assert_non_null(yc);
  assert_non_null(cor);
  assert_non_null(vy);
  assert_non_null(ty);
  /* Shapes. */
  assert_int_equal(n, 2000);
  assert_int_equal(m, 784);
  assert_int_equal(nv, 500);
  assert_int_equal(mv, 784);
  assert_int_equal(nt, 10000);
  assert_int_equal(mt, 784);
  assert_int_equal(ny, 2000);
  assert_int_equal(nc, 2000);
  assert_int_equal(ncor, 2000);
  assert_int_equal(nvy, 500);
  assert_int_equal(nty, 10000);
  long long v;
  assert_int_equal(tu_attr_int(f, "n_classes", &v), 0);
  assert_int_equal(v, 10);
  assert_int_equal(tu_attr_int(f, "format_version", &v), 0);
  assert_int_equal(v, 1);
  double corruption;
  assert_int_equal(tu_attr_double(f, "corruption", &corruption), 0);
  assert_true(corruption == 0.5);
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type(f, "/train/X", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 4);

  /* Corruption: a redraw keeps the true label 1/10 of the time, so about 0.5 * 0.9 of the
   * labels differ from y_clean; every changed label is marked as corrupted. */
  int64_t changed = 0, marked = 0, counts[10] = {0};
  for (int64_t i = 0; i < n; ++i) {
    assert_true(y[i] >= 0 && y[i] < 10 && yc[i] >= 0 && yc[i] < 10);
    assert_true(cor[i] == 0 || cor[i] == 1);
    if (y[i] != yc[i]) {
      ++changed;
      assert_int_equal(cor[i], 1);
    }
    marked += cor[i];
    counts[yc[i]]++;
  }
  const double frac = (double)changed / (double)n;
  fprintf(stderr, "changed labels: %.4f, redrawn: %.4f\n", frac, (double)marked / (double)n);
  assert_true(fabs(frac - 0.45) <= 0.03);
  assert_true(fabs((double)marked / (double)n - 0.5) <= 0.035);
  for (int k = 0; k < 10; ++k)
    assert_true(counts[k] > 100); /* a random, balanced sample */
  for (int64_t i = 0; i < nv; ++i)
    assert_true(vy[i] >= 0 && vy[i] < 10);

  /* Standardised with the train statistics: train columns have mean 0 and deviation 1
   * (float32 storage), constant columns are 0. Val and test are near, not exactly, 0/1. */
  int64_t constant = 0;
  double val_mean = 0;
  for (int64_t j = 0; j < m; ++j) {
    double s = 0, ss = 0, vmin = INFINITY, vmax = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      const double x = X[i * m + j];
      s += x;
      ss += x * x;
      if (x < vmin) vmin = x;
      if (x > vmax) vmax = x;
    }
    const double mean = s / (double)n, sd = sqrt(ss / (double)n - mean * mean);
    assert_true(fabs(mean) < 1e-5);
    if (vmax > vmin) {
      assert_true(fabs(sd - 1) < 1e-4);
    } else {
      ++constant;
      assert_true(vmin == 0);
    }
    double vs = 0;
    for (int64_t i = 0; i < nv; ++i)
      vs += V[i * m + j];
    val_mean += fabs(vs / (double)nv) / (double)m;
  }
  fprintf(stderr, "constant train columns: %lld, mean |val column mean|: %.4f\n",
          (long long)constant, val_mean);
  assert_true(val_mean < 0.15);
  double tsum = 0;
  for (int64_t k = 0; k < nt * mt; ++k)
    tsum += T[k];
  assert_true(fabs(tsum / (double)(nt * mt)) < 0.1);
  free(X);
  free(V);
  free(T);
  free(y);
  free(yc);
  free(cor);
  free(vy);
  free(ty);

  /* Same seed: identical content and bytes. Another seed: different rows and labels. */
  build("fmnist_b.h5", 0);
  assert_true(same_content("fmnist_a.h5", "fmnist_b.h5"));
  assert_true(tu_same_bytes("fmnist_a.h5", "fmnist_b.h5"));
  build("fmnist_c.h5", 1);
  assert_false(same_content("fmnist_a.h5", "fmnist_c.h5"));
  int32_t *ya = tu_read_ints("fmnist_a.h5", "/train/y", NULL);
  int32_t *yb = tu_read_ints("fmnist_c.h5", "/train/y", NULL);
  assert_true(memcmp(ya, yb, sizeof(int32_t) * 2000) != 0);
  free(ya);
  free(yb);
  remove("fmnist_a.h5");
  remove("fmnist_b.h5");
  remove("fmnist_c.h5");
}

/* Fake dataset directory of tiny IDX files: 12 training and 4 test images of 2 x 2. */
static void make_fake_dir(const char *dir, int gz) {
  mkdir(dir, 0755);
  char p[256];
  uint8_t pix[12 * 4], lab[12];
  for (int i = 0; i < 48; ++i)
    pix[i] = (uint8_t)(i * 5);
  for (int i = 0; i < 12; ++i)
    lab[i] = (uint8_t)(i % 10);
  const uint32_t d3[3] = {12, 2, 2}, d1[1] = {12}, t3[3] = {4, 2, 2}, t1[1] = {4};
  const char *ext = gz ? ".gz" : "";
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, ext);
  assert_int_equal(tu_write_idx(p, gz, 0x803, 3, d3, pix, sizeof pix), 0);
  snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte%s", dir, ext);
  assert_int_equal(tu_write_idx(p, gz, 0x801, 1, d1, lab, sizeof lab), 0);
  snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte%s", dir, ext);
  assert_int_equal(tu_write_idx(p, gz, 0x803, 3, t3, pix, 16), 0);
  snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte%s", dir, ext);
  assert_int_equal(tu_write_idx(p, gz, 0x801, 1, t1, lab, 4), 0);
}

static void remove_fake_dir(const char *dir) {
  static const char *const names[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                      "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  char p[256];
  for (int i = 0; i < 4; ++i) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    remove(p);
    snprintf(p, sizeof p, "%s/%s.gz", dir, names[i]);
    remove(p);
  }
  rmdir(dir);
}

static void expect_error(const nhgd_fmnist_options *o, int code, const char *phrase) {
  remove(o->output);
  nhgd_error_clear();
  assert_int_equal(nhgd_data_fashion_mnist(o), code);
  fprintf(stderr, "  expected error: %s\n", nhgd_error_message());
  assert_true(tu_contains(nhgd_error_message(), phrase));
  assert_int_equal(tu_file_size(o->output), -1);
}

static void test_errors_and_fake_dir(void **state) {
  (void)state;
  make_fake_dir("fmnist_fake", 0);
  nhgd_fmnist_options o;
  nhgd_fmnist_options_default(&o);
  snprintf(o.dir, sizeof o.dir, "fmnist_fake");
  snprintf(o.output, sizeof o.output, "fmnist_fake.h5");
  o.n_train = 8;
  o.n_val = 4;
  /* A valid run on plain files: all 12 images used, corruption 1 redraws every label. */
  o.corruption = 1;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_fashion_mnist(&o), 0);
  int64_t n, m, nt;
  double *X = tu_read_doubles("fmnist_fake.h5", "/train/X", &n, &m);
  int32_t *cor = tu_read_ints("fmnist_fake.h5", "/train/corrupted", NULL);
  double *T = tu_read_doubles("fmnist_fake.h5", "/test/X", &nt, NULL);
  assert_int_equal(n, 8);
  assert_int_equal(m, 4);
  assert_int_equal(nt, 4);
  for (int i = 0; i < 8; ++i)
    assert_int_equal(cor[i], 1);
  free(X);
  free(cor);
  free(T);
  remove("fmnist_fake.h5");

  o.corruption = 1.5;
  expect_error(&o, NHGD_ERR_ARG, "corruption = 1.5 must be in [0, 1]");
  o.corruption = NAN;
  expect_error(&o, NHGD_ERR_ARG, "must be in [0, 1]");
  o.corruption = 0.5;
  o.n_val = 0;
  expect_error(&o, NHGD_ERR_ARG, "n_train = 8 and n_val = 0 must both be >= 1");
  o.n_val = 5;
  expect_error(&o, NHGD_ERR_ARG,
               "n_train + n_val = 13 exceeds the 12 training images in "
               "fmnist_fake/train-images-idx3-ubyte");
  o.n_val = 4;
  snprintf(o.dir, sizeof o.dir, "fmnist_nothere");
  expect_error(&o, NHGD_ERR_IO,
               "fmnist_nothere: neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz");
  /* A damaged file inside the folder is named. */
  snprintf(o.dir, sizeof o.dir, "fmnist_fake");
  assert_int_equal(
      tu_write_bytes("fmnist_fake/t10k-labels-idx1-ubyte", "\0\0\x08\x01\0\0\0\x04\1", 9, 0), 0);
  expect_error(&o, NHGD_ERR_DATA,
               "fmnist_fake/t10k-labels-idx1-ubyte: truncated: expected 12 bytes (header 4) but "
               "the file holds 9");
  remove_fake_dir("fmnist_fake");
  make_fake_dir("fmnist_fake", 1);
  nhgd_error_clear();
  assert_int_equal(nhgd_data_fashion_mnist(&o), 0); /* the .gz files are found */
  remove("fmnist_fake.h5");
  remove_fake_dir("fmnist_fake");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_errors_and_fake_dir),
      cmocka_unit_test(test_small_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
