/* The outer optimisers (src/outer/optim.c; docs/algorithm.md 1, step 5) at any rank count:
 *   step     lazy-adam leaves every entry with h = 0 (-0.0 included) exactly as it was, m, s
 *            and v, and moves the others as a straightforward replay of the formula with the
 *            global step's bias corrections; on a dense h it equals adam bit for bit, with
 *            every schedule;
 *   solver   hyperclean with a cross term that zeroes about three rows in four at each outer
 *            step (as a sampled cross term does): a lazy-adam run stopped inside an inner loop
 *            and between outer steps, then resumed, equals the uninterrupted run bit for bit
 *            and differs from adam's; a checkpoint written with adam refuses a lazy-adam run
 *            and one written with lazy-adam an adam run, with the message of every trajectory
 *            option. */
#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "common/run_opts.h"
#include "common/synth_data.h"
#include "nhgd/nhgd.h"
#include "outer/engine.h"

#include "common/mpi_check.h"

#define N_ENT 64
#define STEPS 8

static void opts_for(nhgd_solver_opts *o, const char *opt, const char *schedule) {
  memset(o, 0, sizeof *o);
  snprintf(o->outer_opt, sizeof o->outer_opt, "%s", opt);
  snprintf(o->outer_schedule, sizeof o->outer_schedule, "%s", schedule);
  o->outer_decay = 0.3;
  o->adam_beta1 = 0.9, o->adam_beta2 = 0.999, o->adam_eps = 1e-8;
}

static int same_bits(const double *a, const double *b, int n) {
  return memcmp(a, b, sizeof(double) * (size_t)n) == 0;
}

/* lazy-adam on hypergradients with a changing pattern of zeros, against a replay of the
 * formula entry by entry. Entry 0 is always 0, entry 1 always -0.0, entry 2 never 0. */
static void check_sparse_steps(void) {
  nhgd_solver_opts o;
  opts_for(&o, "lazy-adam", "const");
  double m[N_ENT] = {0}, s[N_ENT] = {0}, v[N_ENT], h[N_ENT];
  double rm[N_ENT] = {0}, rs[N_ENT] = {0}, rv[N_ENT];
  double m0[N_ENT], s0[N_ENT], v0[N_ENT];
  for (int j = 0; j < N_ENT; ++j)
    v[j] = rv[j] = 0.1 * j - 1.0;
  int untouched_ok = 1, moved = 0, zeros = 0;
  double worst = 0.0;
  for (int k = 0; k < STEPS; ++k) {
    for (int j = 0; j < N_ENT; ++j) {
      const int keep = j == 2 || (j > 2 && nhgd_rng_below(3, NHGD_STREAM_INIT, 40, k, j, 3) == 0);
      h[j] = keep ? nhgd_rng_normal(3, NHGD_STREAM_INIT, 41, k, j) : (j == 1 ? -0.0 : 0.0);
    }
    memcpy(m0, m, sizeof m), memcpy(s0, s, sizeof s), memcpy(v0, v, sizeof v);
    nhgd_outer_step(&o, 0.05, k, N_ENT, m, s, v, h);
    const double c1 = 1.0 - pow(0.9, k + 1.0), c2 = 1.0 - pow(0.999, k + 1.0);
    for (int j = 0; j < N_ENT; ++j) {
      if (h[j] == 0.0) {
        untouched_ok &= same_bits(m + j, m0 + j, 1) && same_bits(s + j, s0 + j, 1) &&
                        same_bits(v + j, v0 + j, 1);
        ++zeros;
        continue;
      }
      rm[j] = 0.9 * rm[j] + 0.1 * h[j];
      rs[j] = 0.999 * rs[j] + 0.001 * h[j] * h[j];
      rv[j] -= 0.05 * (rm[j] / c1) / (sqrt(rs[j] / c2) + 1e-8);
      moved += v[j] != v0[j];
      const double e[] = {fabs(m[j] - rm[j]) / fabs(rm[j]), fabs(s[j] - rs[j]) / fabs(rs[j]),
                          fabs(v[j] - rv[j]) / (1.0 + fabs(rv[j]))};
      for (int q = 0; q < 3; ++q)
        worst = e[q] > worst || isnan(e[q]) ? e[q] : worst;
    }
  }
  mc_check(untouched_ok && zeros > 0,
           "lazy-adam: the %d entries with h = 0 over %d steps kept m, s and v bit for bit", zeros,
           STEPS);
  mc_check(worst <= 1e-14 && moved > 0,
           "lazy-adam: the %d entries with h != 0 follow the formula with the global step's bias "
           "corrections (largest relative difference %.1e)",
           moved, worst);
  mc_check(v[0] == rv[0] && m[0] == 0.0 && v[1] == rv[1] && s[1] == 0.0,
           "lazy-adam: entries with h = 0 and h = -0.0 at every step never moved");
}

/* On a dense h, lazy-adam and adam give the same m, s and v bit for bit at every step. */
static void check_dense_equals_adam(const char *schedule) {
  nhgd_solver_opts oa, ol;
  opts_for(&oa, "adam", schedule);
  opts_for(&ol, "lazy-adam", schedule);
  double ma[N_ENT] = {0}, sa[N_ENT] = {0}, va[N_ENT], ml[N_ENT] = {0}, sl[N_ENT] = {0}, vl[N_ENT];
  double h[N_ENT];
  for (int j = 0; j < N_ENT; ++j)
    va[j] = vl[j] = 0.5 - 0.01 * j;
  int same = 1;
  for (int k = 0; k < STEPS; ++k) {
    for (int j = 0; j < N_ENT; ++j) {
      h[j] = nhgd_rng_normal(4, NHGD_STREAM_INIT, 42, k, j);
      if (h[j] == 0.0) h[j] = 1e-3;
    }
    nhgd_outer_step(&oa, 0.1, k, N_ENT, ma, sa, va, h);
    nhgd_outer_step(&ol, 0.1, k, N_ENT, ml, sl, vl, h);
    same &= same_bits(ma, ml, N_ENT) && same_bits(sa, sl, N_ENT) && same_bits(va, vl, N_ENT);
  }
  mc_check(same, "dense h, --outer-schedule %s: lazy-adam equals adam bit for bit over %d steps",
           schedule, STEPS);
}

/* ---- the solver ---- */

static int (*full_cross)(const nhgd_problem *, const double *, const double *, const double *,
                         double *);

/* A stand-in for a sampled cross term: hyperclean's J^T u with the entries of about three rows
 * in four set to 0, which rows chosen from the global row and the bits of theta[0] (the same on
 * every rank, and after a restart, as theta is). */
static int sampled_cross(const nhgd_problem *pb, const double *theta, const double *v,
                         const double *u, double *out) {
  const int rc = full_cross(pb, theta, v, u, out);
  uint64_t bits;
  memcpy(&bits, theta, sizeof bits);
  const nhgd_split *tr = &pb->data->train;
  for (int i = 0; i < tr->n_local; ++i)
    if (nhgd_rng_below(bits, NHGD_STREAM_INIT, 43, (uint64_t)(tr->lo + i), 0, 4) != 0) out[i] = 0.0;
  return rc;
}

/* Remove a flat folder (checkpoints) and what it holds; rank 0, before the runs. */
static void remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char path[512];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

typedef struct run_result {
  int rc, resumed;
  char msg[512];
  double theta[64], v[128];
  int64_t d, nv;
} run_result;

/* One run of hyperclean with the sampled cross term: outer optimiser opt, checkpoints in dir
 * ("" for none), stopping after halt inner steps (0: never). */
static void run(const nhgd_data *data, const char *opt, const char *dir, int64_t halt,
                run_result *r) {
  memset(r, 0, sizeof *r);
  test_opts t;
  test_opts_default(&t);
  snprintf(t.problem, sizeof t.problem, "hyperclean");
  snprintf(t.estimator, sizeof t.estimator, "nhgd");
  snprintf(t.outer_opt, sizeof t.outer_opt, "%s", opt);
  t.outer_steps = 5, t.inner_steps = 7, t.batch = 16, t.inner_lr = 0.5, t.outer_lr = 0.5;
  t.eval_every = 0, t.log_level = 0, t.seed = 9;
  nhgd_options *oh = test_opts_handle(&t);
  MC_REQUIRE(!nhgd_options_set_string(oh, "checkpoint-dir", dir) &&
                 !nhgd_options_set_int(oh, "halt-after", halt),
             "checkpoint options refused: %s", nhgd_error_message());
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  int rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create_from_options(oh, data, &pb));
  MC_REQUIRE(!rc, "problem: %s", nhgd_error_message());
  full_cross = pb->ops.cross;
  pb->ops.cross = sampled_cross;
  rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
  if (!rc) {
    r->resumed = nhgd_solver_resumed(s);
    rc = nhgd_solver_run(s);
  }
  r->rc = rc;
  if (rc) snprintf(r->msg, sizeof r->msg, "%s", nhgd_error_message());
  nhgd_error_clear();
  if (s) {
    r->d = pb->d, r->nv = nhgd_solver_v_local(s);
    MC_REQUIRE(r->d <= 64 && r->nv <= 128, "sizes d = %lld, v = %lld", (long long)r->d,
               (long long)r->nv);
    memcpy(r->theta, nhgd_solver_theta(s), sizeof(double) * (size_t)r->d);
    memcpy(r->v, nhgd_solver_v(s), sizeof(double) * (size_t)r->nv);
  }
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  nhgd_options_destroy(&oh);
}

static int same_run(const run_result *a, const run_result *b) {
  return mc_all(a->d == b->d && a->nv == b->nv && same_bits(a->theta, b->theta, (int)a->d) &&
                same_bits(a->v, b->v, (int)a->nv));
}

static void check_solver(void) {
  const int P = mc_size();
  nhgd_data *data = NULL;
  char path[64], ck[3][64];
  snprintf(path, sizeof path, "optim_np%d.h5", P);
  const synth_data_sizes sizes = {
      .n_train = 97, .n_val = 31, .n_test = 10, .classes = 3, .noise = 1, .seed = 6};
  MC_REQUIRE(!synth_data_write("logistic", path, 5, &sizes) &&
                 !nhgd_data_load(MPI_COMM_WORLD, path, &data),
             "data: %s", nhgd_error_message());
  const char *names[] = {"lazy_halt3", "lazy_halt14", "adam_halt3"};
  for (int c = 0; c < 3; ++c) {
    snprintf(ck[c], sizeof ck[c], "optim_ck_%s_np%d", names[c], P);
    if (mc_rank() == 0) remove_folder(ck[c]);
  }
  MPI_Barrier(MPI_COMM_WORLD);

  run_result ref, adam, a, b;
  run(data, "lazy-adam", "", 0, &ref);
  run(data, "adam", "", 0, &adam);
  MC_REQUIRE(mc_all(!ref.rc && !adam.rc), "reference runs: %s%s", ref.msg, adam.msg);
  mc_check(!same_run(&ref, &adam), "sampled cross term: lazy-adam and adam runs differ");

  /* Stopped inside the first inner loop and after two outer steps, resumed to the end. */
  const int64_t halts[] = {3, 14};
  for (int c = 0; c < 2; ++c) {
    run(data, "lazy-adam", ck[c], halts[c], &a);
    mc_check(mc_all(a.rc == NHGD_STOPPED), "lazy-adam stopped after %lld inner steps",
             (long long)halts[c]);
    run(data, "lazy-adam", ck[c], 0, &b);
    mc_check(mc_all(!b.rc && b.resumed) && same_run(&b, &ref),
             "lazy-adam stopped after %lld inner steps and resumed: bit-identical to the "
             "uninterrupted run",
             (long long)halts[c]);
  }

  /* A changed --outer-opt is refused like any trajectory option, both ways. */
  run(data, "adam", ck[0], 0, &a);
  mc_check(mc_all(a.rc == NHGD_ERR_ARG &&
                  strstr(a.msg, "was written with --outer-opt lazy-adam but this run has "
                                "--outer-opt adam")),
           "adam on a lazy-adam checkpoint refused: %s", a.msg);
  run(data, "adam", ck[2], 3, &a);
  run(data, "lazy-adam", ck[2], 0, &b);
  mc_check(mc_all(a.rc == NHGD_STOPPED && b.rc == NHGD_ERR_ARG &&
                  strstr(b.msg, "was written with --outer-opt adam but this run has "
                                "--outer-opt lazy-adam")),
           "lazy-adam on an adam checkpoint refused: %s", b.msg);

  MPI_Barrier(MPI_COMM_WORLD);
  if (mc_rank() == 0) {
    for (int c = 0; c < 3; ++c)
      remove_folder(ck[c]);
    remove(path);
  }
  nhgd_data_destroy(&data);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  mc_expected_np();
  check_sparse_steps();
  check_dense_equals_adam("const");
  check_dense_equals_adam("invsqrt");
  check_dense_equals_adam("inv");
  check_solver();
  const int status = mc_finish("outer optimisers");
  MPI_Finalize();
  return status;
}
