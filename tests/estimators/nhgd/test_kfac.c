/* The kfac route: its solve against a dense solve of (tau G (x) A + I (x) D_x) u = g built
 * here from the same samples (both G factors, both layouts of A, every grid shape, a block
 * size that does not divide m), a deliberately wrong eigen-scaling that the comparison must
 * reject, factors kept over later inner loops (--kfac-refresh), M^{-1} applied again after a
 * solve (a preconditioner's repeated applications), and the whole solver: with
 * one sample per step and one step, tau G (x) A is the empirical Fisher itself and kfac
 * equals the dense route. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "linalg/bcmat.h"
#include "common/run_opts.h"
#include "common/synth_data.h"
#include "estimators/nhgd/kfac.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info, size_t len);

static int P, rank_;

enum { M = 13, C = 4, N = 37, D = M * C };

/* Samples known to every rank: x (M x N), r (C x N), p (C x N, a probability vector each),
 * inner weights c, Fisher weights w. */
typedef struct {
  double x[M * N], r[C * N], p[C * N], Am[C * C * N], c[N], w[N], g[D], Dx[M];
} samples;

static void make_samples(samples *s, uint64_t seed) {
  for (int k = 0; k < N; ++k) {
    double z = 0.0;
    for (int j = 0; j < M; ++j)
      s->x[j + k * M] = nhgd_rng_normal(seed, 1, (uint64_t)k, (uint64_t)j, 0);
    for (int i = 0; i < C; ++i) {
      s->p[i + k * C] = exp(nhgd_rng_normal(seed, 2, (uint64_t)k, (uint64_t)i, 0));
      z += s->p[i + k * C];
    }
    const int y = (int)nhgd_rng_below(seed, 3, (uint64_t)k, 0, 0, C);
    s->c[k] = 0.2 + nhgd_rng_uniform(seed, 4, (uint64_t)k, 0, 0);
    s->w[k] = s->c[k] * (0.5 + nhgd_rng_uniform(seed, 5, (uint64_t)k, 0, 0)) / N;
    for (int i = 0; i < C; ++i) {
      s->p[i + k * C] /= z;
      s->r[i + k * C] = s->p[i + k * C] - (i == y);
    }
    for (int b = 0; b < C; ++b)
      for (int a = 0; a < C; ++a)
        s->Am[a + b * C + k * C * C] =
            s->c[k] * ((a == b ? s->p[a + k * C] : 0.0) - s->p[a + k * C] * s->p[b + k * C]);
  }
  for (int i = 0; i < D; ++i)
    s->g[i] = nhgd_rng_normal(seed, 6, (uint64_t)i, 0, 0);
  for (int j = 0; j < M; ++j) /* per-feature damping, as logreg has */
    s->Dx[j] = 0.05 + 0.3 * nhgd_rng_uniform(seed, 7, (uint64_t)j, 0, 0);
}

/* u from a dense solve of (tau Gp (x) A + I (x) D_x) u = g, where Gp = G^power (power 1 is
 * the right system; 2 is a wrong eigen-scaling of the same factors). */
static void dense_reference(const samples *s, int model, int power, double *u) {
  double A[M * M] = {0}, G[C * C] = {0}, G2[C * C] = {0}, trF = 0.0, trA = 0.0, trG = 0.0;
  for (int k = 0; k < N; ++k) {
    double xx = 0.0, rr = 0.0;
    for (int j = 0; j < M; ++j)
      xx += s->x[j + k * M] * s->x[j + k * M];
    for (int b = 0; b < M; ++b)
      for (int a = 0; a < M; ++a)
        A[a + b * M] += s->w[k] * s->x[a + k * M] * s->x[b + k * M];
    for (int b = 0; b < C; ++b)
      for (int a = 0; a < C; ++a) {
        double gab =
            model ? s->Am[a + b * C + k * C * C] / s->c[k] : s->r[a + k * C] * s->r[b + k * C];
        G[a + b * C] += s->w[k] * gab;
        if (a == b) rr += gab;
      }
    trF += s->w[k] * xx * rr;
  }
  for (int j = 0; j < M; ++j)
    trA += A[j + j * M];
  for (int i = 0; i < C; ++i)
    trG += G[i + i * C];
  const double tau = trF / (trA * trG);
  for (int b = 0; b < C; ++b)
    for (int a = 0; a < C; ++a)
      for (int q = 0; q < C; ++q)
        G2[a + b * C] += G[a + q * C] * G[q + b * C];
  const double *Gp = power == 2 ? G2 : G;
  static double Mx[D * D];
  memset(Mx, 0, sizeof Mx);
  for (int cb = 0; cb < C; ++cb)
    for (int ca = 0; ca < C; ++ca)
      for (int jb = 0; jb < M; ++jb)
        for (int ja = 0; ja < M; ++ja)
          Mx[(ja + ca * M) + (size_t)(jb + cb * M) * D] =
              tau * Gp[ca + cb * C] * A[ja + jb * M] + (ca == cb && ja == jb ? s->Dx[ja] : 0.0);
  memcpy(u, s->g, sizeof(double) * D);
  int n = D, one = 1, info = 0;
  dposv_("L", &n, &one, Mx, &n, u, &n, &info, 1);
  if (info) {
    fprintf(stderr, "dense reference: dposv info %d\n", info);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

/* Add these samples to k: every rank its share (sample k to rank k mod P); the distributed
 * layout also gets every sample as a packed all-gathered column. */
static int kfac_add(nhgd_kfac *k, const samples *s, int distributed) {
  double X[M * N], R[C * N], Am[C * C * N], c[N], w[N], packed[(1 + M + C) * N];
  int nb_local = 0, rc = 0;
  for (int k2 = 0; k2 < N; ++k2) {
    double *p = packed + (size_t)k2 * (1 + M + C);
    p[0] = sqrt(s->w[k2]);
    memcpy(p + 1, s->x + k2 * M, sizeof(double) * M);
    memcpy(p + 1 + M, s->r + k2 * C, sizeof(double) * C);
    if (k2 % P != rank_) continue;
    memcpy(X + nb_local * M, s->x + k2 * M, sizeof(double) * M);
    memcpy(R + nb_local * C, s->r + k2 * C, sizeof(double) * C);
    memcpy(Am + nb_local * C * C, s->Am + k2 * C * C, sizeof(double) * C * C);
    c[nb_local] = s->c[k2];
    w[nb_local] = s->w[k2];
    ++nb_local;
  }
  /* In two halves, as two inner steps would add them. */
  const int half = nb_local / 2;
  nhgd_kfac_add_local(k, half, X, R, Am, c, w);
  if (distributed) rc = nhgd_kfac_add_gathered(k, N / 2, packed, 1 + M + C);
  nhgd_kfac_add_local(k, nb_local - half, X + half * M, R + half * C, Am + half * C * C, c + half,
                      w + half);
  if (!rc && distributed)
    rc = nhgd_kfac_add_gathered(k, N - N / 2, packed + (size_t)(N / 2) * (1 + M + C), 1 + M + C);
  return rc;
}

/* kfac's u for these samples. */
static int kfac_u(const samples *s, int model, int distributed, const nhgd_grid *grid, int nb,
                  double *u) {
  nhgd_kfac k;
  int rc = nhgd_kfac_init(&k, MPI_COMM_WORLD, M, C, N, model, distributed, 1, grid, nb);
  if (rc) return rc;
  nhgd_kfac_reset(&k, 1);
  rc = kfac_add(&k, s, distributed);
  if (!rc) rc = nhgd_kfac_solve(&k, s->Dx, s->g, u, 1);
  nhgd_kfac_free(&k);
  return rc;
}

/* --kfac-refresh: the factors summed in one inner loop serve the next ones, which add
 * nothing: a second right-hand side with the same damping (the kept Cholesky factors), then
 * one with another damping (refactored from the kept A), each against the dense solve of the
 * first loop's factors. */
static void refresh_cases(const samples *s, int model, int distributed, const nhgd_grid *grid,
                          int nb, const char *what) {
  samples s2 = *s, s3 = *s;
  for (int i = 0; i < D; ++i)
    s2.g[i] = nhgd_rng_normal(23, 6, (uint64_t)i, 0, 0);
  for (int j = 0; j < M; ++j)
    s3.Dx[j] = 2.0 * s->Dx[j] + 0.01 * j;
  double want[3][D], got[3][D];
  dense_reference(s, model, 1, want[0]);
  dense_reference(&s2, model, 1, want[1]);
  dense_reference(&s3, model, 1, want[2]);
  nhgd_kfac k;
  int rc = nhgd_kfac_init(&k, MPI_COMM_WORLD, M, C, N, model, distributed, 3, grid, nb);
  if (!rc) {
    nhgd_kfac_reset(&k, 1);
    rc = kfac_add(&k, s, distributed);
  }
  if (!rc) rc = nhgd_kfac_solve(&k, s->Dx, s->g, got[0], 1);
  const samples *later[2] = {&s2, &s3};
  for (int i = 0; i < 2 && !rc; ++i) {
    nhgd_kfac_reset(&k, 0);
    rc = nhgd_kfac_solve(&k, later[i]->Dx, later[i]->g, got[i + 1], 0);
  }
  const char *step[3] = {"the loop that sums", "a later loop, same damping",
                         "a later loop, another damping"};
  for (int i = 0; i < 3; ++i) {
    mc_check(!rc && mc_rel(got[i], want[i], D) < 1e-10, "refresh 3: relative error %.2e < 1e-10",
             rc ? INFINITY : mc_rel(got[i], want[i], D));
    if (rank_ == 0) printf("     (%s; %s, G %s)\n", step[i], what, model ? "model" : "empirical");
  }
  /* Able to fail: the later loops' answers differ from the first one's. */
  const double d1 = mc_rel(want[1], want[0], D), d2 = mc_rel(want[2], want[0], D);
  mc_check(d1 > 1e-2 && d2 > 1e-2,
           "the later loops' right-hand side and damping change u (smaller change %.2e > 1e-2)",
           d1 < d2 ? d1 : d2);
  nhgd_kfac_free(&k);
}

/* As a preconditioner: after the solve of an inner loop, M^{-1} applied again
 * (nhgd_kfac_reapply; the replicated layout keeps its factors also with refresh 1) to another
 * right-hand side, against the dense solve, and to the first one, bit for bit its u. */
static void repeat_cases(const samples *s, int model, int distributed, const nhgd_grid *grid,
                         int nb, const char *what) {
  samples s2 = *s;
  for (int i = 0; i < D; ++i)
    s2.g[i] = nhgd_rng_normal(29, 6, (uint64_t)i, 0, 0);
  double want[D], got[3][D];
  dense_reference(&s2, model, 1, want);
  nhgd_kfac k;
  int rc = nhgd_kfac_init(&k, MPI_COMM_WORLD, M, C, N, model, distributed, 1, grid, nb);
  if (!rc) rc = nhgd_kfac_keep_factors(&k);
  if (!rc) {
    nhgd_kfac_reset(&k, 1);
    rc = kfac_add(&k, s, distributed);
  }
  if (!rc) rc = nhgd_kfac_solve(&k, s->Dx, s->g, got[0], 1);
  if (!rc) rc = nhgd_kfac_reapply(&k, s->Dx, s2.g, got[1]);
  if (!rc) rc = nhgd_kfac_reapply(&k, s->Dx, s->g, got[2]);
  const double e = rc ? INFINITY : mc_rel(got[1], want, D);
  mc_check(!rc && e < 1e-10 && !memcmp(got[2], got[0], sizeof got[0]),
           "applied again: another right-hand side %.2e < 1e-10, the first one bit for bit (%s, "
           "G %s)",
           e, what, model ? "model" : "empirical");
  nhgd_kfac_free(&k);
}

static void kernel_cases(void) {
  samples s;
  make_samples(&s, 17);
  double want[D], wrong[D], got[D];
  for (int model = 0; model < 2; ++model) {
    dense_reference(&s, model, 1, want);
    dense_reference(&s, model, 2, wrong);
    /* The comparison must be able to fail: a wrong eigen-scaling is far off. */
    mc_check(mc_rel(wrong, want, D) > 1e-3,
             "a wrong eigen-scaling (G^2 for G) is rejected: relative difference %.2e > 1e-3",
             mc_rel(wrong, want, D));
    int rc = kfac_u(&s, model, 0, NULL, 0, got);
    mc_check(!rc && mc_rel(got, want, D) < 1e-10, "replicated A: relative error %.2e < 1e-10",
             rc ? INFINITY : mc_rel(got, want, D));
    if (rank_ == 0) printf("     (G %s, %d ranks)\n", model ? "model" : "empirical", P);
    refresh_cases(&s, model, 0, NULL, 0, "replicated A");
    repeat_cases(&s, model, 0, NULL, 0, "replicated A");
    for (int nprow = 1; nprow <= P; ++nprow) {
      if (P % nprow) continue;
      nhgd_grid *grid = NULL;
      if (nhgd_grid_create(MPI_COMM_WORLD, nprow, &grid)) MPI_Abort(MPI_COMM_WORLD, 1);
      const int blocks[] = {4, 13, 64};
      for (int b = 0; b < 3; ++b) {
        rc = kfac_u(&s, model, 1, grid, blocks[b], got);
        mc_check(!rc && mc_rel(got, want, D) < 1e-10, "block-cyclic A: relative error %.2e < 1e-10",
                 rc ? INFINITY : mc_rel(got, want, D));
        if (rank_ == 0)
          printf("     (G %s, grid %d x %d, block %d: m = %d is %sa multiple)\n",
                 model ? "model" : "empirical", nprow, P / nprow, blocks[b], M,
                 M % blocks[b] ? "not " : "");
      }
      refresh_cases(&s, model, 1, grid, 13, "block-cyclic A");
      repeat_cases(&s, model, 1, grid, 13, "block-cyclic A");
      nhgd_grid_destroy(&grid);
    }
  }
}

/* u of one hypergrad run with the given route and G factor. */
static int solver_u(const nhgd_data *data, const char *problem, const test_opts *o,
                    const char *route, const char *g_factor, double *u, int64_t *d) {
  nhgd_options *oh = test_opts_handle(o);
  int rc = nhgd_options_set_string(oh, "efim-route", route);
  if (!rc) rc = nhgd_options_set_string(oh, "kfac-g", g_factor);
  if (!rc) rc = test_hypergrad_u(data, problem, oh, o->v_init, u, d);
  nhgd_options_destroy(&oh);
  return rc;
}

static void solver_cases(const nhgd_data *cls) {
  const char *problems[] = {"logreg", "hyperclean"};
  for (int ip = 0; ip < 4; ++ip) {
    const int ema = ip >= 2;
    test_opts o;
    test_opts_default(&o);
    snprintf(o.problem, sizeof o.problem, "%s", problems[ip % 2]);
    snprintf(o.estimator, sizeof o.estimator, "nhgd");
    snprintf(o.efim_mode, sizeof o.efim_mode, "%s", ema ? "ema" : "mean");
    o.efim_beta = 0.7;
    o.inner_steps = 1;
    o.batch = 1;
    o.inner_lr = 0.5;
    o.v_init = ip % 2 == 0 ? -0.5 : 0.3;
    o.efim_damping = 1e-3;
    o.log_level = 0;
    o.seed = 3;
    double ref[64], u[64];
    int64_t d = 0;
    int rc = solver_u(cls, problems[ip % 2], &o, "dense", "empirical", ref, &d);
    if (!rc) rc = solver_u(cls, problems[ip % 2], &o, "kfac", "empirical", u, &d);
    mc_check(!rc && mc_rel(u, ref, (int)d) < 1e-10,
             "one sample, one step: kfac (empirical G) equals the dense EFIM route, relative "
             "difference %.2e < 1e-10",
             rc ? INFINITY : mc_rel(u, ref, (int)d));
    if (rank_ == 0)
      printf("     (%s, %s step weights, %d ranks)\n", problems[ip % 2], ema ? "EMA" : "mean", P);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  kernel_cases();
  nhgd_data *cls = synth_data_small_cls("kfac_cls", 5);
  solver_cases(cls);
  nhgd_data_destroy(&cls);
  const int status = mc_finish("kfac checks");
  MPI_Finalize();
  return status;
}
