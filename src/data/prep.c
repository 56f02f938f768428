/* In-memory splits used by the writers, and feature standardisation with train statistics. */
#include "data/data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int nhgd_data_dense_limit(double *bytes) {
  double avail = nhgd_mem_available();
  if (avail <= 0.0) avail = INFINITY;
  const char *env = getenv("NHGD_MAX_DENSE_MB");
  double cap = INFINITY;
  if (env) {
    /* As strict as an option: a number, all of it, finite and in range, or an error (atof
     * read "abc" as 0 and "-5" as -5, and either meant "no limit"). */
    char *end = NULL;
    errno = 0;
    const double mib = strtod(env, &end);
    if (errno || end == env || *end || !isfinite(mib))
      NHGD_FAIL(NHGD_ERR_ARG,
                "environment NHGD_MAX_DENSE_MB: '%.64s' is not a finite number (MiB a dense "
                "split may take)",
                env);
    if (!(mib > 0.0 && mib <= 1e12))
      NHGD_FAIL(NHGD_ERR_ARG,
                "environment NHGD_MAX_DENSE_MB: value %.64s is outside the range (0, 1e+12] (MiB "
                "a dense split may take; unset it for no limit)",
                env);
    cap = mib * 1048576.0;
  }
  *bytes = cap < avail ? cap : avail;
  return NHGD_OK;
}

int nhgd_wsplit_alloc(nhgd_wsplit *s, int64_t n, int m, int classification, const char *what) {
  s->n = n;
  s->m = m;
  s->X = NULL;
  s->y_class = NULL;
  s->y_real = NULL;
  if (n < 0 || m < 0 || (uint64_t)n > SIZE_MAX / ((size_t)m + 1))
    NHGD_FAIL(NHGD_ERR_MEM, "%s: %lld x %d features do not fit in memory", what, (long long)n, m);
  /* A sparse input densifies to n x m: refuse before allocating what cannot be held (a
   * stray feature index of 10^9 in a LIBSVM file, say). */
  double limit;
  NHGD_CHECK(nhgd_data_dense_limit(&limit));
  const double need = 8.0 * (double)n * (double)m;
  if (need > limit)
    NHGD_FAIL(NHGD_ERR_MEM,
              "%s: %lld rows x %d features need %.1f GiB as a dense matrix, more than the %.1f GiB "
              "available: check the largest feature index of the input, or give the feature count",
              what, (long long)n, m, need / 1073741824.0, limit / 1073741824.0);
  NHGD_CHECK(nhgd_calloc(&s->X, (size_t)n * (size_t)m, sizeof(double), what));
  if (classification)
    NHGD_CHECK(nhgd_calloc(&s->y_class, (size_t)n, sizeof(int32_t), what));
  else
    NHGD_CHECK(nhgd_calloc(&s->y_real, (size_t)n, sizeof(double), what));
  return NHGD_OK;
}

void nhgd_wsplit_free(nhgd_wsplit *s) {
  if (!s) return;
  nhgd_free(&s->X);
  nhgd_free(&s->y_class);
  nhgd_free(&s->y_real);
}

static void apply(nhgd_wsplit *s, const double *mean, const double *scale) {
  if (!s) return;
  for (int64_t i = 0; i < s->n; ++i) {
    double *row = s->X + i * (int64_t)s->m;
    for (int j = 0; j < s->m; ++j)
      row[j] = (row[j] - mean[j]) * scale[j];
  }
}

int nhgd_data_standardize(nhgd_wsplit *train, nhgd_wsplit *val, nhgd_wsplit *test) {
  const int m = train->m;
  const int64_t n = train->n;
  double *mean = NULL, *scale = NULL;
  NHGD_CHECK(nhgd_calloc(&mean, (size_t)m, sizeof(double), "feature means"));
  int rc = nhgd_calloc(&scale, (size_t)m, sizeof(double), "feature scales");
  if (rc) {
    nhgd_free(&mean);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  /* Two passes (mean, then squared deviations) avoid the cancellation of sum-of-squares. */
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j)
      mean[j] += train->X[i * m + j];
  for (int j = 0; j < m; ++j)
    mean[j] /= (double)(n > 0 ? n : 1);
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      const double d = train->X[i * m + j] - mean[j];
      scale[j] += d * d;
    }
  for (int j = 0; j < m; ++j) {
    const double sd = sqrt(scale[j] / (double)(n > 0 ? n : 1));
    /* A constant feature carries no information; scale 1 maps it to 0 instead of NaN. The
     * relative threshold treats the rounding error of the mean of a constant as zero. */
    scale[j] = sd > 1e-12 * fabs(mean[j]) && sd > 0 ? 1.0 / sd : 1.0;
  }
  apply(train, mean, scale);
  apply(val, mean, scale);
  apply(test, mean, scale);
  nhgd_free(&mean);
  nhgd_free(&scale);
  return NHGD_OK;
}
