/* Block-cyclic matrix: gram updates, diagonal, Cholesky and solve against dense LAPACK, on
 * every grid shape the rank count allows and block sizes that do not divide n. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/bcmat_h5.h"
#include "linalg/bcmat.h"
#include "nhgd/errors.h"

#include "common/mpi_check.h"

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);

static void check_case(int n, int nb, int nprow, int k) {
  int rank, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  nhgd_grid *g = NULL;
  if (nhgd_grid_create(MPI_COMM_WORLD, nprow, &g)) {
    MC_EXPECT(0, "grid %d rows on %d ranks failed: %s", nprow, P, nhgd_error_message());
    return;
  }
  nhgd_bcmat *A = NULL;
  if (nhgd_bcmat_create(g, n, nb, &A)) {
    MC_EXPECT(0, "create failed");
    nhgd_grid_destroy(&g);
    return;
  }
  /* Replicated Z (n x k) and diagonal, identical on every rank (counter RNG). */
  double *Z = malloc(sizeof(double) * n * k), *dg = malloc(sizeof(double) * n);
  for (int i = 0; i < n * k; ++i)
    Z[i] = nhgd_rng_normal(7, 9, (uint64_t)i, (uint64_t)n, 0);
  for (int i = 0; i < n; ++i)
    dg[i] = 0.5 + nhgd_rng_uniform(7, 10, (uint64_t)i, 0, 0);
  nhgd_bcmat_add_diag(A, dg);
  /* Two gram updates (the second with a different scale) to check accumulation. */
  nhgd_bcmat_add_gram(A, Z, k / 2, 0.7, 0);
  nhgd_bcmat_add_gram(A, Z + (size_t)n * (k / 2), k - k / 2, 0.7, 0);
  double *full = rank == 0 ? malloc(sizeof(double) * n * n) : NULL;
  double *ref = malloc(sizeof(double) * n * n);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      double s = i == j ? dg[i] : 0.0;
      for (int c = 0; c < k; ++c)
        s += 0.7 * Z[i + (size_t)c * n] * Z[j + (size_t)c * n];
      ref[i + (size_t)j * n] = s;
    }
  nhgd_bcmat_gather(A, full);
  if (rank == 0) {
    double err = 0.0;
    for (int i = 0; i < n * n; ++i)
      err = fmax(err, fabs(full[i] - ref[i]));
    MC_EXPECT(err < 1e-12 * (1 + k), "n=%d nb=%d grid %dx%d: gram/diag max error %g", n, nb,
              g->nprow, g->npcol, err);
  }
  /* The lower-only update touches every entry on and below the diagonal like the full one. */
  {
    nhgd_bcmat *Lo = NULL;
    nhgd_bcmat_create(g, n, nb, &Lo);
    nhgd_bcmat_add_diag(Lo, dg);
    nhgd_bcmat_add_gram(Lo, Z, k, 0.7, 1);
    double *lo = rank == 0 ? malloc(sizeof(double) * n * n) : NULL;
    nhgd_bcmat_gather(Lo, lo);
    if (rank == 0) {
      double err = 0.0;
      for (int j = 0; j < n; ++j)
        for (int i = j; i < n; ++i)
          err = fmax(err, fabs(lo[i + j * n] - ref[i + j * n]));
      MC_EXPECT(err < 1e-12 * (1 + k), "n=%d nb=%d grid %dx%d: lower-only gram max error %g", n, nb,
                g->nprow, g->npcol, err);
    }
    free(lo);
    nhgd_bcmat_destroy(&Lo);
  }
  /* Solve against dense LAPACK. */
  double *b = malloc(sizeof(double) * n), *x = malloc(sizeof(double) * n);
  for (int i = 0; i < n; ++i)
    b[i] = nhgd_rng_normal(7, 11, (uint64_t)i, 0, 0);
  int rc = nhgd_bcmat_cholesky(A);
  MC_EXPECT(!rc, "cholesky failed: %s", nhgd_error_message());
  rc = nhgd_bcmat_solve(A, b, x);
  MC_EXPECT(!rc, "solve failed: %s", nhgd_error_message());
  int info = 0, one = 1;
  double *xr = malloc(sizeof(double) * n);
  memcpy(xr, b, sizeof(double) * n);
  dpotrf_("L", &n, ref, &n, &info, 1);
  dpotrs_("L", &n, &one, ref, &n, xr, &n, &info, 1);
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    num += (x[i] - xr[i]) * (x[i] - xr[i]);
    den += xr[i] * xr[i];
  }
  MC_EXPECT(sqrt(num / den) < 1e-10, "n=%d nb=%d grid %dx%d: solve relative error %g", n, nb,
            g->nprow, g->npcol, sqrt(num / den));
  /* Every rank holds the same x. */
  double *x0 = malloc(sizeof(double) * n);
  memcpy(x0, x, sizeof(double) * n);
  MPI_Bcast(x0, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MC_EXPECT(!memcmp(x0, x, sizeof(double) * n), "solution differs between ranks");
  free(x0);
  free(xr);
  free(b);
  free(x);
  free(ref);
  free(full);
  free(Z);
  free(dg);
  nhgd_bcmat_destroy(&A);
  nhgd_grid_destroy(&g);
}

/* The Kronecker update equals the dense sum of (x x^T) (x) A_s, in full and lower-only. */
static void check_kron(int m, int C, int nb, int nprow, int k) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const int n = m * C;
  nhgd_grid *g = NULL;
  nhgd_bcmat *A = NULL;
  if (nhgd_grid_create(MPI_COMM_WORLD, nprow, &g) || nhgd_bcmat_create(g, n, nb, &A)) {
    MC_EXPECT(0, "kron setup failed: %s", nhgd_error_message());
    return;
  }
  double *X = malloc(sizeof(double) * m * k), *Acc = malloc(sizeof(double) * C * C * k);
  for (int i = 0; i < m * k; ++i)
    X[i] = nhgd_rng_normal(3, 1, (uint64_t)i, 0, 0);
  for (int i = 0; i < C * C * k; ++i)
    Acc[i] = nhgd_rng_normal(3, 2, (uint64_t)i, 0, 0);
  double *ref = calloc((size_t)n * n, sizeof(double));
  for (int s = 0; s < k; ++s)
    for (int c2 = 0; c2 < C; ++c2)
      for (int c1 = 0; c1 < C; ++c1)
        for (int j2 = 0; j2 < m; ++j2)
          for (int j1 = 0; j1 < m; ++j1)
            ref[(j1 + c1 * m) + (size_t)(j2 + c2 * m) * n] +=
                -0.3 * X[j1 + s * m] * X[j2 + s * m] * Acc[c1 + c2 * C + s * C * C];
  double *full = rank == 0 ? malloc(sizeof(double) * n * n) : NULL;
  for (int lower = 0; lower <= 1; ++lower) {
    nhgd_bcmat_zero(A);
    int rc = nhgd_bcmat_add_kron(A, m, C, X, Acc, k, -0.3, lower);
    MC_EXPECT(!rc, "add_kron failed: %s", nhgd_error_message());
    nhgd_bcmat_gather(A, full);
    if (rank == 0) {
      double err = 0.0;
      for (int j = 0; j < n; ++j)
        for (int i = lower ? j : 0; i < n; ++i)
          err = fmax(err, fabs(full[i + (size_t)j * n] - ref[i + (size_t)j * n]));
      MC_EXPECT(err < 1e-12 * k, "kron m=%d C=%d nb=%d grid %dx%d lower=%d: max error %g", m, C, nb,
                g->nprow, g->npcol, lower, err);
    }
  }
  free(full), free(ref), free(X), free(Acc);
  nhgd_bcmat_destroy(&A);
  nhgd_grid_destroy(&g);
}

/* A matrix written block-cyclically on one grid reads back on another (grid shape and block
 * size independent file). */
static void check_h5(int n, int nb_w, int nprow_w, int nb_r, int nprow_r) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  nhgd_grid *gw = NULL, *gr = NULL;
  nhgd_bcmat *W = NULL, *R = NULL;
  nhgd_grid_create(MPI_COMM_WORLD, nprow_w, &gw);
  nhgd_grid_create(MPI_COMM_WORLD, nprow_r, &gr);
  nhgd_bcmat_create(gw, n, nb_w, &W);
  nhgd_bcmat_create(gr, n, nb_r, &R);
  for (int jl = 0; jl < W->nloc; ++jl)
    for (int il = 0; il < W->mloc; ++il)
      W->a[il + (size_t)jl * W->lld] = (double)W->grow[il] + 1000.0 * (double)W->gcol[jl];
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
  hid_t f = H5Fcreate("bcmat_io.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  int rc = nhgd_bcmat_h5_write(W, f, "A");
  H5Fclose(f);
  MC_EXPECT(!rc, "h5 write failed: %s", nhgd_error_message());
  f = H5Fopen("bcmat_io.h5", H5F_ACC_RDONLY, fapl);
  rc = nhgd_bcmat_h5_read(R, f, "A");
  H5Fclose(f);
  H5Pclose(fapl);
  MC_EXPECT(!rc, "h5 read failed: %s", nhgd_error_message());
  int bad = 0;
  for (int jl = 0; jl < R->nloc; ++jl)
    for (int il = 0; il < R->mloc; ++il)
      bad += R->a[il + (size_t)jl * R->lld] != (double)R->grow[il] + 1000.0 * (double)R->gcol[jl];
  MC_EXPECT(!bad, "n=%d written nb %d grid rows %d, read nb %d grid rows %d: %d wrong entries", n,
            nb_w, nprow_w, nb_r, nprow_r, bad);
  nhgd_bcmat_destroy(&W);
  nhgd_bcmat_destroy(&R);
  nhgd_grid_destroy(&gw);
  nhgd_grid_destroy(&gr);
}

static void check_not_spd(void) {
  nhgd_grid *g = NULL;
  nhgd_bcmat *A = NULL;
  nhgd_grid_create(MPI_COMM_WORLD, 0, &g);
  nhgd_bcmat_create(g, 13, 4, &A);
  double dg[13];
  for (int i = 0; i < 13; ++i)
    dg[i] = i == 5 ? -1.0 : 1.0;
  nhgd_bcmat_add_diag(A, dg);
  nhgd_error_clear();
  int rc = nhgd_bcmat_cholesky(A);
  MC_EXPECT(rc == NHGD_ERR_NUMERIC, "indefinite matrix: expected a numeric error, got %d", rc);
  MC_EXPECT(strstr(nhgd_error_message(), "leading minor 6") != NULL, "message: %s",
            nhgd_error_message());
  nhgd_error_clear();
  nhgd_bcmat_destroy(&A);
  nhgd_grid_destroy(&g);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const int sizes[][3] = {{1, 1, 3},   {7, 2, 5},     {50, 8, 20},
                          {61, 7, 30}, {130, 16, 40}, {200, 64, 9}};
  for (int nprow = 1; nprow <= P; ++nprow) {
    if (P % nprow) continue;
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; ++c)
      check_case(sizes[c][0], sizes[c][1], nprow, sizes[c][2]);
    check_kron(7, 3, 4, nprow, 11);
    check_kron(13, 5, 8, nprow, 6);
    check_kron(5, 1, 3, nprow, 4);
  }
  check_not_spd();
  for (int nprow = 1; nprow <= P; ++nprow) {
    if (P % nprow) continue;
    check_h5(37, 4, nprow, 6, P / nprow);
    check_h5(64, 8, 1, 5, nprow);
    check_h5(3, 8, nprow, 1, 1);
  }
  const int status = mc_finish("bcmat");
  MPI_Finalize();
  return status;
}
