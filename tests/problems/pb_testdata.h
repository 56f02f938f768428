/* Hand-built nhgd_data for the problem tests: small random splits, reproducible from a seed
 * and partitioned over ranks in contiguous blocks like the real data layer. */
#ifndef NHGD_TESTS_PB_TESTDATA_H
#define NHGD_TESTS_PB_TESTDATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nhgd/data.h"
#include "nhgd/problem.h"

enum { TD_TRAIN = 0, TD_VAL = 1, TD_TEST = 2 };

/* Rows of rank r out of P for n rows: the first n%P ranks own one more. */
static inline void td_partition(int64_t n, int P, int r, int64_t *lo, int *n_local) {
  int64_t q = n / P, rem = n % P;
  *lo = r * q + (r < rem ? r : rem);
  *n_local = (int)(q + (r < rem ? 1 : 0));
}

/* Row features are a function of (seed, split, global row, feature), so every partition of
 * the same split sees the same rows. Labels come from a random linear model plus noise, so
 * that some but not all rows are classified right. */
static inline void td_split(nhgd_split *s, uint64_t seed, int which, int64_t n_global, int P, int r,
                            int m, int C) {
  memset(s, 0, sizeof *s);
  s->n_global = n_global;
  s->m = m;
  td_partition(n_global, P, r, &s->lo, &s->n_local);
  size_t n = (size_t)(s->n_local > 0 ? s->n_local : 1);
  s->X = calloc(n * (size_t)m, sizeof(double));
  if (C > 0)
    s->y_class = calloc(n, sizeof(int32_t));
  else
    s->y_real = calloc(n, sizeof(double));
  for (int i = 0; i < s->n_local; i++) {
    uint64_t gi = (uint64_t)(s->lo + i);
    double *x = s->X + (size_t)i * m;
    for (int j = 0; j < m; j++)
      x[j] = nhgd_rng_normal(seed, NHGD_STREAM_SYNTH, 10 + which, gi, j);
    if (C > 0) {
      int best = 0;
      double bz = -INFINITY;
      for (int c = 0; c < C; c++) {
        double z = nhgd_rng_normal(seed, NHGD_STREAM_SYNTH, 20 + which, gi, c);
        for (int j = 0; j < m; j++)
          z += x[j] * nhgd_rng_normal(seed, NHGD_STREAM_SYNTH, 1, j, c);
        if (z > bz) bz = z, best = c;
      }
      s->y_class[i] = best;
    } else {
      double y = 0.3 * nhgd_rng_normal(seed, NHGD_STREAM_SYNTH, 20 + which, gi, 0);
      for (int j = 0; j < m; j++)
        y += x[j] * nhgd_rng_normal(seed, NHGD_STREAM_SYNTH, 1, j, 0);
      s->y_real[i] = y;
    }
  }
}

/* A data set with train, val and test splits; C = 0 makes it a regression task. */
static inline void td_make(nhgd_data *d, MPI_Comm comm, uint64_t seed, int m, int C,
                           int64_t n_train, int64_t n_val, int64_t n_test) {
  memset(d, 0, sizeof *d);
  d->comm = comm;
  MPI_Comm_rank(comm, &d->rank);
  MPI_Comm_size(comm, &d->size);
  d->task = C > 0 ? NHGD_TASK_CLASSIFICATION : NHGD_TASK_REGRESSION;
  d->n_classes = C;
  d->m = m;
  td_split(&d->train, seed, TD_TRAIN, n_train, d->size, d->rank, m, C);
  td_split(&d->val, seed, TD_VAL, n_val, d->size, d->rank, m, C);
  td_split(&d->test, seed, TD_TEST, n_test, d->size, d->rank, m, C);
  d->has_test = 1;
}

/* A split made of `times` copies of src's rows (on one process). */
static inline void td_tile(nhgd_split *dst, const nhgd_split *src, int times) {
  memset(dst, 0, sizeof *dst);
  dst->m = src->m;
  dst->n_local = src->n_local * times;
  dst->n_global = dst->n_local;
  size_t nm = (size_t)src->n_local * src->m;
  dst->X = malloc(nm * times * sizeof(double));
  if (src->y_class) dst->y_class = malloc((size_t)dst->n_local * sizeof(int32_t));
  if (src->y_real) dst->y_real = malloc((size_t)dst->n_local * sizeof(double));
  for (int t = 0; t < times; t++) {
    memcpy(dst->X + t * nm, src->X, nm * sizeof(double));
    size_t off = (size_t)t * src->n_local;
    if (src->y_class)
      memcpy(dst->y_class + off, src->y_class, (size_t)src->n_local * sizeof(int32_t));
    if (src->y_real) memcpy(dst->y_real + off, src->y_real, (size_t)src->n_local * sizeof(double));
  }
}

static inline void td_split_free(nhgd_split *s) {
  free(s->X);
  free(s->y_class);
  free(s->y_real);
  memset(s, 0, sizeof *s);
}

static inline void td_free(nhgd_data *d) {
  td_split_free(&d->train);
  td_split_free(&d->val);
  td_split_free(&d->test);
}

/* Normal draws scaled by a, for theta, v and directions. */
static inline void td_fill(double *x, int64_t n, uint64_t seed, uint64_t what, double a) {
  for (int64_t i = 0; i < n; i++)
    x[i] = a * nhgd_rng_normal(seed, NHGD_STREAM_INIT, what, (uint64_t)i, 0);
}

/* Largest entrywise difference relative to the larger of the two vectors' maximum entries. */
static inline double td_relerr(const double *a, const double *b, int64_t n, double floor) {
  double err = 0.0, scale = floor;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]);
    if (e > err || isnan(e)) err = isnan(e) ? INFINITY : e;
    if (fabs(a[i]) > scale) scale = fabs(a[i]);
    if (fabs(b[i]) > scale) scale = fabs(b[i]);
  }
  return err / scale;
}

/* <grad_theta g(v, theta), u>, g = (sum of inner_grad over the n listed rows) / n_global + R. */
static inline double td_phi(const nhgd_problem *pb, const double *theta, const double *v, int n,
                            const int *rows, double n_global, const double *u, double *g) {
  double loss, s = 0.0;
  if (pb->ops.inner_grad(pb, theta, v, n, rows, g, &loss)) return NAN;
  for (int64_t k = 0; k < pb->d; k++)
    g[k] /= n_global;
  if (pb->ops.reg(pb, theta, v, NULL, g, NULL)) return NAN;
  for (int64_t k = 0; k < pb->d; k++)
    s += g[k] * u[k];
  return s;
}

/* The cross term J^T u (nv entries of v) against central differences of td_phi in every
 * entry of v, for a direction u drawn from seed: the relative error (td_relerr with floor),
 * and the 1-norm of J^T u in *norm. */
static inline double td_cross_fd_error(const nhgd_problem *pb, const double *theta, const double *v,
                                       int64_t nv, int n, const int *rows, double n_global,
                                       uint64_t seed, double floor, double *norm) {
  const double h = 1e-6;
  double *u = calloc((size_t)pb->d, sizeof(double)), *g = calloc((size_t)pb->d, sizeof(double));
  double *out = calloc((size_t)nv, sizeof(double)), *fd = calloc((size_t)nv, sizeof(double));
  double *w = calloc((size_t)nv, sizeof(double)), err = INFINITY;
  if (u && g && out && fd && w) {
    td_fill(u, pb->d, seed, 6, 1.0);
    if (!pb->ops.cross(pb, theta, v, u, out)) {
      memcpy(w, v, (size_t)nv * sizeof(double));
      for (int64_t i = 0; i < nv; i++) {
        w[i] = v[i] + h;
        double pp = td_phi(pb, theta, w, n, rows, n_global, u, g);
        w[i] = v[i] - h;
        double pm = td_phi(pb, theta, w, n, rows, n_global, u, g);
        w[i] = v[i];
        fd[i] = (pp - pm) / (2 * h);
      }
      err = td_relerr(out, fd, nv, floor);
      *norm = 0.0;
      for (int64_t i = 0; i < nv; i++)
        *norm += fabs(out[i]);
    }
  }
  free(u);
  free(g);
  free(out);
  free(fd);
  free(w);
  return err;
}

#endif
