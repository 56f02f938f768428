/* NHGD on ridge with the data's true noise level (a well-specified model): the gap between the
 * NHGD and the exact hypergradient against N, and the bound it stays under.
 *
 * At the last iterate theta_T, h_exact = -E H^{-1} g and h_nhgd = -E M^{-1} g with
 * E = diag(e^v theta_T), H = H_nll + diag(e^v), M = Mbar + (F_N - Fbar), Mbar = diag(e^v) +
 * lambda I + Fbar. Fbar = (1/T) sum_t F_inf(theta_t) is the Fisher the sampled per-sample
 * gradients estimate (F_inf(theta) = (1/n) sum_i s_i s_i^T over all training rows at theta).
 * Then, exactly,
 *   h_nhgd - h_exact = -E (Mbar^{-1} - H^{-1}) g  +  E M^{-1} (F_N - Fbar) z,   z = Mbar^{-1} g.
 * The first term, b, is the bias left by the Fisher-Hessian mismatch at the iterates (and the
 * damping): it does not shrink with N. The second is the sampling error:
 *   ||E M^{-1} (F_N - Fbar) z|| <= ||E|| / lambda_min(M) * ||(F_N - Fbar) z||,
 * and E||(F_N - Fbar) z||^2 = V / N with V = (1/T) sum_t mean_i ||(s_i s_i^T - F_inf(theta_t))
 * z||^2 for independent draws. The bound asserted at every N is
 *   ||h_nhgd - h_exact|| <= ||b|| + 3 ||E|| sqrt(V / N) / lambda_min(M)
 * (three standard deviations of the sampling term). The run takes K outer steps with the
 * outer step size 0 (v fixed): the first K-1 (at least 256 inner steps in all) bring theta to
 * theta*(v), the last (warm-started) collects the samples, so the iterates sit near the
 * optimum. The table also gives the bias with Fbar replaced by F_inf(theta*): the floor left
 * by the Fisher-Hessian mismatch at the optimum itself. The test replays the SGD
 * trajectory independently from the counter RNG, checks the engine's theta_T and that its u
 * equals M^{-1} g from the replayed samples. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "common/ridge_oracle.h"
#include "common/run_opts.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

#define M_FEAT 8

static double norm(const double *x, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i)
    s += x[i] * x[i];
  return sqrt(s);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P, table = argc > 1 && !strcmp(argv[1], "--table");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const int m = M_FEAT;
  const double sigma = 0.5, v0 = -2.0, lr = 0.05, lambda = 0.0;
  const int B = 64;
  char path[64];
  snprintf(path, sizeof path, "ridge_fisher_np%d.h5", P);
  nhgd_synth_options so;
  nhgd_synth_options_default(&so);
  snprintf(so.output, sizeof so.output, "%s", path);
  so.n_train = 4000, so.n_val = 1000, so.n_test = 10, so.features = m, so.noise = sigma;
  so.seed = 21;
  int rc = nhgd_error_agree(MPI_COMM_WORLD, rank == 0 ? nhgd_data_synth(&so) : 0);
  nhgd_data *data = NULL;
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, path, &data);
  if (rc) {
    if (rank == 0) fprintf(stderr, "setup: %s\n", nhgd_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  ridge_full full;
  if (rank == 0) ridge_full_read(path, &full);
  const int Ts[] = {2, 8, 32, 128, 512};
  const int nT = sizeof Ts / sizeof Ts[0];
  if (rank == 0 && !table)
    printf("N = T*B with B = %d, m = %d, sigma = %g (true noise), v = %g, lambda = %g\n", B, m,
           sigma, v0, lambda);
  if (rank == 0)
    printf("| N | relative gap | bias at the iterates | 3 x sampling term | bound | bias at "
           "theta* | u check |\n|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int it = 0; it < nT; ++it) {
    const int T = Ts[it], K = 1 + (256 + T - 1) / T;
    double h[2][M_FEAT], u_nhgd[M_FEAT], theta_T[M_FEAT];
    for (int est = 0; est < 2; ++est) {
      test_opts o;
      test_opts_default(&o);
      snprintf(o.problem, sizeof o.problem, "ridge");
      snprintf(o.estimator, sizeof o.estimator, "%s", est ? "exact" : "nhgd");
      o.inner_steps = T, o.batch = B, o.inner_lr = lr, o.noise_sigma = sigma, o.v_init = v0;
      o.efim_damping = lambda, o.seed = 5, o.log_level = 0;
      o.outer_steps = K, o.outer_lr = 0.0;
      nhgd_problem_params pp;
      nhgd_problem_params_default(&pp);
      pp.noise_sigma = sigma, pp.v_init = v0;
      nhgd_problem *pb = NULL;
      nhgd_solver *s = NULL;
      rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create("ridge", data, &pp, &pb));
      nhgd_options *oh = test_opts_handle(&o);
      if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
      if (!rc) rc = nhgd_solver_run(s);
      if (rc) {
        if (rank == 0) fprintf(stderr, "solver: %s\n", nhgd_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      memcpy(h[est], nhgd_solver_hypergradient(s), sizeof(double) * m);
      if (!est) memcpy(u_nhgd, nhgd_solver_u(s), sizeof(double) * m);
      memcpy(theta_T, nhgd_solver_theta(s), sizeof(double) * m);
      nhgd_solver_destroy(&s);
      nhgd_options_destroy(&oh);
      nhgd_problem_destroy(&pb);
    }
    if (rank != 0) continue;
    /* Replay the trajectory: same global minibatches from the counter RNG. */
    const int n = (int)full.n;
    const double ev = exp(v0), s2 = sigma * sigma;
    double *traj = calloc((size_t)(T + 1) * m, sizeof(double));
    double FN[M_FEAT * M_FEAT] = {0}, theta[M_FEAT] = {0}, grad[M_FEAT];
    for (int step = 0; step < K * T; ++step) {
      const int k = step / T, t = step % T, last = k == K - 1; /* only the last feeds F_N */
      if (last) memcpy(traj + (size_t)t * m, theta, sizeof theta);
      memset(grad, 0, sizeof grad);
      for (int slot = 0; slot < B; ++slot) {
        int i = (int)nhgd_rng_below(5, NHGD_STREAM_BATCH, (uint64_t)k, (uint64_t)t, (uint64_t)slot,
                                    (uint64_t)n);
        const double *x = full.X + (size_t)i * m;
        double e = full.y[i];
        for (int j = 0; j < m; ++j)
          e -= x[j] * theta[j];
        for (int a = 0; a < m; ++a) {
          double sa = -e * x[a] / s2;
          grad[a] += sa / B;
          if (last)
            for (int b = 0; b < m; ++b)
              FN[a + b * m] += sa * (-e * x[b] / s2) / ((double)T * B);
        }
      }
      for (int j = 0; j < m; ++j)
        theta[j] -= lr * (grad[j] + ev * theta[j]);
    }
    double dth = 0;
    for (int j = 0; j < m; ++j)
      dth = fmax(dth, fabs(theta[j] - theta_T[j]));
    MC_EXPECT(dth < 1e-10 * (1 + norm(theta, m)),
              "replayed theta_T differs from the engine's by %g", dth);
    /* g, H, w = H^{-1} g, and u from the replayed F_N. */
    double g[M_FEAT] = {0}, Hn[M_FEAT * M_FEAT], w[M_FEAT], Mm[M_FEAT * M_FEAT], u[M_FEAT];
    ridge_val_grad(&full, theta_T, g);
    ridge_hessian_nll(&full, sigma, Hn);
    double H[M_FEAT * M_FEAT];
    memcpy(H, Hn, sizeof H);
    for (int j = 0; j < m; ++j)
      H[j + j * m] += ev;
    ridge_spd_solve(H, g, w, m);
    memcpy(Mm, FN, sizeof Mm);
    for (int j = 0; j < m; ++j)
      Mm[j + j * m] += ev + lambda;
    ridge_spd_solve(Mm, g, u, m);
    double du = 0;
    for (int j = 0; j < m; ++j)
      du = fmax(du, fabs(u[j] - u_nhgd[j]));
    double ucheck = du / norm(u, m);
    MC_EXPECT(ucheck < 1e-10, "engine u differs from M^{-1} g of the replayed samples by %.3e",
              ucheck);
    /* Fbar (dense), then z = Mbar^{-1} g and the sampling variance V of (F_N - Fbar) z. */
    double Fbar[M_FEAT * M_FEAT] = {0}, Mbar[M_FEAT * M_FEAT], z[M_FEAT], V = 0;
    for (int t = 0; t < T; ++t) {
      const double *th = traj + (size_t)t * m;
      for (int i = 0; i < n; ++i) {
        const double *x = full.X + (size_t)i * m;
        double e = full.y[i];
        for (int j = 0; j < m; ++j)
          e -= x[j] * th[j];
        const double c = e * e / (s2 * s2) / ((double)n * T);
        for (int a = 0; a < m; ++a)
          for (int b = 0; b < m; ++b)
            Fbar[a + b * m] += c * x[a] * x[b];
      }
    }
    memcpy(Mbar, Fbar, sizeof Mbar);
    for (int j = 0; j < m; ++j)
      Mbar[j + j * m] += ev + lambda;
    ridge_spd_solve(Mbar, g, z, m);
    for (int t = 0; t < T; ++t) {
      const double *th = traj + (size_t)t * m;
      double Fz[M_FEAT] = {0}; /* F_inf(theta_t) z */
      for (int i = 0; i < n; ++i) {
        const double *x = full.X + (size_t)i * m;
        double e = full.y[i], xz = 0;
        for (int j = 0; j < m; ++j)
          e -= x[j] * th[j], xz += x[j] * z[j];
        for (int j = 0; j < m; ++j)
          Fz[j] += e * e * xz / (s2 * s2) * x[j] / n;
      }
      for (int i = 0; i < n; ++i) {
        const double *x = full.X + (size_t)i * m;
        double e = full.y[i], xz = 0, sq = 0;
        for (int j = 0; j < m; ++j)
          e -= x[j] * th[j], xz += x[j] * z[j];
        for (int j = 0; j < m; ++j) {
          double dv = e * e * xz / (s2 * s2) * x[j] - Fz[j];
          sq += dv * dv;
        }
        V += sq / ((double)n * T);
      }
    }
    /* The same bias with Fbar = F_inf(theta*). */
    double tstar[M_FEAT], Fs[M_FEAT * M_FEAT] = {0}, zs[M_FEAT], bstar[M_FEAT];
    ridge_theta_star(&full, sigma, v0, tstar);
    for (int i = 0; i < n; ++i) {
      const double *x = full.X + (size_t)i * m;
      double e = full.y[i];
      for (int j = 0; j < m; ++j)
        e -= x[j] * tstar[j];
      for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b)
          Fs[a + b * m] += e * e / (s2 * s2) / n * x[a] * x[b];
    }
    for (int j = 0; j < m; ++j)
      Fs[j + j * m] += ev + lambda;
    ridge_spd_solve(Fs, g, zs, m);
    for (int j = 0; j < m; ++j)
      bstar[j] = -ev * theta_T[j] * (zs[j] - w[j]);
    /* b = -E (Mbar^{-1} - H^{-1}) g = -E (z - w). */
    double bvec[M_FEAT], Enorm = 0;
    for (int j = 0; j < m; ++j) {
      bvec[j] = -ev * theta_T[j] * (z[j] - w[j]);
      Enorm = fmax(Enorm, fabs(ev * theta_T[j]));
    }
    const double lmin = ridge_lambda_min(Mm, m);
    const double N = (double)T * B, hn = norm(h[1], m);
    double diff[M_FEAT];
    for (int j = 0; j < m; ++j)
      diff[j] = h[0][j] - h[1][j];
    double gap = norm(diff, m) / hn;
    double bias = norm(bvec, m) / hn;
    double samp = 3.0 * Enorm * sqrt(V / N) / lmin / hn;
    printf("| %.0f | %.3e | %.3e | %.3e | %.3e | %.3e | %.1e |\n", N, gap, bias, samp, bias + samp,
           norm(bstar, m) / hn, ucheck);
    MC_EXPECT(gap <= bias + samp, "at N = %.0f the gap %.3e exceeds the bound %.3e", N, gap,
              bias + samp);
    free(traj);
  }
  if (rank == 0) ridge_full_free(&full);
  nhgd_data_destroy(&data);
  const int status = mc_finish("ridge fisher");
  MPI_Finalize();
  return status;
}
