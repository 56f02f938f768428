/* Private state of one solver run, shared by the inner loop, estimators and outer loop. */
#ifndef NHGD_OUTER_ENGINE_H
#define NHGD_OUTER_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "core/timer.h"
#include "nhgd/errors.h"
#include "curvature/bcmat.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"

typedef struct nhgd_engine nhgd_engine;

/* An estimator of u = H^{-1} grad_theta f. begin/observe/solve are collective. */
typedef struct nhgd_estimator {
  const char *name;
  void *state;
  int needs_observe; /* 1: observe is called after every inner step */
  int (*begin)(struct nhgd_estimator *est, nhgd_engine *e, int64_t k);
  /* The nb local training rows of inner step t, at the theta the step's gradient used. */
  int (*observe)(struct nhgd_estimator *est, nhgd_engine *e, const double *theta, int nb,
                 const int *rows);
  /* u (d, replicated) from g = grad_theta f (d, replicated) at theta. */
  int (*solve)(struct nhgd_estimator *est, nhgd_engine *e, const double *theta, const double *g,
               double *u);
  /* Checkpoint hooks (may be NULL for stateless estimators): save the running state of the
   * current inner loop into an HDF5 group, load it back. Collective. */
  int (*save)(struct nhgd_estimator *est, nhgd_engine *e, hid_t group);
  int (*load)(struct nhgd_estimator *est, nhgd_engine *e, hid_t group);
  void (*destroy)(struct nhgd_estimator *est);
} nhgd_estimator;

/* Collective: create the estimator named by e->opt.estimator. */
int nhgd_estimator_create(nhgd_engine *e, nhgd_estimator **out);
void nhgd_estimator_destroy(nhgd_estimator **est);
int nhgd_estimator_exact_init(nhgd_estimator *est, nhgd_engine *e);
int nhgd_estimator_nhgd_init(nhgd_estimator *est, nhgd_engine *e);
int nhgd_estimator_none_init(nhgd_estimator *est, nhgd_engine *e);

/* One row of the run history. */
typedef struct nhgd_record {
  int64_t step;
  double val_loss, val_acc, test_loss, test_acc, inner_loss, hypergrad_norm, wall_time;
  double samples; /* per-sample gradients and Hessian-vector products used so far (all ranks) */
} nhgd_record;

struct nhgd_engine {
  MPI_Comm comm; /* == data->comm */
  int rank, size;
  nhgd_options opt;
  const nhgd_data *data;
  nhgd_problem *pb;
  int64_t d, p, p_local;
  double *theta, *theta_init; /* d */
  double *v;                  /* p_local */
  double *u, *gval;           /* d */
  double *h, *jt;             /* p_local: hypergradient, cross term J^T u */
  double *scratch;            /* d + 2 */
  int *rows;                  /* local rows of the current batch */
  double *adam_m, *adam_s;    /* p_local */
  int64_t k;                  /* outer steps completed */
  double last_inner_loss;
  double *theta_sum;  /* d: sum of the inner iterates (cross mode average) */
  double comm_bytes;  /* payload bytes this rank received from the estimator's collectives */
  int64_t comm_steps; /* inner steps those bytes cover */
  /* Work counter, replicated: per-sample gradients (inner SGD, validation gradients) plus
   * per-sample Hessian(-vector) evaluations (baselines, exact) used so far. NHGD adds nothing:
   * it reuses the inner loop's per-sample gradients. */
  double samples;
  nhgd_estimator *est;
  nhgd_grid *grid; /* created on first use by estimators that need one */
  nhgd_timers timers;
  double t_start;
  nhgd_record *hist;
  int64_t hist_len, hist_cap;
  int have_hypergrad;
  /* checkpoint and restart */
  int resumed;           /* state came from a checkpoint */
  int64_t resume_t;      /* inner steps of outer step k already done at restart */
  int64_t steps_run;     /* inner steps taken by this process (for --halt-after) */
  double last_ckpt_time; /* MPI_Wtime of the last checkpoint (for --checkpoint-seconds) */
  FILE *metrics;
};

/* Collective: the process grid, created on first call. */
int nhgd_engine_grid(nhgd_engine *e, nhgd_grid **g);

/* Collective: inner SGD steps t0 .. T-1 of outer step k, from e->theta (updated in place).
 * Returns NHGD_STOPPED after a checkpoint when a stop was requested. */
int nhgd_inner_loop(nhgd_engine *e, int64_t k, int64_t t0);

/* Append a record to the history. */
int nhgd_engine_push_record(nhgd_engine *e, const nhgd_record *r);

/* Step size of inner step t of T. */
double nhgd_inner_lr(const nhgd_options *o, int64_t t, int64_t T);

/* Collective: evaluate split (val or test) at (theta, v): mean loss, accuracy (NaN for
 * regression) and, if g != NULL, the mean outer gradient in theta (replicated). */
int nhgd_engine_eval(nhgd_engine *e, const nhgd_split *split, double *loss, double *acc, double *g);

/* Outer optimiser: one step v -= lr_k * direction(h) on this rank's entries. */
void nhgd_outer_step(nhgd_engine *e, const double *h);

#endif
