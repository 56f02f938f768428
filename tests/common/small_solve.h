/* Test convenience: one hypergrad or run of a small problem (d and the local p at most 64)
 * through the public API, with the result's vectors copied out. */
#ifndef NHGD_TEST_SMALL_SOLVE_H
#define NHGD_TEST_SMALL_SOLVE_H

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpi_check.h"
#include "common/run_opts.h"
#include "nhgd/nhgd.h"

typedef struct small_result {
  int64_t d, p;
  double u[64], h[64], theta[64], v[64];
} small_result;

/* Collective on MPI_COMM_WORLD: one hypergrad (full_run 0) or run (1) with o and the extra
 * options kv (name, value pairs, NULL-terminated; NULL: none); drop_hvp removes the
 * problem's hvp callback. Returns the agreed status. */
static inline int small_solve(const nhgd_data *data, const test_opts *o, const char *const *kv,
                              int full_run, int drop_hvp, small_result *r) {
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = o->noise_sigma;
  pp.v_init = o->v_init;
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  int rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create(o->problem, data, &pp, &pb));
  if (!rc && drop_hvp) pb->ops.hvp = NULL;
  if (!rc && (pb->d > 64 || pb->p > 64)) rc = NHGD_ERR_ARG;
  nhgd_options *oh = test_opts_handle(o);
  for (int i = 0; kv && kv[i] && !rc; i += 2)
    rc = nhgd_options_set_string(oh, kv[i], kv[i + 1]);
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
  if (!rc) rc = full_run ? nhgd_solver_run(s) : nhgd_solver_hypergrad(s);
  if (!rc) {
    r->d = pb->d;
    r->p = nhgd_solver_v_local(s);
    memcpy(r->u, nhgd_solver_u(s), sizeof(double) * (size_t)r->d);
    memcpy(r->h, nhgd_solver_hypergradient(s), sizeof(double) * (size_t)r->p);
    memcpy(r->theta, nhgd_solver_theta(s), sizeof(double) * (size_t)r->d);
    memcpy(r->v, nhgd_solver_v(s), sizeof(double) * (size_t)r->p);
  }
  nhgd_solver_destroy(&s);
  nhgd_options_destroy(&oh);
  nhgd_problem_destroy(&pb);
  return rc;
}

/* The estimator tests' base options: full batches, T inner steps of step 0.3, one outer step,
 * sigma 0.7, v = -0.4, seed 11, quiet. */
static inline void small_options(test_opts *o, const char *path, const char *problem,
                                 const char *estimator, int64_t T) {
  test_opts_default(o);
  snprintf(o->data, sizeof o->data, "%s", path);
  snprintf(o->problem, sizeof o->problem, "%s", problem);
  snprintf(o->estimator, sizeof o->estimator, "%s", estimator);
  o->batch = 0;
  o->inner_steps = T;
  o->inner_lr = 0.3;
  o->noise_sigma = 0.7;
  o->v_init = -0.4;
  o->outer_steps = 1;
  o->eval_every = 0;
  o->seed = 11;
  o->log_level = 1;
}

/* Not collective: "NAME VALUE" refused when parsed, the message naming the option and holding
 * phrase: a counted check. */
static inline void small_parse_refused(const char *name, const char *value, const char *phrase) {
  nhgd_options *o;
  if (nhgd_options_create_run(&o)) abort();
  char *argv[] = {(char *)name, (char *)value};
  nhgd_error_clear();
  int help = 0, rc = nhgd_options_parse(o, 2, argv, NULL, &help);
  nhgd_options_destroy(&o);
  char want[64];
  snprintf(want, sizeof want, "option %s", name);
  const char *msg = nhgd_error_message();
  mc_check(rc == NHGD_ERR_ARG && strstr(msg, want) && strstr(msg, phrase), "%s %s refused: \"%s\"",
           name, value, msg);
  nhgd_error_clear();
}

/* Collective: a hypergrad that creation refuses on every rank alike (NHGD_ERR_ARG, the
 * message holding phrase): a counted check named what. */
static inline void small_refused(const nhgd_data *data, const test_opts *o, const char *const *kv,
                                 int drop_hvp, const char *phrase, const char *what) {
  small_result r;
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  nhgd_error_clear();
  int rc = small_solve(data, o, kv, 0, drop_hvp, &r);
  const int ok = rc == NHGD_ERR_ARG && strstr(nhgd_error_message(), phrase) != NULL;
  mc_check(mc_all(ok), "%s refused on all %d ranks: \"%s\"", what, P, nhgd_error_message());
  nhgd_error_clear();
}

#endif
