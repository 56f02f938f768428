/* Unit tests of the IDX reader and of `import-idx` (valid and malformed files). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "data/testutil.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"

enum { N = 12, R = 4, C = 3, M = R * C, NT = 5 };

/* Image i has pixel 0 = 20 i (so each row names its image) and label i % 3. */
static uint8_t pixel(int i, int j) {
  return (uint8_t)(j == 0 ? 20 * i : (37 * i + 11 * j) % 256);
}

static void write_pair(const char *img, const char *lab, int gz, int n, int label_mod) {
  uint8_t pix[64 * M], labels[64];
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < M; ++j)
      pix[i * M + j] = pixel(i, j);
    labels[i] = (uint8_t)(i % label_mod);
  }
  const uint32_t d3[3] = {(uint32_t)n, R, C}, d1[1] = {(uint32_t)n};
  assert_int_equal(tu_write_idx(img, gz, 0x803, 3, d3, pix, (size_t)n * M), 0);
  assert_int_equal(tu_write_idx(lab, gz, 0x801, 1, d1, labels, (size_t)n), 0);
}

static void import_defaults(nhgd_import_idx_options *o, const char *img, const char *lab,
                            const char *out) {
  nhgd_import_idx_options_default(o);
  snprintf(o->images, sizeof o->images, "%s", img);
  snprintf(o->labels, sizeof o->labels, "%s", lab);
  snprintf(o->output, sizeof o->output, "%s", out);
}

static void test_defaults(void **state) {
  (void)state;
  nhgd_import_idx_options o;
  memset(&o, 0x5a, sizeof o);
  nhgd_import_idx_options_default(&o);
  assert_true(o.val_fraction == 0.2);
  assert_int_equal(o.standardize, 1);
  assert_int_equal(o.seed, 0);
  assert_string_equal(o.images, "");
  assert_string_equal(o.test_images, "");
}

/* Map every output row back to its image through pixel 0 and check pixels and labels. */
static void check_rows(const char *path, const char *split, int64_t expect_rows, int *seen) {
  char xp[32], yp[32];
  snprintf(xp, sizeof xp, "/%s/X", split);
  snprintf(yp, sizeof yp, "/%s/y", split);
  int64_t n, m, yn;
  double *X = tu_read_doubles(path, xp, &n, &m);
  int32_t *y = tu_read_ints(path, yp, &yn);
  assert_non_null(X);
  assert_non_null(y);
  assert_int_equal(n, expect_rows);
  assert_int_equal(m, M);
  assert_int_equal(yn, n);
  for (int64_t r = 0; r < n; ++r) {
    const int id = (int)lround(X[r * m] * 255.0) / 20;
    assert_true(id >= 0 && id < N);
    seen[id]++;
    assert_int_equal(y[r], id % 3);
    for (int j = 0; j < M; ++j)
      assert_true(fabs(X[r * m + j] - pixel(id, j) / 255.0) < 1e-6);
  }
  free(X);
  free(y);
}

/* Plain files, no standardisation: rows are pixel/255 of distinct images, split 9 / 3, X is
 * float32, n_classes = max label + 1. */
static void test_plain_import(void **state) {
  (void)state;
  write_pair("idx_plain_img", "idx_plain_lab", 0, N, 3);
  nhgd_import_idx_options o;
  import_defaults(&o, "idx_plain_img", "idx_plain_lab", "idx_plain.h5");
  o.val_fraction = 0.25;
  o.standardize = 0;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_idx(&o), 0);
  int seen[N] = {0};
  check_rows("idx_plain.h5", "train", 9, seen);
  check_rows("idx_plain.h5", "val", 3, seen);
  for (int i = 0; i < N; ++i)
    assert_int_equal(seen[i], 1);
  assert_false(tu_exists("idx_plain.h5", "/test"));
  long long v;
  assert_int_equal(tu_attr_int("idx_plain.h5", "n_classes", &v), 0);
  assert_int_equal(v, 3);
  assert_int_equal(tu_attr_int("idx_plain.h5", "format_version", &v), 0);
  assert_int_equal(v, 1);
  H5T_class_t cls;
  size_t sz;
  assert_int_equal(tu_dataset_type("idx_plain.h5", "/train/X", &cls, &sz), 0);
  assert_true(cls == H5T_FLOAT && sz == 4);
  assert_int_equal(tu_dataset_type("idx_plain.h5", "/train/y", &cls, &sz), 0);
  assert_true(cls == H5T_INTEGER && sz == 4);

  /* Another seed draws another split; the same seed the same one. */
  import_defaults(&o, "idx_plain_img", "idx_plain_lab", "idx_plain_s1.h5");
  o.val_fraction = 0.25;
  o.standardize = 0;
  o.seed = 1;
  assert_int_equal(nhgd_data_import_idx(&o), 0);
  double *a = tu_read_doubles("idx_plain.h5", "/train/X", NULL, NULL);
  double *b = tu_read_doubles("idx_plain_s1.h5", "/train/X", NULL, NULL);
  assert_true(memcmp(a, b, sizeof(double) * 9 * M) != 0);
  free(a);
  free(b);
  o.seed = 0;
  assert_int_equal(nhgd_data_import_idx(&o), 0);
  a = tu_read_doubles("idx_plain.h5", "/train/X", NULL, NULL);
  b = tu_read_doubles("idx_plain_s1.h5", "/train/X", NULL, NULL);
  assert_true(memcmp(a, b, sizeof(double) * 9 * M) == 0);
  free(a);
  free(b);
  remove("idx_plain.h5");
  remove("idx_plain_s1.h5");
  remove("idx_plain_img");
  remove("idx_plain_lab");
}

/* gzip files with a test pair and standardisation: train, val and test are mapped with the
 * mean and deviation of the train rows (checked against an import of the same split without
 * standardisation); train columns then have mean 0 and deviation 1. */
static void test_gz_import_standardized(void **state) {
  (void)state;
  write_pair("idx_gz_img.gz", "idx_gz_lab.gz", 1, N, 3);
  /* Test labels plain despite the .gz name: gzopen reads both. */
  write_pair("idx_gz_timg", "idx_gz_tlab.gz", 0, NT, 3);
  nhgd_import_idx_options o;
  import_defaults(&o, "idx_gz_img.gz", "idx_gz_lab.gz", "idx_gz.h5");
  snprintf(o.test_images, sizeof o.test_images, "idx_gz_timg");
  snprintf(o.test_labels, sizeof o.test_labels, "idx_gz_tlab.gz");
  o.val_fraction = 0.25;
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_idx(&o), 0);
  snprintf(o.output, sizeof o.output, "idx_gz_raw.h5");
  o.standardize = 0;
  assert_int_equal(nhgd_data_import_idx(&o), 0);

  const char *splits[3] = {"/train/X", "/val/X", "/test/X"};
  const int64_t rows[3] = {9, 3, NT};
  double *S[3], *Rw[3];
  for (int s = 0; s < 3; ++s) {
    int64_t n, m;
    S[s] = tu_read_doubles("idx_gz.h5", splits[s], &n, &m);
    Rw[s] = tu_read_doubles("idx_gz_raw.h5", splits[s], NULL, NULL);
    assert_non_null(S[s]);
    assert_non_null(Rw[s]);
    assert_int_equal(n, rows[s]);
    assert_int_equal(m, M);
  }
  int32_t *ty = tu_read_ints("idx_gz.h5", "/test/y", NULL);
  assert_non_null(ty);
  for (int r = 0; r < NT; ++r)
    assert_int_equal(ty[r], r % 3); /* test keeps file order */
  int seen[N] = {0};
  check_rows("idx_gz_raw.h5", "train", 9, seen);
  check_rows("idx_gz_raw.h5", "val", 3, seen);
  for (int j = 0; j < M; ++j) {
    double mean = 0, var = 0;
    for (int i = 0; i < 9; ++i)
      mean += Rw[0][i * M + j] / 9;
    for (int i = 0; i < 9; ++i)
      var += (Rw[0][i * M + j] - mean) * (Rw[0][i * M + j] - mean) / 9;
    const double sd = var > 1e-12 ? sqrt(var) : 1;
    for (int s = 0; s < 3; ++s)
      for (int64_t i = 0; i < rows[s]; ++i)
        assert_true(fabs(S[s][i * M + j] - (Rw[s][i * M + j] - mean) / sd) < 1e-5);
    double sm = 0, sv = 0;
    for (int i = 0; i < 9; ++i)
      sm += S[0][i * M + j] / 9;
    for (int i = 0; i < 9; ++i)
      sv += S[0][i * M + j] * S[0][i * M + j] / 9;
    assert_true(fabs(sm) < 1e-6);
    if (var > 1e-12) assert_true(fabs(sv - 1) < 1e-5);
  }
  for (int s = 0; s < 3; ++s) {
    free(S[s]);
    free(Rw[s]);
  }
  free(ty);
  const char *files[] = {"idx_gz.h5",     "idx_gz_raw.h5", "idx_gz_img.gz",
                         "idx_gz_lab.gz", "idx_gz_timg",   "idx_gz_tlab.gz"};
  for (size_t i = 0; i < sizeof files / sizeof *files; ++i)
    remove(files[i]);
}

/* Run import-idx expecting failure with each phrase in the message and no output file. */
static void expect_import_error(const nhgd_import_idx_options *o, int code, const char *p1,
                                const char *p2) {
  remove(o->output);
  nhgd_error_clear();
  assert_int_equal(nhgd_data_import_idx(o), code);
  fprintf(stderr, "  expected error: %s\n", nhgd_error_message());
  assert_true(tu_contains(nhgd_error_message(), p1));
  if (p2) assert_true(tu_contains(nhgd_error_message(), p2));
  assert_int_equal(tu_file_size(o->output), -1);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", o->output);
  assert_int_equal(tu_file_size(tmp), -1);
}

static void test_bad_magic(void **state) {
  (void)state;
  write_pair("idx_magic_img", "idx_magic_lab", 0, N, 3);
  nhgd_import_idx_options o;
  /* Labels given as images: magic 0x801 where 0x803 is expected. */
  import_defaults(&o, "idx_magic_lab", "idx_magic_lab", "idx_magic.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_magic_lab: bad IDX magic number 0x00000801: expected 0x00000803", NULL);
  /* A magic that is not IDX at all, and one with another element type (0x0d: float). */
  const uint8_t junk[16] = {0x12, 0x34, 0x56, 0x78};
  assert_int_equal(tu_write_bytes("idx_magic_junk", junk, sizeof junk, 0), 0);
  import_defaults(&o, "idx_magic_junk", "idx_magic_lab", "idx_magic.h5");
  expect_import_error(&o, NHGD_ERR_DATA, "idx_magic_junk: bad IDX magic number 0x12345678", NULL);
  const uint32_t d3[3] = {N, R, C};
  assert_int_equal(tu_write_idx("idx_magic_float", 0, 0xd03, 3, d3, junk, 0), 0);
  import_defaults(&o, "idx_magic_float", "idx_magic_lab", "idx_magic.h5");
  expect_import_error(&o, NHGD_ERR_DATA, "idx_magic_float: bad IDX magic number 0x00000d03", NULL);
  /* Too short for a magic number. */
  assert_int_equal(tu_write_bytes("idx_magic_short", junk, 2, 0), 0);
  import_defaults(&o, "idx_magic_short", "idx_magic_lab", "idx_magic.h5");
  expect_import_error(&o, NHGD_ERR_DATA, "idx_magic_short: not an IDX file (only 2 bytes)", NULL);
  remove("idx_magic_img");
  remove("idx_magic_lab");
  remove("idx_magic_junk");
  remove("idx_magic_float");
  remove("idx_magic_short");
}

static void test_truncated(void **state) {
  (void)state;
  write_pair("idx_trunc_img", "idx_trunc_lab", 0, N, 3);
  uint8_t pix[N * M];
  memset(pix, 7, sizeof pix);
  const uint32_t d3[3] = {N, R, C};
  nhgd_import_idx_options o;
  /* Header promises 16 + 144 bytes; the plain file holds 16 + 100, the gzip one 16 + 50. */
  assert_int_equal(tu_write_idx("idx_trunc_short", 0, 0x803, 3, d3, pix, 100), 0);
  import_defaults(&o, "idx_trunc_short", "idx_trunc_lab", "idx_trunc.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_trunc_short: truncated: expected 160 bytes (header 12 x 4 x 3) but the "
                      "file holds 116",
                      NULL);
  assert_int_equal(tu_write_idx("idx_trunc_short.gz", 1, 0x803, 3, d3, pix, 50), 0);
  import_defaults(&o, "idx_trunc_short.gz", "idx_trunc_lab", "idx_trunc.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_trunc_short.gz: truncated: expected 160 uncompressed bytes", "holds 66");
  /* A gzip file cut in the middle of its stream (incompressible data, so that the cut falls
   * after the header). */
  uint8_t noise[N * M];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof noise; ++i)
    noise[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
  assert_int_equal(tu_write_idx("idx_trunc_cut.gz", 1, 0x803, 3, d3, noise, sizeof noise), 0);
  const long long sz = tu_file_size("idx_trunc_cut.gz");
  FILE *f = fopen("idx_trunc_cut.gz", "rb");
  uint8_t buf[4096];
  const size_t got = fread(buf, 1, sizeof buf, f);
  fclose(f);
  assert_true(got == (size_t)sz);
  assert_int_equal(tu_write_bytes("idx_trunc_cut.gz", buf, (size_t)sz / 2, 0), 0);
  import_defaults(&o, "idx_trunc_cut.gz", "idx_trunc_lab", "idx_trunc.h5");
  expect_import_error(&o, NHGD_ERR_DATA, "idx_trunc_cut.gz: truncated",
                      "expected 160 uncompressed bytes");
  /* The header itself cut short. */
  assert_int_equal(tu_write_bytes("idx_trunc_head", "\0\0\x08\x03\0\0\0\x0c\0\0", 10, 0), 0);
  import_defaults(&o, "idx_trunc_head", "idx_trunc_lab", "idx_trunc.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_trunc_head: truncated: the IDX header needs 16 bytes, found 10", NULL);
  /* More bytes than promised. */
  uint8_t more[N * M + 3];
  memset(more, 1, sizeof more);
  assert_int_equal(tu_write_idx("idx_trunc_long", 0, 0x803, 3, d3, more, sizeof more), 0);
  import_defaults(&o, "idx_trunc_long", "idx_trunc_lab", "idx_trunc.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_trunc_long: expected 160 bytes (header 12 x 4 x 3) but the file holds "
                      "163 (trailing data)",
                      NULL);
  const char *files[] = {"idx_trunc_img",      "idx_trunc_lab",    "idx_trunc_short",
                         "idx_trunc_short.gz", "idx_trunc_cut.gz", "idx_trunc_head",
                         "idx_trunc_long"};
  for (size_t i = 0; i < sizeof files / sizeof *files; ++i)
    remove(files[i]);
}

static void test_other_errors(void **state) {
  (void)state;
  write_pair("idx_err_img", "idx_err_lab", 0, N, 3);
  write_pair("idx_err_img11", "idx_err_lab11", 0, N - 1, 3);
  write_pair("idx_err_img1c", "idx_err_lab1c", 0, N, 1);
  nhgd_import_idx_options o;
  /* Count mismatch between images and labels. */
  import_defaults(&o, "idx_err_img", "idx_err_lab11", "idx_err.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_err_img has 12 images but idx_err_lab11 has 11 labels", NULL);
  /* A single class. */
  import_defaults(&o, "idx_err_img1c", "idx_err_lab1c", "idx_err.h5");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_err_lab1c: every label is 0; classification needs at least 2 classes",
                      NULL);
  /* Missing file. */
  import_defaults(&o, "idx_err_nothere", "idx_err_lab", "idx_err.h5");
  expect_import_error(&o, NHGD_ERR_IO, "idx_err_nothere: cannot open: No such file or directory",
                      NULL);
  /* Only one of the test pair. */
  import_defaults(&o, "idx_err_img", "idx_err_lab", "idx_err.h5");
  snprintf(o.test_images, sizeof o.test_images, "idx_err_img");
  expect_import_error(&o, NHGD_ERR_ARG, "test images given without test labels", NULL);
  import_defaults(&o, "idx_err_img", "idx_err_lab", "idx_err.h5");
  snprintf(o.test_labels, sizeof o.test_labels, "idx_err_lab");
  expect_import_error(&o, NHGD_ERR_ARG, "test labels given without test images", NULL);
  /* Test labels outside the training classes (training has 1 class... use 2-class train). */
  write_pair("idx_err_img2c", "idx_err_lab2c", 0, N, 2);
  import_defaults(&o, "idx_err_img2c", "idx_err_lab2c", "idx_err.h5");
  snprintf(o.test_images, sizeof o.test_images, "idx_err_img");
  snprintf(o.test_labels, sizeof o.test_labels, "idx_err_lab");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_err_lab: label 2 of item 2 is not among the training classes 0..1",
                      NULL);
  /* Test images of another size. */
  uint8_t pix[N * 6] = {0};
  const uint32_t d3[3] = {N, 2, 3};
  assert_int_equal(tu_write_idx("idx_err_img23", 0, 0x803, 3, d3, pix, sizeof pix), 0);
  import_defaults(&o, "idx_err_img", "idx_err_lab", "idx_err.h5");
  snprintf(o.test_images, sizeof o.test_images, "idx_err_img23");
  snprintf(o.test_labels, sizeof o.test_labels, "idx_err_lab");
  expect_import_error(&o, NHGD_ERR_DATA,
                      "idx_err_img23: images are 2 x 3 but those of idx_err_img "
                      "are 4 x 3",
                      NULL);
  /* val_fraction out of range, and too small to give a validation row. */
  import_defaults(&o, "idx_err_img", "idx_err_lab", "idx_err.h5");
  o.val_fraction = 1;
  expect_import_error(&o, NHGD_ERR_ARG, "val_fraction = 1 must be in (0, 1)", NULL);
  o.val_fraction = 0.01;
  expect_import_error(&o, NHGD_ERR_DATA, "12 images are too few to split with val_fraction 0.01",
                      NULL);
  /* Required files. */
  import_defaults(&o, "", "idx_err_lab", "idx_err.h5");
  expect_import_error(&o, NHGD_ERR_ARG, "both an images file and a labels file are required", NULL);
  const char *files[] = {"idx_err_img",   "idx_err_lab",   "idx_err_img11",
                         "idx_err_lab11", "idx_err_img1c", "idx_err_lab1c",
                         "idx_err_img2c", "idx_err_lab2c", "idx_err_img23"};
  for (size_t i = 0; i < sizeof files / sizeof *files; ++i)
    remove(files[i]);
}

/* The reader itself: dimensions and data of a valid pair. */
static void test_reader(void **state) {
  (void)state;
  write_pair("idx_rd_img.gz", "idx_rd_lab", 1, N, 3);
  nhgd_idx img, lab;
  nhgd_error_clear();
  assert_int_equal(nhgd_idx_read_pair("idx_rd_img.gz", "idx_rd_lab", &img, &lab), 0);
  assert_int_equal(img.ndim, 3);
  assert_int_equal(img.dims[0], N);
  assert_int_equal(img.dims[1], R);
  assert_int_equal(img.dims[2], C);
  assert_int_equal(lab.ndim, 1);
  assert_int_equal(lab.dims[0], N);
  for (int i = 0; i < N; ++i) {
    assert_int_equal(lab.data[i], i % 3);
    for (int j = 0; j < M; ++j)
      assert_int_equal(img.data[i * M + j], pixel(i, j));
  }
  int nc = 0;
  assert_int_equal(nhgd_idx_classes(&lab, "idx_rd_lab", &nc), 0);
  assert_int_equal(nc, 3);
  nhgd_idx_free(&img);
  nhgd_idx_free(&lab);
  assert_null(img.data);
  remove("idx_rd_img.gz");
  remove("idx_rd_lab");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),     cmocka_unit_test(test_reader),
      cmocka_unit_test(test_plain_import), cmocka_unit_test(test_gz_import_standardized),
      cmocka_unit_test(test_bad_magic),    cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_other_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
