/* LIBSVM text files ("label index:value ...") imported behind `nhgd data import-libsvm`. */
#include "nhgd/data.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "data/data_internal.h"
#include "nhgd/output.h"

/* A parsed file in compressed sparse rows, with the line number of each row for messages. */
typedef struct svm_file {
  const char *path;
  int64_t n, cap;
  double *label;
  int64_t *line;
  int64_t *start; /* row i holds entries start[i] .. start[i+1]-1 */
  int64_t nnz, cap_nnz;
  int64_t *col; /* 0-based */
  double *val;
  int64_t max_index; /* largest 1-based index seen */
  int32_t *cls;      /* class of each row (classification) */
} svm_file;

static void svm_free(svm_file *f) {
  nhgd_free(&f->label);
  nhgd_free(&f->line);
  nhgd_free(&f->start);
  nhgd_free(&f->col);
  nhgd_free(&f->val);
  nhgd_free(&f->cls);
}

static int grow(void *pptr, size_t n, size_t size, const char *what) {
  void **p = (void **)pptr;
  if (n > SIZE_MAX / size) NHGD_FAIL(NHGD_ERR_MEM, "size overflow growing %s", what);
  void *q = realloc(*p, n * size);
  if (!q) NHGD_FAIL(NHGD_ERR_MEM, "out of memory growing %s (%zu bytes)", what, n * size);
  *p = q;
  return NHGD_OK;
}

static int add_row(svm_file *f, double label, int64_t line) {
  if (f->n + 1 >= f->cap) {
    const int64_t cap = f->cap ? 2 * f->cap : 1024;
    NHGD_CHECK(grow(&f->label, (size_t)cap, sizeof *f->label, "LIBSVM labels"));
    NHGD_CHECK(grow(&f->line, (size_t)cap, sizeof *f->line, "LIBSVM line numbers"));
    NHGD_CHECK(grow(&f->start, (size_t)cap + 1, sizeof *f->start, "LIBSVM rows"));
    f->cap = cap;
  }
  f->label[f->n] = label;
  f->line[f->n] = line;
  f->start[f->n] = f->nnz;
  f->n++;
  f->start[f->n] = f->nnz;
  return NHGD_OK;
}

static int add_entry(svm_file *f, int64_t col, double v) {
  if (f->nnz >= f->cap_nnz) {
    const int64_t cap = f->cap_nnz ? 2 * f->cap_nnz : 4096;
    NHGD_CHECK(grow(&f->col, (size_t)cap, sizeof *f->col, "LIBSVM entries"));
    NHGD_CHECK(grow(&f->val, (size_t)cap, sizeof *f->val, "LIBSVM entries"));
    f->cap_nnz = cap;
  }
  f->col[f->nnz] = col;
  f->val[f->nnz] = v;
  f->nnz++;
  f->start[f->n] = f->nnz;
  return NHGD_OK;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *token_end(char *p) {
  while (*p && !is_space(*p))
    ++p;
  return p;
}

/* Parse one "index:value" token [p, end) after the previous index prev. */
static int parse_entry(svm_file *f, int64_t lineno, char *p, char *end, int64_t prev,
                       int64_t features, int64_t *index) {
  const int len = (int)(end - p);
  char *colon = memchr(p, ':', (size_t)(end - p));
  if (!colon)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: missing ':' in '%.*s' (expected index:value)", f->path,
              (long long)lineno, len, p);
  int64_t idx = 0;
  const char *q = p;
  if (*q == '-' && q + 1 < colon) {
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: negative index in '%.*s' (indices are 1-based)",
              f->path, (long long)lineno, len, p);
  }
  if (q == colon)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad index in '%.*s': no index before ':'", f->path,
              (long long)lineno, len, p);
  for (; q < colon; ++q) {
    if (*q < '0' || *q > '9')
      NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad index '%.*s' (must be a positive integer)",
                f->path, (long long)lineno, (int)(colon - p), p);
    if (idx > (INT64_MAX - 9) / 10)
      NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad index '%.*s' (too large)", f->path,
                (long long)lineno, (int)(colon - p), p);
    idx = idx * 10 + (*q - '0');
  }
  if (idx == 0)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad index 0 in '%.*s' (indices are 1-based)", f->path,
              (long long)lineno, len, p);
  if (idx <= prev)
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: line %lld: index %lld does not increase (previous index %lld); indices must be "
              "strictly increasing",
              f->path, (long long)lineno, (long long)idx, (long long)prev);
  if (features > 0 && idx > features)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: index %lld exceeds the feature count %lld", f->path,
              (long long)lineno, (long long)idx, (long long)features);
  char *vend = NULL;
  const double v = colon + 1 < end ? strtod(colon + 1, &vend) : 0;
  if (colon + 1 >= end || vend != end)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad value in '%.*s' (expected index:number)", f->path,
              (long long)lineno, len, p);
  if (!isfinite(v))
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: value '%.*s' of index %lld is not finite (NaN or Inf)",
              f->path, (long long)lineno, (int)(end - colon - 1), colon + 1, (long long)idx);
  NHGD_CHECK(add_entry(f, idx - 1, v));
  if (idx > f->max_index) f->max_index = idx;
  *index = idx;
  return NHGD_OK;
}

static int parse_line(svm_file *f, int64_t lineno, char *p, int64_t features, int regression) {
  while (is_space(*p))
    ++p;
  if (!*p || *p == '#') return NHGD_OK; /* blank line or comment */
  char *end = token_end(p), *lend = NULL;
  const int len = (int)(end - p);
  const double label = strtod(p, &lend);
  if (lend != end)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad label '%.*s' (expected a number)", f->path,
              (long long)lineno, len, p);
  if (!isfinite(label))
    NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: bad label '%.*s' (not finite)", f->path,
              (long long)lineno, len, p);
  /* Above 2^53 not every integer is a double: distinct labels could merge. */
  if (!regression && (label != floor(label) || fabs(label) > 9007199254740992.0))
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: line %lld: bad label '%.*s': class labels must be integers (import as "
              "regression for real targets)",
              f->path, (long long)lineno, len, p);
  NHGD_CHECK(add_row(f, label, lineno));
  int64_t prev = 0;
  for (;;) {
    p = end;
    while (is_space(*p))
      ++p;
    if (!*p || *p == '#') break; /* end of line, or a trailing comment */
    end = token_end(p);
    NHGD_CHECK(parse_entry(f, lineno, p, end, prev, features, &prev));
  }
  return NHGD_OK;
}

static int parse_file(const char *path, int64_t features, int regression, svm_file *f) {
  memset(f, 0, sizeof *f);
  f->path = path;
  NHGD_CHECK(nhgd_check_regular(path));
  FILE *in = fopen(path, "r");
  if (!in) NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *buf = NULL;
  size_t cap = 0;
  int rc = NHGD_OK;
  int64_t lineno = 0;
  errno = 0;
  ssize_t len;
  while ((len = getline(&buf, &cap, in)) >= 0) {
    ++lineno;
    /* A NUL would end the line for the parser: what follows it would go unread. */
    const char *nul = memchr(buf, '\0', (size_t)len);
    if (nul)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA,
                 "%s: line %lld: a NUL byte at column %lld (a LIBSVM file is text)", path,
                 (long long)lineno, (long long)(nul - buf) + 1);
    NHGD_TRY(rc, parse_line(f, lineno, buf, features, regression), done);
  }
  if (ferror(in)) NHGD_RAISE(rc, done, NHGD_ERR_IO, "%s: read error: %s", path, strerror(errno));
  if (f->n == 0) NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: no data rows", path);
done:
  free(buf);
  fclose(in);
  if (rc) svm_free(f);
  return rc;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Class of every row of f: the position of its label among the sorted distinct training
 * labels values[0..C). */
static int map_labels(svm_file *f, const double *values, int C, const char *train_path) {
  NHGD_CHECK(nhgd_calloc(&f->cls, (size_t)f->n, sizeof *f->cls, "class labels"));
  for (int64_t i = 0; i < f->n; ++i) {
    const double *hit = bsearch(&f->label[i], values, (size_t)C, sizeof *values, cmp_double);
    if (!hit)
      NHGD_FAIL(NHGD_ERR_DATA, "%s: line %lld: label %.17g does not occur in the training file %s",
                f->path, (long long)f->line[i], f->label[i], train_path);
    f->cls[i] = (int32_t)(hit - values);
  }
  return NHGD_OK;
}

/* Sorted distinct labels of f. */
static int distinct_labels(const svm_file *f, double **values, int *C) {
  NHGD_CHECK(nhgd_calloc(values, (size_t)f->n, sizeof **values, "label values"));
  double *v = *values;
  memcpy(v, f->label, (size_t)f->n * sizeof *v);
  qsort(v, (size_t)f->n, sizeof *v, cmp_double);
  int64_t k = 0;
  for (int64_t i = 0; i < f->n; ++i)
    if (i == 0 || v[i] != v[k - 1]) v[k++] = v[i];
  if (k < 2)
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: every label is %.17g; classification needs at least 2 distinct labels (or "
              "import as regression)",
              f->path, v[0]);
  if (k > INT32_MAX) NHGD_FAIL(NHGD_ERR_DATA, "%s: too many distinct labels", f->path);
  *C = (int)k;
  return NHGD_OK;
}

/* Dense rows rows[0..n) of f into out. */
static void densify(const svm_file *f, const int64_t *rows, int64_t n, nhgd_wsplit *out) {
  const int m = out->m;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows ? rows[i] : i;
    double *x = out->X + i * m;
    for (int64_t e = f->start[r]; e < f->start[r + 1]; ++e)
      x[f->col[e]] = f->val[e];
    if (out->y_class)
      out->y_class[i] = f->cls[r];
    else
      out->y_real[i] = f->label[r];
  }
}

void nhgd_import_libsvm_options_default(nhgd_import_libsvm_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->output, sizeof o->output, NHGD_IMPORT_DEFAULT_OUTPUT);
  o->features = 0;
  o->regression = 0;
  o->val_fraction = NHGD_IMPORT_DEFAULT_VAL_FRACTION;
  o->test_fraction = NHGD_IMPORT_DEFAULT_TEST_FRACTION;
  o->seed = NHGD_IMPORT_DEFAULT_SEED;
  o->standardize = NHGD_IMPORT_DEFAULT_STANDARDIZE;
}

int nhgd_data_import_libsvm(const nhgd_import_libsvm_options *o) {
  if (!o->input[0]) NHGD_FAIL(NHGD_ERR_ARG, "import-libsvm: no input file given");
  if (!o->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "import-libsvm: no output file given");
  if (o->features < 0 || o->features > INT_MAX)
    NHGD_FAIL(NHGD_ERR_ARG,
              "import-libsvm: features = %lld must be in 0..%d (0: the largest index)",
              (long long)o->features, INT_MAX);
  if (!(o->val_fraction > 0 && o->val_fraction < 1))
    NHGD_FAIL(NHGD_ERR_ARG, "import-libsvm: val_fraction = %g must be in (0, 1)", o->val_fraction);
  const int has_test_file = o->test[0] != '\0';
  if (!has_test_file && !(o->test_fraction >= 0 && o->test_fraction < 1))
    NHGD_FAIL(NHGD_ERR_ARG, "import-libsvm: test_fraction = %g must be in [0, 1)",
              o->test_fraction);

  int rc = NHGD_OK, C = 0;
  const int classification = !o->regression;
  svm_file in = {0}, tf = {0};
  double *values = NULL;
  int64_t *perm = NULL;
  nhgd_wsplit train = {0}, val = {0}, test = {0};
  nhgd_h5w w = {.file = H5I_INVALID_HID};

  const nhgd_path paths[] = {{"--input", o->input, NHGD_PATH_READ},
                             {"--test", o->test, NHGD_PATH_READ},
                             {"--output", o->output, NHGD_PATH_WRITE}};
  NHGD_TRY(rc, nhgd_paths_check(paths, (int)(sizeof paths / sizeof paths[0])), done);
  NHGD_TRY(rc, parse_file(o->input, o->features, o->regression, &in), done);
  if (has_test_file) NHGD_TRY(rc, parse_file(o->test, o->features, o->regression, &tf), done);
  /* Without a given count, features absent from one file are zero there: take the largest
   * index of both so that the splits share one feature space. */
  int64_t m = o->features;
  if (m == 0) m = in.max_index > tf.max_index ? in.max_index : tf.max_index;
  if (m < 1) NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: no features (every row is empty)", o->input);
  if (m > INT_MAX)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: index %lld is too large", o->input, (long long)m);
  if (classification) {
    NHGD_TRY(rc, distinct_labels(&in, &values, &C), done);
    NHGD_TRY(rc, map_labels(&in, values, C, o->input), done);
    if (has_test_file) NHGD_TRY(rc, map_labels(&tf, values, C, o->input), done);
  }

  const int64_t N = in.n;
  const int64_t n_test = has_test_file ? 0 : llround(o->test_fraction * (double)N);
  const int64_t rest = N - n_test, n_val = llround(o->val_fraction * (double)rest);
  const int64_t n_train = rest - n_val;
  if ((!has_test_file && o->test_fraction > 0 && n_test < 1) || n_val < 1 || n_train < 1)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: %lld rows are too few to split with val_fraction %g and test_fraction %g "
               "(every split needs at least one row)",
               o->input, (long long)N, o->val_fraction, has_test_file ? 0.0 : o->test_fraction);

  NHGD_TRY(rc, nhgd_calloc(&perm, (size_t)N, sizeof *perm, "row permutation"), done);
  nhgd_rng_permutation(o->seed, NHGD_STREAM_SPLIT, 0, N, perm);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&train, n_train, (int)m, classification, "training rows"), done);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&val, n_val, (int)m, classification, "validation rows"), done);
  densify(&in, perm, n_train, &train);
  densify(&in, perm + n_train, n_val, &val);
  const int has_test = has_test_file || n_test > 0;
  if (has_test_file) {
    NHGD_TRY(rc, nhgd_wsplit_alloc(&test, tf.n, (int)m, classification, "test rows"), done);
    densify(&tf, NULL, tf.n, &test);
  } else if (n_test > 0) {
    NHGD_TRY(rc, nhgd_wsplit_alloc(&test, n_test, (int)m, classification, "test rows"), done);
    densify(&in, perm + n_train + n_val, n_test, &test);
  }
  if (o->standardize)
    NHGD_TRY(rc, nhgd_data_standardize(&train, &val, has_test ? &test : NULL), done);

  NHGD_TRY(rc, nhgd_h5w_create(&w, o->output), done);
  if (classification) {
    NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "n_classes", C), done);
    NHGD_TRY(rc, nhgd_h5w_attr_doubles(&w, "label_values", C, values), done);
  }
  NHGD_TRY(rc, nhgd_h5w_split(&w, "train", &train, 0), done);
  NHGD_TRY(rc, nhgd_h5w_split(&w, "val", &val, 0), done);
  if (has_test) NHGD_TRY(rc, nhgd_h5w_split(&w, "test", &test, 0), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&w, "generator", "import-libsvm"), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&w, "input", o->input), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&w, "test", o->test), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "features", m), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "regression", o->regression ? 1 : 0), done);
  NHGD_TRY(rc, nhgd_h5w_attr_double(&w, "val_fraction", o->val_fraction), done);
  NHGD_TRY(rc, nhgd_h5w_attr_double(&w, "test_fraction", has_test_file ? 0.0 : o->test_fraction),
           done);
  NHGD_TRY(rc, nhgd_h5w_attr_u64(&w, "seed", o->seed), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "standardize", o->standardize ? 1 : 0), done);
done:
  rc = nhgd_h5w_finish(&w, rc);
  svm_free(&in);
  svm_free(&tf);
  nhgd_free(&values);
  nhgd_free(&perm);
  nhgd_wsplit_free(&train);
  nhgd_wsplit_free(&val);
  nhgd_wsplit_free(&test);
  return rc;
}
