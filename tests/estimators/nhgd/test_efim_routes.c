/* The NHGD routes (online, accumulate, gram) give the same u as a direct dense solve of
 * M u = g to 1e-10 relative: every built-in problem, both per-sample forms, mean and moving
 * average, every grid shape of the rank count, block sizes that do not divide d. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "common/synth_data.h"
#include "common/run_opts.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

static int P, rank_;

/* u of one hypergrad run; returns 0 on success. */
static int run_u(const nhgd_data *data, const char *problem, const test_opts *o, double *u,
                 int64_t *d) {
  nhgd_options *oh = test_opts_handle(o);
  int rc = test_hypergrad_u(data, problem, oh, o->v_init, u, d);
  nhgd_options_destroy(&oh);
  return rc;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  char ridge_path[64], cls_path[64];
  snprintf(ridge_path, sizeof ridge_path, "efim_ridge_np%d.h5", P);
  snprintf(cls_path, sizeof cls_path, "efim_cls_np%d.h5", P);
  const synth_data_sizes sizes = {
      .n_train = 157, .n_val = 41, .n_test = 20, .classes = 4, .noise = 1, .seed = 11};
  if (synth_data_write("ridge", ridge_path, 23, &sizes) ||
      synth_data_write("logistic", cls_path, 7, &sizes)) {
    if (rank_ == 0) fprintf(stderr, "data: %s\n", nhgd_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  nhgd_data *ridge = NULL, *cls = NULL;
  if (nhgd_data_load(MPI_COMM_WORLD, ridge_path, &ridge) ||
      nhgd_data_load(MPI_COMM_WORLD, cls_path, &cls)) {
    if (rank_ == 0) fprintf(stderr, "load: %s\n", nhgd_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const char *problems[] = {"ridge", "logreg", "hyperclean"};
  const char *routes[] = {"online", "accumulate", "gram"};
  double u[256], ref[256];
  for (int ip = 0; ip < 3; ++ip)
    for (int kron = 0; kron <= 1; ++kron)
      for (int ema = 0; ema <= 1; ++ema)
        for (int nprow = 1; nprow <= P; ++nprow) {
          if (P % nprow) continue;
          for (int nb = 3; nb <= 5; nb += 2) {
            if (ip == 0 && kron) continue; /* ridge has no Kronecker form */
            test_opts o;
            test_opts_default(&o);
            snprintf(o.problem, sizeof o.problem, "%s", problems[ip]);
            snprintf(o.estimator, sizeof o.estimator, "nhgd");
            snprintf(o.efim_mode, sizeof o.efim_mode, "%s", ema ? "ema" : "mean");
            o.efim_beta = 0.7;
            o.kron = kron;
            o.grid_rows = nprow;
            o.block_size = nb;
            o.inner_steps = 5;
            o.batch = 9;
            o.inner_lr = ip == 0 ? 0.05 : 0.5;
            o.v_init = ip == 2 ? 0.3 : -0.5;
            o.efim_damping = 1e-3;
            o.log_level = 0;
            o.seed = 3;
            const nhgd_data *data = ip == 0 ? ridge : cls;
            int64_t d = 0;
            snprintf(o.efim_route, sizeof o.efim_route, "dense");
            if (run_u(data, problems[ip], &o, ref, &d)) {
              mc_check(0, "%s dense route failed: %s", problems[ip], nhgd_error_message());
              continue;
            }
            for (int r = 0; r < 3; ++r) {
              snprintf(o.efim_route, sizeof o.efim_route, "%s", routes[r]);
              o.overlap = (r + nb) % 2; /* both with and without overlap */
              if (run_u(data, problems[ip], &o, u, &d)) {
                mc_check(0, "%s route %s failed: %s", problems[ip], routes[r],
                         nhgd_error_message());
                continue;
              }
              const double err = mc_rel(u, ref, d);
              MC_EXPECT(err < 1e-10, "%s route %s kron %d %s grid %dx%d nb %d: relative error %.3e",
                        problems[ip], routes[r], kron, ema ? "ema" : "mean", nprow, P / nprow, nb,
                        err);
            }
          }
        }
  nhgd_data_destroy(&ridge);
  nhgd_data_destroy(&cls);
  const int status = mc_finish("efim routes");
  MPI_Finalize();
  return status;
}
