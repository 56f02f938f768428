/* On ridge, the `exact` hypergradient equals the closed form to 1e-8 relative, at any rank
 * count: theta* = A^{-1} X^T y / (n sigma^2) with A = X^T X / (n sigma^2) + diag(exp v), and
 * grad Phi = -diag(exp(v) theta*) A^{-1} grad_theta f. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nhgd/nhgd.h"

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);

static double *read_all(hid_t f, const char *name, hsize_t *rows, hsize_t *cols) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(ds);
  hsize_t dims[2] = {1, 1};
  H5Sget_simple_extent_dims(sp, dims, NULL);
  if (H5Sget_simple_extent_ndims(sp) == 1) dims[1] = 1;
  double *a = malloc(sizeof(double) * dims[0] * dims[1]);
  H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a);
  H5Sclose(sp);
  H5Dclose(ds);
  *rows = dims[0];
  *cols = dims[1];
  return a;
}

/* Closed-form hypergradient (m entries) and u = A^{-1} grad_theta f. */
static void closed_form(const char *path, double sigma, double v0, double *h, double *u) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hsize_t n, m, nv, one;
  double *X = read_all(f, "/train/X", &n, &m), *y = read_all(f, "/train/y", &n, &one);
  double *Xv = read_all(f, "/val/X", &nv, &m), *yv = read_all(f, "/val/y", &nv, &one);
  H5Fclose(f);
  int M = (int)m, info = 0, ione = 1;
  double *A = calloc(m * m, sizeof(double)), *th = calloc(m, sizeof(double));
  double *g = calloc(m, sizeof(double));
  const double s2 = sigma * sigma, ev = exp(v0);
  for (hsize_t i = 0; i < n; ++i)
    for (hsize_t a = 0; a < m; ++a) {
      th[a] += X[i * m + a] * y[i] / (n * s2);
      for (hsize_t b = 0; b < m; ++b) A[a + b * m] += X[i * m + a] * X[i * m + b] / (n * s2);
    }
  for (hsize_t a = 0; a < m; ++a) A[a + a * m] += ev;
  dpotrf_("L", &M, A, &M, &info, 1);
  dpotrs_("L", &M, &ione, A, &M, th, &M, &info, 1);
  for (hsize_t j = 0; j < nv; ++j) {
    double r = yv[j];
    for (hsize_t a = 0; a < m; ++a) r -= Xv[j * m + a] * th[a];
    for (hsize_t a = 0; a < m; ++a) g[a] -= r * Xv[j * m + a] / nv;
  }
  memcpy(u, g, sizeof(double) * m);
  dpotrs_("L", &M, &ione, A, &M, u, &M, &info, 1);
  for (hsize_t a = 0; a < m; ++a) h[a] = -ev * th[a] * u[a];
  free(X), free(y), free(Xv), free(yv), free(A), free(th), free(g);
}

static double rel(const double *a, const double *b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / den);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P, fail = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  char path[64];
  snprintf(path, sizeof path, "ridge_exact_np%d.h5", P);
  nhgd_synth_options so;
  nhgd_synth_options_default(&so);
  snprintf(so.output, sizeof so.output, "%s", path);
  so.n_train = 300, so.n_val = 120, so.n_test = 50, so.features = 12, so.noise = 0.7;
  so.seed = 5;
  int rc = rank == 0 ? nhgd_data_synth(&so) : 0;
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  nhgd_data *data = NULL;
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  nhgd_options o;
  nhgd_options_default(&o);
  snprintf(o.data, sizeof o.data, "%s", path);
  snprintf(o.problem, sizeof o.problem, "ridge");
  snprintf(o.output, sizeof o.output, "ridge_exact_out_np%d.h5", P);
  o.batch = 0; /* full-batch gradient descent converges to theta* to machine precision */
  o.inner_steps = 3000;
  o.inner_lr = 0.3;
  o.noise_sigma = 0.7;
  o.v_init = -0.4;
  o.log_level = 1;
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = o.noise_sigma;
  pp.v_init = o.v_init;
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, path, &data);
  if (!rc) rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create("ridge", data, &pp, &pb));
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, &o, data, pb, &s);
  if (!rc) rc = nhgd_solver_hypergrad(s);
  if (!rc) rc = nhgd_solver_write(s, o.output);
  if (rc) {
    if (rank == 0) fprintf(stderr, "solver failed: %s\n", nhgd_error_message());
    fail = 1;
  } else if (rank == 0) {
    int m = so.features;
    double *h = malloc(sizeof(double) * m), *u = malloc(sizeof(double) * m);
    closed_form(path, o.noise_sigma, o.v_init, h, u);
    double eh = rel(nhgd_solver_hypergradient(s), h, m), eu = rel(nhgd_solver_u(s), u, m);
    printf("ridge exact on %d ranks: relative error of h %.3e, of u %.3e\n", P, eh, eu);
    if (!(eh < 1e-8 && eu < 1e-8)) fail = 1;
    free(h), free(u);
  }
  MPI_Bcast(&fail, 1, MPI_INT, 0, MPI_COMM_WORLD);
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  nhgd_data_destroy(&data);
  MPI_Finalize();
  return fail;
}
