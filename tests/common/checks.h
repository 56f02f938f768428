/* Shared by the engine's MPI check programs: a counted ok/FAIL line per check (printed by
 * rank 0) and the relative 2-norm difference of two vectors. */
#ifndef NHGD_TEST_CHECKS_H
#define NHGD_TEST_CHECKS_H

#include <math.h>
#include <stdio.h>

void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info, size_t len);

static int P, rank_, failures, cases;

static inline void report(int ok, const char *fmt, double x) {
  ++cases;
  if (!ok) ++failures;
  if (rank_ == 0) {
    printf("%s ", ok ? "ok  " : "FAIL");
    printf(fmt, x);
    printf("\n");
  }
}

static inline double rel(const double *a, const double *b, int n) {
  double num = 0.0, den = 0.0;
  for (int i = 0; i < n; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / (den > 0.0 ? den : 1.0));
}

#endif
