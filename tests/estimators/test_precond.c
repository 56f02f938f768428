/* cg preconditioned by NHGD's M (--precond nhgd), at any rank count:
 *   --hvp-steps 0 equals --estimator nhgd bit for bit (u, the hypergradient and theta after
 *   three outer steps) on logreg and hyperclean (kfac route), ridge (accumulate and dense
 *   routes) and a network (mlp-hyperclean, one K-FAC block per layer);
 *   full batches and large Q equal `exact` to 1e-8 (ridge, logreg);
 *   Q = 2 gives the same u whichever route keeps M (online, accumulate and gram against
 *   dense; the replicated K-FAC layout, whose repeated applications reuse kept Cholesky
 *   factors, against the distributed one, which refactors; a network's layers whole against
 *   block-cyclic): the applications of M^{-1} after the first are right on every route.
 *   Each comparison is shown able to fail: Q = 2 moves u away from NHGD's. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/run_opts.h"
#include "common/synth_data.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

static int P, rank_;

typedef struct result {
  int64_t d, p;
  double *u, *h, *theta;
} result;

static void result_free(result *r) {
  free(r->u), free(r->h), free(r->theta);
  memset(r, 0, sizeof *r);
}

/* A run (outer steps of o) or one hypergradient (full_run 0) with the options of o and the
 * extra name/value pairs (NULL-terminated). */
static int solve(const nhgd_data *data, const test_opts *o, int full_run, result *r,
                 const char *const *extra) {
  nhgd_options *oh = test_opts_handle(o);
  int rc = 0;
  for (int i = 0; extra && extra[i]; i += 2)
    rc |= nhgd_options_set(oh, extra[i], extra[i + 1], "test");
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  memset(r, 0, sizeof *r);
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc ? rc : nhgd_problem_create_from_options(oh, data, &pb));
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
  if (!rc) rc = full_run ? nhgd_solver_run(s) : nhgd_solver_hypergrad(s);
  if (!rc) {
    r->d = pb->d;
    r->p = nhgd_solver_v_local(s);
    r->u = malloc(sizeof(double) * (size_t)r->d);
    r->theta = malloc(sizeof(double) * (size_t)r->d);
    r->h = malloc(sizeof(double) * (size_t)(r->p > 0 ? r->p : 1));
    memcpy(r->u, nhgd_solver_u(s), sizeof(double) * (size_t)r->d);
    memcpy(r->theta, nhgd_solver_theta(s), sizeof(double) * (size_t)r->d);
    memcpy(r->h, nhgd_solver_hypergradient(s), sizeof(double) * (size_t)r->p);
  }
  nhgd_solver_destroy(&s);
  nhgd_options_destroy(&oh);
  nhgd_problem_destroy(&pb);
  return rc;
}

static void base_options(test_opts *o, const char *path, const char *problem) {
  test_opts_default(o);
  snprintf(o->data, sizeof o->data, "%s", path);
  snprintf(o->problem, sizeof o->problem, "%s", problem);
  o->batch = 16;
  o->inner_steps = 6;
  o->inner_lr = 0.3;
  o->noise_sigma = 0.7;
  o->v_init = -0.5;
  o->outer_steps = 3;
  o->eval_every = 0;
  o->seed = 5;
  o->log_level = 0;
}

/* Bit for bit on every rank (each compares its own copy; h is this rank's part). */
static int identical(const result *a, const result *b) {
  return a->d == b->d && a->p == b->p && !memcmp(a->u, b->u, sizeof(double) * (size_t)a->d) &&
         !memcmp(a->theta, b->theta, sizeof(double) * (size_t)a->d) &&
         !memcmp(a->h, b->h, sizeof(double) * (size_t)a->p);
}

/* The relative difference of h over all ranks (h is distributed for per-sample v). */
static double h_rel(const result *a, const result *b) {
  double s[2] = {0, 0};
  for (int64_t i = 0; i < a->p; ++i) {
    s[0] += (a->h[i] - b->h[i]) * (a->h[i] - b->h[i]);
    s[1] += b->h[i] * b->h[i];
  }
  MPI_Allreduce(MPI_IN_PLACE, s, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return sqrt(s[0] / (s[1] > 0.0 ? s[1] : 1.0));
}

/* --hvp-steps 0 against --estimator nhgd, three outer steps. */
static void nhgd_case(const char *path, const nhgd_data *data, const char *problem,
                      const char *route, const char *hidden) {
  test_opts o;
  base_options(&o, path, problem);
  if (!strcmp(problem, "ridge")) o.inner_lr = 0.05;
  snprintf(o.efim_route, sizeof o.efim_route, "%s", route);
  /* the network's width after --precond, when there is one */
  const char *opts[] = {"precond", "nhgd", hidden ? "hidden" : NULL, hidden, NULL};
  result ref = {0}, got = {0};
  snprintf(o.estimator, sizeof o.estimator, "nhgd");
  int rc = solve(data, &o, 1, &ref, opts + 2);
  snprintf(o.estimator, sizeof o.estimator, "cg");
  o.hvp_steps = 0;
  if (!rc) rc = solve(data, &o, 1, &got, opts);
  mc_check(!rc && mc_all(identical(&got, &ref)),
           "%s%s%s, route %s: cg --precond nhgd --hvp-steps 0 = nhgd bit for bit (u, h, theta "
           "after %lld outer steps) on %d ranks%s%s",
           problem, hidden ? " --hidden " : "", hidden ? hidden : "", route,
           (long long)o.outer_steps, P, rc ? ": " : "", rc ? nhgd_error_message() : "");
  result_free(&ref);
  result_free(&got);
}

/* Full batches, deterministic products, Q = 3 d: the preconditioned CG reaches H^{-1} g. */
static void exact_case(const char *path, const nhgd_data *data, const char *problem) {
  test_opts o;
  base_options(&o, path, problem);
  if (!strcmp(problem, "ridge")) o.inner_lr = 0.05;
  o.batch = 0;
  o.hvp_batch = 0;
  result ex = {0}, got = {0};
  snprintf(o.estimator, sizeof o.estimator, "exact");
  int rc = solve(data, &o, 1, &ex, NULL);
  snprintf(o.estimator, sizeof o.estimator, "cg");
  o.hvp_steps = 3 * (int)(rc ? 1 : ex.d);
  const char *pre[] = {"precond", "nhgd", NULL};
  if (!rc) rc = solve(data, &o, 1, &got, pre);
  const double eu = rc ? INFINITY : mc_rel(got.u, ex.u, ex.d);
  const double et = rc ? INFINITY : mc_rel(got.theta, ex.theta, ex.d);
  const double eh = rc ? INFINITY : h_rel(&got, &ex);
  mc_check(!rc && eu < 1e-8 && eh < 1e-8 && et < 1e-8,
           "%s: cg --precond nhgd (full batches, Q = %d) vs exact after %lld outer steps on %d "
           "ranks: u %.2e, h %.2e, theta %.2e (tolerance 1e-8)",
           problem, o.hvp_steps, (long long)o.outer_steps, P, eu, eh, et);
  result_free(&ex);
  result_free(&got);
}

/* Q = 2 with M kept by route `route` (extra options in `what`) against the reference route:
 * one hypergradient, within tol; and Q = 2 differs from Q = 0. */
static void route_case(const char *path, const nhgd_data *data, const char *problem,
                       const char *const *ref_opts, const char *const *opts, const char *what,
                       double tol) {
  test_opts o;
  base_options(&o, path, problem);
  snprintf(o.estimator, sizeof o.estimator, "cg");
  o.hvp_steps = 2;
  o.hvp_batch = 64;
  result ref = {0}, got = {0}, q0 = {0};
  int rc = solve(data, &o, 0, &ref, ref_opts);
  if (!rc) rc = solve(data, &o, 0, &got, opts);
  o.hvp_steps = 0;
  if (!rc) rc = solve(data, &o, 0, &q0, opts);
  const double e = rc ? INFINITY : mc_rel(got.u, ref.u, ref.d);
  const double moved = rc ? 0.0 : mc_rel(got.u, q0.u, ref.d);
  mc_check(!rc && e < tol && moved > 1e-3,
           "%s: cg --precond nhgd --hvp-steps 2 with %s = the reference on %d ranks: u %.2e "
           "(tolerance %g; Q = 2 moves u from NHGD's by %.2e > 1e-3)%s%s",
           problem, what, P, e, tol, moved, rc ? ": " : "", rc ? nhgd_error_message() : "");
  result_free(&ref);
  result_free(&got);
  result_free(&q0);
}

/* K-FAC with A replicated (the class systems' factors kept; a network's layers whole) against
 * A block-cyclic (refactored; a network's layers spread), both with the options `common`. */
static void layout_case(const char *path, const nhgd_data *data, const char *problem,
                        const char *const *common, const char *what, double tol) {
  const char *rep[16], *dist[16];
  int n = 0;
  for (; common[n] && n < 12; ++n)
    rep[n] = dist[n] = common[n];
  rep[n] = dist[n] = "kfac-layout";
  rep[n + 1] = "replicated";
  dist[n + 1] = "distributed";
  rep[n + 2] = dist[n + 2] = NULL;
  char label[96];
  snprintf(label, sizeof label, "%s, A replicated (reference: A block-cyclic)", what);
  route_case(path, data, problem, dist, rep, label, tol);
}

static void route_cases(const char *path, const nhgd_data *data) {
  const char *dense[] = {"precond", "nhgd", "efim-route", "dense", NULL};
  const char *routes[] = {"online", "accumulate", "gram"};
  for (int i = 0; i < 3; ++i) {
    const char *opts[] = {"precond", "nhgd", "efim-route", routes[i], NULL};
    char what[64];
    snprintf(what, sizeof what, "route %s (reference: dense)", routes[i]);
    route_case(path, data, "hyperclean", dense, opts, what, 1e-9);
  }
  const char *kfac[] = {"precond", "nhgd", "efim-route", "kfac", NULL};
  layout_case(path, data, "hyperclean", kfac, "K-FAC", 1e-10);
  const char *refresh[] = {"precond", "nhgd", "efim-route", "kfac", "kfac-refresh", "2", NULL};
  layout_case(path, data, "logreg", refresh, "K-FAC and --kfac-refresh 2", 1e-10);
  /* A network's Hessian is not positive definite: CG runs on its Gauss-Newton part. */
  const char *net[] = {"precond", "nhgd", "hidden", "5,4", "mlp-hvp", "gauss-newton", NULL};
  layout_case(path, data, "mlp-hyperclean", net, "K-FAC per layer", 1e-9);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  P = mc_expected_np();
  char ridge_path[64], cls_path[64];
  snprintf(ridge_path, sizeof ridge_path, "precond_ridge_np%d.h5", P);
  snprintf(cls_path, sizeof cls_path, "precond_cls_np%d.h5", P);
  const synth_data_sizes ridge_sizes = {
      .n_train = 300, .n_val = 120, .n_test = 20, .classes = 3, .noise = 0.7, .seed = 5};
  const synth_data_sizes cls_sizes = {
      .n_train = 200, .n_val = 60, .n_test = 20, .classes = 3, .noise = 0.7, .seed = 5};
  nhgd_data *ridge = NULL, *cls = NULL;
  int rc = synth_data_write("ridge", ridge_path, 12, &ridge_sizes);
  if (!rc) rc = synth_data_write("logistic", cls_path, 6, &cls_sizes);
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, ridge_path, &ridge);
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, cls_path, &cls);
  MC_REQUIRE(!rc, "data: %s", nhgd_error_message());
  nhgd_case(cls_path, cls, "logreg", "kfac", NULL);
  nhgd_case(cls_path, cls, "hyperclean", "kfac", NULL);
  nhgd_case(ridge_path, ridge, "ridge", "accumulate", NULL);
  nhgd_case(ridge_path, ridge, "ridge", "dense", NULL);
  nhgd_case(cls_path, cls, "mlp-hyperclean", "auto", "5,4");
  exact_case(ridge_path, ridge, "ridge");
  exact_case(cls_path, cls, "logreg");
  route_cases(cls_path, cls);
  const int status = mc_finish("precond");
  nhgd_data_destroy(&ridge);
  nhgd_data_destroy(&cls);
  MPI_Finalize();
  return status;
}
