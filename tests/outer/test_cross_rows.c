/* --cross-rows (MPI, 1/2/4 ranks): the sampled cross term against the full pass.
 *   - end with K = n_train gives the hypergradient of all (1e-12 relative);
 *   - trajectory with T = 1 and a full batch (every row once) is the full cross term at the
 *     iterate the step drew its rows at, theta_0 (1e-12);
 *   - the mean of end over 200 seeds, and of trajectory with a vanishing inner step size, is
 *     within 3 standard errors of all per block of entries, while the same statistic rejects
 *     an estimate mis-scaled by 20 %;
 * for hyperclean and mlp-hyperclean; and the refusals of --cross-samples above the rows, of
 * --cross-mode average beside it, and of a custom problem without a sampled form. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/mpi_check.h"
#include "../common/synth_data.h"
#include "nhgd/nhgd.h"

#define N_TRAIN 64
#define N_BLOCKS 4
#define SEEDS 200
#define MIS 1.2 /* the mis-scaling the test must catch */

static nhgd_data *data;

/* Set the options of text, lines "name = value". */
static int set_text(nhgd_options *o, const char *text) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", text);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    char *eq = strstr(line, " = ");
    if (!eq) return NHGD_ERR_ARG;
    *eq = '\0';
    int rc = nhgd_options_set(o, line, eq + 3, "test");
    if (rc) return rc;
  }
  return NHGD_OK;
}

/* The global hypergradient (p = N_TRAIN entries) of one `hypergrad` with the given options,
 * and, if u_out, u (d entries) and theta_0 cross at (theta0 given): 0 on success. */
static int hypergrad(const char *problem, const char *extra, double *h, double *u_out,
                     int64_t *d_out) {
  nhgd_options *o = NULL;
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  int rc = nhgd_options_create_run(&o);
  char text[1024];
  snprintf(text, sizeof text,
           "problem = %s\nestimator = exact\nmlp-hvp = gauss-newton\nhidden = 4\ninner-steps = "
           "5\nbatch = 16\n"
           "inner-lr = 0.5\nlog-level = 0\nv-init = 0.3\n%s",
           problem, extra);
  if (!rc) rc = set_text(o, text);
  if (!rc) rc = nhgd_problem_create_from_options(o, data, &pb);
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, o, data, pb, &s);
  if (!rc) rc = nhgd_solver_hypergrad(s);
  if (!rc) {
    const int64_t nl = nhgd_solver_v_local(s);
    int counts[64], displs[64], mine = (int)nl;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0, at = 0; r < mc_size(); ++r) {
      displs[r] = at;
      at += counts[r];
    }
    MPI_Allgatherv(nhgd_solver_hypergradient(s), mine, MPI_DOUBLE, h, counts, displs, MPI_DOUBLE,
                   MPI_COMM_WORLD);
    if (u_out) memcpy(u_out, nhgd_solver_u(s), sizeof(double) * (size_t)pb->d);
    if (d_out) *d_out = pb->d;
  }
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  nhgd_options_destroy(&o);
  return rc;
}

static double max_abs(const double *x, int n) {
  double m = 0.0;
  for (int i = 0; i < n; ++i)
    m = fabs(x[i]) > m ? fabs(x[i]) : m;
  return m;
}

static double max_diff(const double *a, const double *b, int n) {
  double m = 0.0;
  for (int i = 0; i < n; ++i)
    m = fabs(a[i] - b[i]) > m ? fabs(a[i] - b[i]) : m;
  return m;
}

static void full_sample(const char *problem) {
  double all[N_TRAIN], end[N_TRAIN];
  int rc = hypergrad(problem, "", all, NULL, NULL);
  MC_REQUIRE(!rc, "%s: all: %s", problem, nhgd_error_message());
  char extra[128];
  snprintf(extra, sizeof extra, "cross-rows = end\ncross-samples = %d\n", N_TRAIN);
  rc = hypergrad(problem, extra, end, NULL, NULL);
  MC_REQUIRE(!rc, "%s: end: %s", problem, nhgd_error_message());
  const double rel = max_diff(end, all, N_TRAIN) / max_abs(all, N_TRAIN);
  mc_check(max_abs(all, N_TRAIN) > 0 && rel <= 1e-12,
           "%s: end with K = n_train equals all (max rel diff %.2e)", problem, rel);
}

/* J^T u at theta_0 (the problem's initial point) by the full pass of the problem's cross. */
static void cross_at_start(const char *problem, const double *u, double *out) {
  nhgd_options *o = NULL;
  nhgd_problem *pb = NULL;
  char text[256];
  snprintf(text, sizeof text, "problem = %s\nhidden = 4\nv-init = 0.3\n", problem);
  int rc = nhgd_options_create_run(&o);
  if (!rc) rc = set_text(o, text);
  if (!rc) rc = nhgd_problem_create_from_options(o, data, &pb);
  MC_REQUIRE(!rc, "problem: %s", nhgd_error_message());
  const int nl = (int)data->train.n_local;
  double *theta = calloc((size_t)pb->d, sizeof *theta), *v = calloc((size_t)nl + 1, sizeof *v),
         *loc = calloc((size_t)nl + 1, sizeof *loc);
  MC_REQUIRE(theta && v && loc, "memory");
  rc = pb->ops.init(pb, theta, v);
  if (!rc) rc = pb->ops.cross(pb, theta, v, u, loc);
  MC_REQUIRE(!rc, "cross: %s", nhgd_error_message());
  int counts[64], displs[64];
  MPI_Allgather(&nl, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 0, at = 0; r < mc_size(); ++r) {
    displs[r] = at;
    at += counts[r];
  }
  MPI_Allgatherv(loc, nl, MPI_DOUBLE, out, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
  free(theta);
  free(v);
  free(loc);
  nhgd_problem_destroy(&pb);
  nhgd_options_destroy(&o);
}

static void one_pass(const char *problem) {
  double traj[N_TRAIN], ref[N_TRAIN];
  double *u = calloc(4096, sizeof *u);
  int64_t d = 0;
  int rc = hypergrad(problem, "cross-rows = trajectory\ninner-steps = 1\nbatch = 0\n", traj, u, &d);
  MC_REQUIRE(!rc && d <= 4096, "%s: trajectory: %s", problem, nhgd_error_message());
  cross_at_start(problem, u, ref);
  /* h = grad_v f - J^T u and grad_v f = 0 */
  for (int i = 0; i < N_TRAIN; ++i)
    ref[i] = -ref[i];
  const double rel = max_diff(traj, ref, N_TRAIN) / max_abs(ref, N_TRAIN);
  mc_check(max_abs(ref, N_TRAIN) > 0 && rel <= 1e-12,
           "%s: trajectory over one full pass equals all at theta_0 (max rel diff %.2e)", problem,
           rel);
  free(u);
}

/* Per block of N_TRAIN / N_BLOCKS entries: the largest |mean| / standard error over the seeds
 * of the block sums of x, each entry signed like the seed's full term ref (x, ref: SEEDS x
 * N_TRAIN), so that a mis-scaling adds up over a block instead of cancelling. The sign is a
 * function of the seed's trajectory, which the sampled rows of end do not depend on. */
static double worst_z(const double *x, const double *ref) {
  double worst = 0.0;
  const int w = N_TRAIN / N_BLOCKS;
  for (int b = 0; b < N_BLOCKS; ++b) {
    double s = 0.0, s2 = 0.0;
    for (int k = 0; k < SEEDS; ++k) {
      double t = 0.0;
      for (int i = b * w; i < (b + 1) * w; ++i) {
        const size_t at = (size_t)k * N_TRAIN + i;
        t += ref[at] < 0 ? -x[at] : x[at];
      }
      s += t;
      s2 += t * t;
    }
    const double mean = s / SEEDS, var = (s2 - SEEDS * mean * mean) / (SEEDS - 1);
    const double z = fabs(mean) / sqrt(var / SEEDS);
    worst = z > worst ? z : worst;
  }
  return worst;
}

/* The estimate minus all over SEEDS seeds (same seed, same trajectory and u): mean zero. */
static void unbiased(const char *problem, const char *mode, const char *extra) {
  const size_t n = (size_t)SEEDS * N_TRAIN;
  double *diff = calloc(n, sizeof *diff), *mis = calloc(n, sizeof *mis),
         *ref = calloc(n, sizeof *ref);
  MC_REQUIRE(diff && mis && ref, "memory");
  for (int k = 0; k < SEEDS; ++k) {
    double *all = ref + (size_t)k * N_TRAIN, est[N_TRAIN];
    char a[256], e[384];
    snprintf(a, sizeof a, "seed = %d\n%s", k, extra);
    snprintf(e, sizeof e, "seed = %d\ncross-rows = %s\n%s", k, mode, extra);
    int rc = hypergrad(problem, a, all, NULL, NULL);
    if (!rc) rc = hypergrad(problem, e, est, NULL, NULL);
    MC_REQUIRE(!rc, "%s %s seed %d: %s", problem, mode, k, nhgd_error_message());
    for (int i = 0; i < N_TRAIN; ++i) {
      diff[(size_t)k * N_TRAIN + i] = est[i] - all[i];
      mis[(size_t)k * N_TRAIN + i] = MIS * est[i] - all[i];
    }
  }
  const double z = worst_z(diff, ref), zmis = worst_z(mis, ref);
  mc_check(z < 3.0,
           "%s: the mean of %s over %d seeds is within 3 standard errors of all (worst "
           "block %.2f)",
           problem, mode, SEEDS, z);
  mc_check(zmis > 3.0, "%s: the same test rejects %s scaled by %g (worst block %.2f)", problem,
           mode, MIS, zmis);
  free(diff);
  free(mis);
  free(ref);
}

static void refusals(void) {
  double h[N_TRAIN];
  int rc = hypergrad("hyperclean", "cross-rows = end\ncross-samples = 65\n", h, NULL, NULL);
  mc_check(rc == NHGD_ERR_ARG && strstr(nhgd_error_message(), "--cross-samples 65") &&
               strstr(nhgd_error_message(), "only 64 rows"),
           "--cross-samples above the training rows is refused: %s", nhgd_error_message());
  nhgd_error_clear();
  rc = hypergrad("hyperclean", "cross-rows = end\ncross-mode = average\n", h, NULL, NULL);
  mc_check(rc == NHGD_ERR_ARG && strstr(nhgd_error_message(), "--cross-mode average"),
           "--cross-rows end with --cross-mode average is refused (%d): %s", rc,
           nhgd_error_message());
  /* A problem of the caller's with per-row v and no sampled form: hyperclean's callbacks
   * without cross_keep and cross_apply. */
  nhgd_error_clear();
  nhgd_options *o = NULL;
  nhgd_problem *hc = NULL, *own = NULL;
  nhgd_solver *s = NULL;
  rc = nhgd_options_create_run(&o);
  if (!rc) rc = set_text(o, "problem = hyperclean\ncross-rows = trajectory\nlog-level = 0\n");
  if (!rc) rc = nhgd_problem_create_from_options(o, data, &hc);
  MC_REQUIRE(!rc, "hyperclean: %s", nhgd_error_message());
  nhgd_problem_ops ops = hc->ops;
  ops.cross_keep = NULL;
  ops.cross_apply = NULL;
  ops.destroy = NULL;
  rc = nhgd_problem_create_custom("rows-own", data, &ops, sizeof ops, hc->ctx, &own);
  MC_REQUIRE(!rc, "custom: %s", nhgd_error_message());
  own->d = hc->d, own->p = hc->p, own->v_per_sample = 1, own->is_classifier = 1;
  own->hess_rank = hc->hess_rank;
  rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_solver_check_data(o, own));
  mc_check(rc == NHGD_ERR_ARG && strstr(nhgd_error_message(), "no sampled cross term"),
           "a custom problem without a sampled cross term is refused (%d): %s", rc,
           nhgd_error_message());
  rc = nhgd_solver_create(MPI_COMM_WORLD, o, data, own, &s);
  mc_check(rc == NHGD_ERR_ARG && !s, "... by nhgd_solver_create as well");
  nhgd_problem_destroy(&own);
  nhgd_problem_destroy(&hc);
  nhgd_options_destroy(&o);
  nhgd_error_clear();
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  mc_expected_np();
  const synth_data_sizes sizes = {
      .n_train = N_TRAIN, .n_val = 23, .n_test = 10, .classes = 3, .noise = 1, .seed = 5};
  char path[64];
  snprintf(path, sizeof path, "cross_rows_np%d.h5", mc_size());
  MC_REQUIRE(!synth_data_write("logistic", path, 5, &sizes), "data: %s", nhgd_error_message());
  MC_REQUIRE(!nhgd_data_load(MPI_COMM_WORLD, path, &data), "load: %s", nhgd_error_message());
  const char *problems[] = {"hyperclean", "mlp-hyperclean"};
  for (int p = 0; p < 2; ++p) {
    full_sample(problems[p]);
    one_pass(problems[p]);
    unbiased(problems[p], "end", "cross-samples = 32\n");
    /* theta hardly moves: the trajectory's iterates are theta_T's */
    unbiased(problems[p], "trajectory", "inner-lr = 1e-9\ninner-steps = 20\n");
  }
  refusals();
  nhgd_data_destroy(&data);
  const int status = mc_finish("cross_rows");
  MPI_Finalize();
  return status;
}
