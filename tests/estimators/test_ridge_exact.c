/* On ridge, the `exact` hypergradient equals the closed form to 1e-8 relative, at any rank
 * count: theta* = A^{-1} X^T y / (n sigma^2) with A = X^T X / (n sigma^2) + diag(exp v), and
 * grad Phi = -diag(exp(v) theta*) A^{-1} grad_theta f. */
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ridge_oracle.h"
#include "common/run_opts.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

/* Closed-form hypergradient (m entries) and u = A^{-1} grad_theta f. */
static void closed_form(const char *path, double sigma, double v0, double *h, double *u) {
  ridge_full r;
  ridge_full_read(path, &r);
  const int m = (int)r.m;
  double *A = malloc(sizeof(double) * m * m), *th = malloc(sizeof(double) * m);
  double *g = malloc(sizeof(double) * m);
  ridge_theta_star(&r, sigma, v0, th);
  ridge_val_grad(&r, th, g);
  ridge_hessian_nll(&r, sigma, A);
  for (int a = 0; a < m; ++a)
    A[a + a * m] += exp(v0);
  ridge_spd_solve(A, g, u, m);
  for (int a = 0; a < m; ++a)
    h[a] = -exp(v0) * th[a] * u[a];
  ridge_full_free(&r);
  free(A), free(th), free(g);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P;
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
  test_opts o;
  test_opts_default(&o);
  snprintf(o.data, sizeof o.data, "%s", path);
  snprintf(o.problem, sizeof o.problem, "ridge");
  snprintf(o.estimator, sizeof o.estimator, "exact");
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
  nhgd_options *oh = test_opts_handle(&o);
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
  if (!rc) rc = nhgd_solver_hypergrad(s);
  if (!rc) rc = nhgd_solver_write(s, o.output);
  if (rc) {
    mc_check(0, "solver failed: %s", nhgd_error_message());
  } else if (rank == 0) {
    int m = so.features;
    double *h = malloc(sizeof(double) * m), *u = malloc(sizeof(double) * m);
    closed_form(path, o.noise_sigma, o.v_init, h, u);
    double eh = mc_rel(nhgd_solver_hypergradient(s), h, m), eu = mc_rel(nhgd_solver_u(s), u, m);
    mc_check(eh < 1e-8 && eu < 1e-8,
             "ridge exact on %d ranks: relative error of h %.3e, of u %.3e (tolerance 1e-8)", P, eh,
             eu);
    free(h), free(u);
  }
  const int status = mc_finish("ridge exact");
  nhgd_solver_destroy(&s);
  nhgd_options_destroy(&oh);
  nhgd_problem_destroy(&pb);
  nhgd_data_destroy(&data);
  MPI_Finalize();
  return status;
}
