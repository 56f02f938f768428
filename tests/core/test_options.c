/* Options: defaults, precedence file < environment < argv, rejection of bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "nhgd/errors.h"
#include "nhgd/options.h"

/* The options of `nhgd run`: the library's, and the program's own (what cli/main.c adds). */
typedef struct {
  char data[NHGD_PATH_MAX], output[NHGD_PATH_MAX], metrics[NHGD_PATH_MAX];
} program_opts;
static const nhgd_option_spec program_specs[] = {
    {"data", NHGD_OPT_STR, offsetof(program_opts, data), NHGD_PATH_MAX, "in.h5", 1, 0, NULL,
     "input", 0},
    {"output", NHGD_OPT_STR, offsetof(program_opts, output), NHGD_PATH_MAX, "out.h5", 1, 0, NULL,
     "output", 0},
    {"metrics", NHGD_OPT_STR, offsetof(program_opts, metrics), NHGD_PATH_MAX, "", 1, 0, NULL,
     "metrics", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
static const nhgd_option_block program_block = {"program", program_specs, sizeof(program_opts),
                                                NULL, NULL};

/* The values the tests look at. */
typedef struct {
  char problem[32];
  int64_t batch, warm_start, seed;
  double inner_lr;
} view;

static int parse(view *v, int argc, char **argv) {
  nhgd_options *o;
  nhgd_error_clear();
  int rc = nhgd_options_create_run(&o);
  if (!rc) rc = nhgd_options_add_block(o, &program_block);
  int help = 0;
  if (!rc) rc = nhgd_options_parse(o, argc, argv, "NHGD_", &help);
  if (!rc) rc = nhgd_options_validate(o);
  if (!rc) {
    const char *p;
    nhgd_options_get_string(o, "problem", &p);
    snprintf(v->problem, sizeof v->problem, "%s", p);
    nhgd_options_get_int(o, "batch", &v->batch);
    nhgd_options_get_int(o, "warm-start", &v->warm_start);
    nhgd_options_get_int(o, "seed", &v->seed);
    nhgd_options_get_real(o, "inner-lr", &v->inner_lr);
  }
  nhgd_options_destroy(&o);
  return rc;
}

static void defaults_are_valid(void **state) {
  view o;
  assert_int_equal(parse(&o, 0, NULL), 0);
  assert_string_equal(o.problem, "hyperclean");
  assert_int_equal(o.batch, 256);
  assert_int_equal(o.warm_start, 1);
}

static void precedence(void **state) {
  const char *path = "test_options.cfg";
  FILE *f = fopen(path, "w");
  fprintf(f, "# a comment\nbatch = 64\ninner-lr 0.5\n--outer-steps=3\n\nseed = 9  # trailing\n");
  fclose(f);
  setenv("NHGD_INNER_LR", "0.25", 1);
  char *argv[] = {"--config", (char *)path, "--seed", "11", "--problem=ridge"};
  view o;
  assert_int_equal(parse(&o, 5, argv), 0);
  assert_int_equal(o.batch, 64);   /* file */
  assert_true(o.inner_lr == 0.25); /* environment beats file */
  assert_int_equal(o.seed, 11);    /* command line beats file */
  assert_string_equal(o.problem, "ridge");
  unsetenv("NHGD_INNER_LR");
  remove(path);
}

static void expect_error(int argc, char **argv, const char *phrase) {
  view o;
  int rc = parse(&o, argc, argv);
  assert_int_equal(rc, NHGD_ERR_ARG);
  if (!strstr(nhgd_error_message(), phrase))
    fail_msg("message '%s' lacks '%s'", nhgd_error_message(), phrase);
}

static void rejects_bad_input(void **state) {
  char *a1[] = {"--no-such-option", "1"};
  expect_error(2, a1, "unknown option --no-such-option");
  char *a2[] = {"--batch", "-1"};
  expect_error(2, a2, "outside the range");
  char *a3[] = {"--batch", "12x"};
  expect_error(2, a3, "not an integer");
  char *a4[] = {"--inner-lr", "nan"};
  expect_error(2, a4, "not a finite number");
  char *a5[] = {"--problem", "lasso"};
  expect_error(2, a5, "not one of ridge|logreg|hyperclean");
  char *a6[] = {"--warm-start", "maybe"};
  expect_error(2, a6, "not a boolean");
  char *a7[] = {"--seed"};
  expect_error(1, a7, "needs a value");
  char *a8[] = {"stray"};
  expect_error(1, a8, "unexpected argument");
  char *a9[] = {"--seed", "-3"};
  expect_error(2, a9, "must be non-negative");
  /* Open ends are printed open, integer bounds exactly. */
  char *a12[] = {"--adam-beta2", "1"};
  expect_error(2, a12, "value 1 is outside the range [0, 1)");
  char *a13[] = {"--grid-rows", "1048577"};
  expect_error(2, a13, "value 1048577 is outside the range [0, 1048576]");
  char *a10[] = {"--config", "/nonexistent/file.cfg"};
  view o;
  assert_int_equal(parse(&o, 2, a10), NHGD_ERR_IO);
  FILE *f = fopen("bad.cfg", "w");
  fprintf(f, "batch = 4\nbogus = 1\n");
  fclose(f);
  char *a11[] = {"--config", "bad.cfg"};
  expect_error(2, a11, "bad.cfg line 2");
  remove("bad.cfg");
}

/* Given options that the run does not read are named, with what they apply to. */
static int unused(int argc, char **argv) {
  nhgd_options *o;
  assert_int_equal(nhgd_options_create_run(&o), 0);
  int help = 0;
  assert_int_equal(nhgd_options_parse(o, argc, argv, NULL, &help), 0);
  const int n = nhgd_options_warn_unused(o);
  nhgd_options_destroy(&o);
  return n;
}

static void warns_about_unused_options(void **state) {
  assert_int_equal(unused(0, NULL), 0);
  char *a1[] = {"--problem", "ridge", "--hidden", "abc"};
  assert_int_equal(unused(4, a1), 1);
  char *a2[] = {"--problem", "mlp-hpo", "--hidden", "8"};
  assert_int_equal(unused(4, a2), 0);
  char *a3[] = {"--problem", "distill", "--hidden", "8", "--distill-model", "linear"};
  assert_int_equal(unused(6, a3), 1);
  char *a4[] = {"--problem", "distill", "--hidden", "8", "--distill-model", "mlp"};
  assert_int_equal(unused(6, a4), 0);
  char *a5[] = {"--soba-rho", "0.1", "--hvp-steps", "3", "--efim-damping", "1"};
  assert_int_equal(unused(6, a5), 2); /* nhgd reads --efim-damping only */
  char *a6[] = {"--estimator", "cg", "--hvp-steps", "3"};
  assert_int_equal(unused(4, a6), 0);
  char *a7[] = {"--outer-opt", "sgd", "--adam-beta1", "0.5"};
  assert_int_equal(unused(4, a7), 1);
  char *a8[] = {"--outer-opt", "lazy-adam", "--adam-beta1", "0.5", "--adam-eps", "1e-6"};
  assert_int_equal(unused(6, a8), 0); /* lazy Adam reads Adam's constants */
}

static void help_lists_every_option(void **state) {
  char buf[65536];
  FILE *f = fmemopen(buf, sizeof buf, "w");
  nhgd_options *o;
  assert_int_equal(nhgd_options_create_run(&o), 0);
  assert_int_equal(nhgd_options_add_block(o, &program_block), 0);
  nhgd_options_help(o, f);
  nhgd_options_destroy(&o);
  fclose(f);
  const char *names[] = {"--data",     "--problem", "--estimator",  "--outer-steps", "--batch",
                         "--inner-lr", "--seed",    "--block-size", "--metrics",     "--v-from"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    assert_non_null(strstr(buf, names[i]));
  assert_non_null(strstr(buf, "(default: 256)"));
}

/* Known answers. The all-zero draw is Random123's own known answer for philox4x64-10 (its
 * kat_vectors); the others come from tests/tools/philox_ref.py, an implementation of
 * Philox4x64-10 and of nhgd's use of it (key {seed, stream}, counter {a, b, c, 0}; uniform
 * (w0 >> 11) 2^-53; below and normal) written independently of src/core/rng.c and checked
 * against Random123's three philox4x64-10 known answers. A change of the generator, of how
 * (seed, stream, a, b, c) map to key and counter, or of the mapping to [0, 1) changes every
 * trajectory and every checkpoint: it must show up here. */
static void rng_known_answers(void **state) {
  uint64_t w[4];
  nhgd_rng4(0, 0, 0, 0, 0, w);
  assert_true(w[0] == 0x16554d9eca36314cULL && w[1] == 0xdb20fe9d672d0fdcULL &&
              w[2] == 0xd7e772cee186176bULL && w[3] == 0x7e68b68aec7ba23bULL);
  nhgd_rng4(1, 2, 3, 4, 5, w);
  assert_true(w[0] == 0x3f285085eb60e36dULL && w[1] == 0x3e8da5f8546343c3ULL &&
              w[2] == 0x0a3796088753afafULL && w[3] == 0x19f57f8c20249119ULL);
  /* Exact: 53 bits of w0 times 2^-53. */
  assert_true(nhgd_rng_uniform(1, 2, 3, 4, 5) == 0x1.f942842f5b070p-3); /* 0.24670890111463306 */
  assert_true(nhgd_rng_uniform(2, 2, 3, 4, 5) == 0x1.04d8e77cc803bp-1); /* 0.5094673480816775 */
  assert_true(nhgd_rng_uniform(0, 0, 0, 0, 0) == 0x1.6554d9eca3630p-4); /* 0.08723912359911234 */
  const uint64_t below[8] = {3, 6, 4, 6, 8, 2, 4, 9};
  for (uint64_t i = 0; i < 8; ++i)
    assert_int_equal(nhgd_rng_below(3, 1, i, 0, 0, 10), below[i]);
  assert_int_equal(nhgd_rng_below(9, 6, 1, 2, 3, 1000003), 257404);
  /* log, sqrt and cos of the C library: to a few units in the last place. */
  assert_true(fabs(nhgd_rng_normal(3, 2, 0, 0, 0) - 0.1487679115276609) < 1e-15);
  assert_true(fabs(nhgd_rng_normal(7, 9, 1, 2, 0) - -0.6396682994007702) < 1e-15);
}

static void rng_is_deterministic_and_uniform(void **state) {
  assert_true(nhgd_rng_uniform(1, 2, 3, 4, 5) != nhgd_rng_uniform(2, 2, 3, 4, 5));
  int counts[10] = {0};
  for (uint64_t i = 0; i < 100000; ++i)
    counts[nhgd_rng_below(3, 1, i, 0, 0, 10)]++;
  for (int b = 0; b < 10; ++b)
    assert_in_range(counts[b], 9500, 10500);
  double s = 0, s2 = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    double z = nhgd_rng_normal(3, 2, i, 0, 0);
    s += z;
    s2 += z * z;
  }
  assert_true(s / 1e5 > -0.02 && s / 1e5 < 0.02);
  assert_true(s2 / 1e5 > 0.97 && s2 / 1e5 < 1.03);
  int64_t perm[1000];
  int seen[1000] = {0};
  nhgd_rng_permutation(5, 3, 0, 1000, perm);
  for (int i = 0; i < 1000; ++i)
    seen[perm[i]]++;
  for (int i = 0; i < 1000; ++i)
    assert_int_equal(seen[i], 1);
}

/* An option is at its default when its value reads the same as the default's, however given. */
static void knows_its_defaults(void **state) {
  nhgd_options *o;
  assert_int_equal(nhgd_options_create_run(&o), 0);
  int at = -1;
  assert_int_equal(nhgd_options_is_default(o, "val-batch", &at), 0);
  assert_int_equal(at, 1);
  assert_int_equal(nhgd_options_set(o, "outer-lr", "0.10", "test"), 0); /* the default, 0.1 */
  assert_int_equal(nhgd_options_is_default(o, "outer-lr", &at), 0);
  assert_int_equal(at, 1);
  assert_int_equal(nhgd_options_set(o, "val-batch", "7", "test"), 0);
  assert_int_equal(nhgd_options_is_default(o, "val-batch", &at), 0);
  assert_int_equal(at, 0);
  assert_int_equal(nhgd_options_set(o, "estimator", "soba", "test"), 0);
  assert_int_equal(nhgd_options_is_default(o, "estimator", &at), 0);
  assert_int_equal(at, 0);
  assert_int_equal(nhgd_options_is_default(o, "no-such-option", &at), NHGD_ERR_ARG);
  nhgd_error_clear();
  nhgd_options_destroy(&o);
}

/* Floyd's draw of K of n: K distinct rows in ascending order, a pure function of its key,
 * every K-subset equally likely, all rows when K = n, and no memory in n. */
static void rng_sample_without_replacement(void **state) {
  int64_t table[64], out[16], again[16];
  assert_true(nhgd_rng_sample_table(16) <= 64);
  nhgd_rng_sample(4, 8, 2, 16, 16, table, out);
  for (int64_t i = 0; i < 16; ++i)
    assert_int_equal(out[i], i);
  nhgd_rng_sample(4, 8, 2, 1000000000000, 16, table, out);
  nhgd_rng_sample(4, 8, 2, 1000000000000, 16, table, again);
  for (int i = 0; i < 16; ++i) {
    assert_int_equal(out[i], again[i]);
    assert_true(out[i] >= 0 && out[i] < 1000000000000);
    if (i) assert_true(out[i] > out[i - 1]);
  }
  /* The 120 subsets of 3 of 10, 60000 draws: 500 each expected, standard deviation 22. */
  static int count[1024];
  memset(count, 0, sizeof count);
  for (uint64_t a = 0; a < 60000; ++a) {
    nhgd_rng_sample(9, 8, a, 10, 3, table, out);
    assert_true(out[0] < out[1] && out[1] < out[2] && out[0] >= 0 && out[2] < 10);
    count[(1 << out[0]) | (1 << out[1]) | (1 << out[2])]++;
  }
  int subsets = 0;
  for (int m = 0; m < 1024; ++m)
    if (count[m]) {
      ++subsets;
      assert_in_range(count[m], 390, 610);
    }
  assert_int_equal(subsets, 120);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(defaults_are_valid),
                                     cmocka_unit_test(precedence),
                                     cmocka_unit_test(rejects_bad_input),
                                     cmocka_unit_test(warns_about_unused_options),
                                     cmocka_unit_test(help_lists_every_option),
                                     cmocka_unit_test(rng_known_answers),
                                     cmocka_unit_test(rng_is_deterministic_and_uniform),
                                     cmocka_unit_test(rng_sample_without_replacement),
                                     cmocka_unit_test(knows_its_defaults)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
