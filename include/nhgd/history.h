/* A run's records: one per outer step (the rows of /history) and one per rollback, and
 * the callbacks that receive them. */
#ifndef NHGD_HISTORY_H
#define NHGD_HISTORY_H

#include "nhgd/export.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One outer step's record (also a row of the output's /history). Times are seconds since the
 * run began, across restarts; wall_time counts everything, solver_time and eval_time only
 * their own parts of it (docs/usage.md, metrics). */
typedef struct nhgd_progress {
  int64_t step;
  double val_loss, val_acc, test_loss, test_acc, inner_loss, hypergrad_norm, wall_time;
  double samples;   /* per-sample gradients and Hessian-vector products used so far (all ranks) */
  int64_t val_rows; /* validation rows val_loss, val_acc and grad_theta f came from: every
                       row, or the --val-batch rows drawn for the step */
  double val_loss_full; /* the validation loss on every row (NaN where not evaluated: with
                           --val-batch at the first step and every --eval-every steps) */
  double solver_time;   /* the method's own work so far: inner SGD, estimator, validation
                           gradient, hypergradient, outer steps */
  double eval_time;     /* measurement so far: test evaluations, val_loss_full with --val-batch */
} nhgd_progress;

/* Called on every rank after each outer step, with the same record everywhere but the clocks,
 * which each rank reads for itself. */
typedef void (*nhgd_progress_fn)(const nhgd_progress *p, void *arg);

/* One rollback of --on-divergence halve (the same record on every rank). */
typedef struct nhgd_rollback {
  int64_t step;       /* the outer step whose divergence it answers */
  int64_t to_step;    /* the outer step the run continues from */
  const char *option; /* the step size halved: "inner-lr" or "outer-lr" */
  double old_value, new_value;
} nhgd_rollback;

/* Called on every rank after each rollback. */
typedef void (*nhgd_rollback_fn)(const nhgd_rollback *r, void *arg);

#ifdef __cplusplus
}
#endif
#endif
