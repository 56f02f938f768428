/* Test convenience: the run options the engine tests set, as plain fields, turned into an
 * nhgd_options handle by name. Defaults are read back from the library's own tables. */
#ifndef NHGD_TEST_RUN_OPTS_H
#define NHGD_TEST_RUN_OPTS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nhgd/nhgd.h"

typedef struct test_opts {
  char data[NHGD_PATH_MAX], output[NHGD_PATH_MAX];
  char problem[32], estimator[32], outer_opt[16], efim_route[16], efim_mode[8];
  int64_t outer_steps, inner_steps, batch, hvp_batch;
  double outer_lr, inner_lr, noise_sigma, v_init, efim_damping, efim_beta, neumann_eta, soba_rho;
  int hvp_steps, log_level, eval_every, warm_start, overlap, kron, grid_rows, block_size;
  uint64_t seed;
} test_opts;

#define TEST_OPTS_FIELDS(X)                                                                        \
  X(S, problem, "problem")                                                                         \
  X(S, estimator, "estimator")                                                                     \
  X(S, outer_opt, "outer-opt")                                                                     \
  X(S, efim_route, "efim-route")                                                                   \
  X(S, efim_mode, "efim-mode")                                                                     \
  X(I, outer_steps, "outer-steps")                                                                 \
  X(I, inner_steps, "inner-steps")                                                                 \
  X(I, batch, "batch")                                                                             \
  X(I, hvp_batch, "hvp-batch")                                                                     \
  X(R, outer_lr, "outer-lr")                                                                       \
  X(R, inner_lr, "inner-lr")                                                                       \
  X(R, noise_sigma, "noise-sigma")                                                                 \
  X(R, v_init, "v-init")                                                                           \
  X(R, efim_damping, "efim-damping")                                                               \
  X(R, efim_beta, "efim-beta")                                                                     \
  X(R, neumann_eta, "neumann-eta")                                                                 \
  X(R, soba_rho, "soba-rho")                                                                       \
  X(I, hvp_steps, "hvp-steps")                                                                     \
  X(I, log_level, "log-level")                                                                     \
  X(I, eval_every, "eval-every")                                                                   \
  X(I, warm_start, "warm-start")                                                                   \
  X(I, overlap, "overlap")                                                                         \
  X(I, kron, "kron")                                                                               \
  X(I, grid_rows, "grid-rows")                                                                     \
  X(I, block_size, "block-size")                                                                   \
  X(I, seed, "seed")

static inline void test_opts_default(test_opts *t) {
  nhgd_options *o;
  if (nhgd_options_create_run(&o)) abort();
  int64_t i;
  double r;
  const char *s;
  (void)i, (void)r, (void)s;
#define GET_S(f, n)                                                                                \
  if (nhgd_options_get_string(o, n, &s)) abort();                                                  \
  snprintf(t->f, sizeof t->f, "%s", s);
#define GET_I(f, n)                                                                                \
  if (nhgd_options_get_int(o, n, &i)) abort();                                                     \
  t->f = i;
#define GET_R(f, n)                                                                                \
  if (nhgd_options_get_real(o, n, &r)) abort();                                                    \
  t->f = r;
#define GET(kind, f, n) GET_##kind(f, n)
  TEST_OPTS_FIELDS(GET)
#undef GET
  t->data[0] = t->output[0] = '\0';
  nhgd_options_destroy(&o);
}

/* A run-options handle with every field of t set (abort on a refused value). */
static inline nhgd_options *test_opts_handle(const test_opts *t) {
  nhgd_options *o;
  if (nhgd_options_create_run(&o)) abort();
#define SET_S(f, n) rc |= nhgd_options_set_string(o, n, t->f);
#define SET_I(f, n) rc |= nhgd_options_set_int(o, n, (int64_t)t->f);
#define SET_R(f, n) rc |= nhgd_options_set_real(o, n, t->f);
#define SET(kind, f, n) SET_##kind(f, n)
  int rc = 0;
  TEST_OPTS_FIELDS(SET)
#undef SET
  if (rc) {
    fprintf(stderr, "test options refused\n");
    abort();
  }
  return o;
}

/* u (and d) of one `hypergrad` of a built-in problem with the run options oh (not owned);
 * 0 on success. v_init is the problem's --v-init. */
static inline int test_hypergrad_pb(const nhgd_data *data, nhgd_problem *pb, int rc,
                                    const nhgd_options *oh, double *u, int64_t *d) {
  nhgd_solver *s = NULL;
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, oh, data, pb, &s);
  if (!rc) rc = nhgd_solver_hypergrad(s);
  if (!rc) {
    *d = pb->d;
    memcpy(u, nhgd_solver_u(s), sizeof(double) * (size_t)pb->d);
  }
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  return rc;
}

/* The same with the named problem at its default parameters but v_init. */
static inline int test_hypergrad_u(const nhgd_data *data, const char *problem,
                                   const nhgd_options *oh, double v_init, double *u, int64_t *d) {
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.v_init = v_init;
  nhgd_problem *pb = NULL;
  int rc = nhgd_problem_create(problem, data, &pp, &pb);
  return test_hypergrad_pb(data, pb, rc, oh, u, d);
}

/* The same with the problem and its parameters taken from the options. */
static inline int test_hypergrad_opts(const nhgd_data *data, const nhgd_options *oh, double *u,
                                      int64_t *d) {
  nhgd_problem *pb = NULL;
  int rc = nhgd_problem_create_from_options(oh, data, &pb);
  return test_hypergrad_pb(data, pb, rc, oh, u, d);
}

#endif
