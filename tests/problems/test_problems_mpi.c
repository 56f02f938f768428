/* hyperclean on rows sharded over ranks: per-sample cross terms, gradients and evaluation
 * agree with one process holding all rows, and cross matches finite differences of the
 * distributed inner gradient. Runs at 1, 2 and 4 ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "nhgd/errors.h"
#include "nhgd/problem.h"
#include "pb_testdata.h"

#include "common/mpi_check.h"

#define SEED 77u
#define M 5
#define NCLASS 3
#define NTRAIN 23 /* not a multiple of 2 or 4: uneven shards */
#define NVAL 11
#define NTEST 7
#define FD_H 1e-6

static double *vec(int64_t n) {
  double *x = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
  if (!x) MPI_Abort(MPI_COMM_WORLD, 2);
  return x;
}

static void must(int rc, const char *what) {
  MC_REQUIRE(rc == 0, "%s failed: %s", what, nhgd_error_message());
}

/* <grad_theta g(v, theta), u> over the rows of all ranks (collective). */
static double phi(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                  const int *rows) {
  int64_t d = pb->d;
  double *g = vec(d), loss;
  must(pb->ops.inner_grad(pb, theta, v, pb->data->train.n_local, rows, g, &loss), "inner_grad");
  MPI_Allreduce(MPI_IN_PLACE, g, (int)d, MPI_DOUBLE, MPI_SUM, pb->data->comm);
  for (int64_t k = 0; k < d; k++)
    g[k] /= (double)pb->data->train.n_global;
  must(pb->ops.reg(pb, theta, v, NULL, g, NULL), "reg");
  double s = 0.0;
  for (int64_t k = 0; k < d; k++)
    s += g[k] * u[k];
  free(g);
  return s;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  /* The sharded data, and the same rows all held by this process. */
  nhgd_data shard, full;
  td_make(&shard, MPI_COMM_WORLD, SEED, M, NCLASS, NTRAIN, NVAL, NTEST);
  td_make(&full, MPI_COMM_SELF, SEED, M, NCLASS, NTRAIN, NVAL, NTEST);
  nhgd_problem *ps = NULL, *pf = NULL;
  must(nhgd_problem_create("hyperclean", &shard, NULL, &ps), "create (shard)");
  must(nhgd_problem_create("hyperclean", &full, NULL, &pf), "create (full)");
  MC_EXPECT(ps->p == NTRAIN && ps->v_per_sample == 1, "p = %lld and v_per_sample = %d",
            (long long)ps->p, ps->v_per_sample);

  const int64_t d = ps->d, lo = shard.train.lo;
  const int nl = shard.train.n_local;
  double *theta = vec(d), *u = vec(d), *vfull = vec(NTRAIN), *vloc = vec(nl);
  td_fill(theta, d, SEED, 1, 0.5);
  td_fill(u, d, SEED, 2, 1.0);
  td_fill(vfull, NTRAIN, SEED, 3, 1.0);
  memcpy(vloc, vfull + lo, (size_t)nl * sizeof(double));
  int *rows = malloc((size_t)(nl > 0 ? nl : 1) * sizeof(int)), all[NTRAIN];
  for (int i = 0; i < nl; i++)
    rows[i] = i;
  for (int i = 0; i < NTRAIN; i++)
    all[i] = i;

  /* init sets this rank's slice only. */
  double *v0 = vec(nl), *t0 = vec(d);
  must(ps->ops.init(ps, t0, v0), "init");
  for (int i = 0; i < nl; i++)
    MC_EXPECT(v0[i] == 0.0, "init v (error %.3e)", v0[i]);

  /* Cross: this rank's entries equal the full problem's entries lo .. lo+nl-1. */
  double *out = vec(nl), *outf = vec(NTRAIN);
  must(ps->ops.cross(ps, theta, vloc, u, out), "cross (shard)");
  must(pf->ops.cross(pf, theta, vfull, u, outf), "cross (full)");
  double err = 0.0;
  for (int i = 0; i < nl; i++)
    err = fmax(err, fabs(out[i] - outf[lo + i]) / fmax(fabs(outf[lo + i]), 1e-12));
  MC_EXPECT(err <= 1e-12, "sharded cross vs one process (error %.3e)", err);

  /* Cross against finite differences of the distributed phi, one global entry at a time:
   * only the owner perturbs its slice, every rank joins the allreduce. */
  double fderr = 0.0, scale = 1e-4;
  for (int64_t gi = 0; gi < NTRAIN; gi++) {
    int mine = gi >= lo && gi < lo + nl;
    double save = mine ? vloc[gi - lo] : 0.0;
    if (mine) vloc[gi - lo] = save + FD_H;
    double pp = phi(ps, theta, vloc, u, rows);
    if (mine) vloc[gi - lo] = save - FD_H;
    double pm = phi(ps, theta, vloc, u, rows);
    if (mine) {
      vloc[gi - lo] = save;
      double fd = (pp - pm) / (2 * FD_H);
      fderr = fmax(fderr, fabs(fd - out[gi - lo]));
      scale = fmax(scale, fabs(out[gi - lo]));
    }
  }
  MC_EXPECT(fderr <= 1e-6 * scale, "cross vs finite differences (distributed) (error %.3e)",
            fderr / scale);

  /* Inner gradient summed over ranks equals the one-process gradient. */
  double *g = vec(d + 1), *gf = vec(d), lossf;
  must(ps->ops.inner_grad(ps, theta, vloc, nl, rows, g, &g[d]), "inner_grad (shard)");
  MPI_Allreduce(MPI_IN_PLACE, g, (int)d + 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  must(pf->ops.inner_grad(pf, theta, vfull, NTRAIN, all, gf, &lossf), "inner_grad (full)");
  err = td_relerr(g, gf, d, 1e-12);
  MC_EXPECT(err <= 1e-12, "allreduced inner_grad (error %.3e)", err);
  MC_EXPECT(fabs(g[d] - lossf) <= 1e-12 * lossf, "allreduced inner loss (error %.3e)",
            fabs(g[d] - lossf));

  /* Evaluation on val and test summed over ranks equals the one-process evaluation. */
  const nhgd_split *ss[2] = {&shard.val, &shard.test}, *sf[2] = {&full.val, &full.test};
  for (int k = 0; k < 2; k++) {
    double *ge = vec(d + 1), *gef = vec(d), lf;
    int64_t c, cf;
    must(ps->ops.eval(ps, ss[k], theta, vloc, &ge[d], ge, &c), "eval (shard)");
    MPI_Allreduce(MPI_IN_PLACE, ge, (int)d + 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &c, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    must(pf->ops.eval(pf, sf[k], theta, vfull, &lf, gef, &cf), "eval (full)");
    err = td_relerr(ge, gef, d, 1e-12);
    MC_EXPECT(err <= 1e-12, "allreduced eval gradient (error %.3e)", err);
    MC_EXPECT(fabs(ge[d] - lf) <= 1e-12 * lf, "allreduced eval loss (error %.3e)",
              fabs(ge[d] - lf));
    MC_EXPECT(c == cf, "allreduced correct count %lld, one process %lld", (long long)c,
              (long long)cf);
    free(ge);
    free(gef);
  }

  const int status = mc_finish("hyperclean sharded");
  nhgd_problem_destroy(&ps);
  nhgd_problem_destroy(&pf);
  td_free(&shard);
  td_free(&full);
  free(theta);
  free(u);
  free(vfull);
  free(vloc);
  free(rows);
  free(v0);
  free(t0);
  free(out);
  free(outf);
  free(g);
  free(gf);
  MPI_Finalize();
  return status;
}
