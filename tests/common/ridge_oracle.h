/* Dense closed forms of the ridge problem for tests: the whole file read on one process. */
#ifndef NHGD_TESTS_RIDGE_ORACLE_H
#define NHGD_TESTS_RIDGE_ORACLE_H

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);

typedef struct ridge_full {
  hsize_t n, m, nv;
  double *X, *y, *Xv, *yv; /* row-major */
} ridge_full;

static inline double *ridge_read(hid_t f, const char *name, hsize_t *rows, hsize_t *cols) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(ds);
  hsize_t dims[2] = {1, 1};
  H5Sget_simple_extent_dims(sp, dims, NULL);
  if (H5Sget_simple_extent_ndims(sp) == 1) dims[1] = 1;
  double *a = malloc(sizeof(double) * dims[0] * dims[1]);
  H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a);
  H5Sclose(sp);
  H5Dclose(ds);
  *rows = dims[0];
  if (cols) *cols = dims[1];
  return a;
}

static inline void ridge_full_read(const char *path, ridge_full *r) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hsize_t one;
  r->X = ridge_read(f, "/train/X", &r->n, &r->m);
  r->y = ridge_read(f, "/train/y", &r->n, &one);
  r->Xv = ridge_read(f, "/val/X", &r->nv, &r->m);
  r->yv = ridge_read(f, "/val/y", &r->nv, &one);
  H5Fclose(f);
}

static inline void ridge_full_free(ridge_full *r) {
  free(r->X), free(r->y), free(r->Xv), free(r->yv);
}

/* x = A^{-1} b for symmetric positive definite A (m x m, not modified). */
static inline void ridge_spd_solve(const double *A, const double *b, double *x, int m) {
  double *L = malloc(sizeof(double) * m * m);
  memcpy(L, A, sizeof(double) * m * m);
  memcpy(x, b, sizeof(double) * m);
  int info = 0, one = 1;
  dpotrf_("L", &m, L, &m, &info, 1);
  dpotrs_("L", &m, &one, L, &m, x, &m, &info, 1);
  free(L);
}

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t l1, size_t l2);

/* Smallest eigenvalue of a symmetric m x m matrix (not modified), m <= 64. */
static inline double ridge_lambda_min(const double *A, int m) {
  double a[64 * 64], w[64], work[64 * 64];
  int lwork = 64 * 64, info = 0;
  memcpy(a, A, sizeof(double) * m * m);
  dsyev_("N", "L", &m, a, &m, w, work, &lwork, &info, 1, 1);
  return w[0];
}

/* H_nll = X^T X / (n sigma^2). */
static inline void ridge_hessian_nll(const ridge_full *r, double sigma, double *H) {
  const hsize_t n = r->n, m = r->m;
  memset(H, 0, sizeof(double) * m * m);
  for (hsize_t i = 0; i < n; ++i)
    for (hsize_t a = 0; a < m; ++a)
      for (hsize_t b = 0; b < m; ++b)
        H[a + b * m] += r->X[i * m + a] * r->X[i * m + b] / (n * sigma * sigma);
}

/* theta* = (H_nll + diag(e^v))^{-1} X^T y / (n sigma^2) for constant v. */
static inline void ridge_theta_star(const ridge_full *r, double sigma, double v, double *theta) {
  const hsize_t n = r->n, m = r->m;
  double *H = malloc(sizeof(double) * m * m), *rhs = calloc(m, sizeof(double));
  ridge_hessian_nll(r, sigma, H);
  for (hsize_t a = 0; a < m; ++a)
    H[a + a * m] += exp(v);
  for (hsize_t i = 0; i < n; ++i)
    for (hsize_t a = 0; a < m; ++a)
      rhs[a] += r->X[i * m + a] * r->y[i] / (n * sigma * sigma);
  ridge_spd_solve(H, rhs, theta, (int)m);
  free(H), free(rhs);
}

/* g = grad_theta of the half validation MSE at theta. */
static inline void ridge_val_grad(const ridge_full *r, const double *theta, double *g) {
  const hsize_t nv = r->nv, m = r->m;
  memset(g, 0, sizeof(double) * m);
  for (hsize_t j = 0; j < nv; ++j) {
    double e = r->yv[j];
    for (hsize_t a = 0; a < m; ++a)
      e -= r->Xv[j * m + a] * theta[a];
    for (hsize_t a = 0; a < m; ++a)
      g[a] -= e * r->Xv[j * m + a] / nv;
  }
}

#endif
