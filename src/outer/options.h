/* The solver's options: the struct its option block fills (the block itself is in
 * options.c). */
#ifndef NHGD_OUTER_OPTIONS_H
#define NHGD_OUTER_OPTIONS_H

#include <stdint.h>

#include "inner/inner.h"
#include "nhgd/options.h"

/* The solver's option block (its table is in options.c). */
typedef struct nhgd_solver_opts {
  char estimator[32];
  char v_from[NHGD_PATH_MAX];
  int64_t outer_steps;
  char outer_opt[16]; /* sgd | adam | lazy-adam */
  double outer_lr;
  char outer_schedule[16]; /* const | invsqrt | inv */
  double outer_decay;
  double adam_beta1, adam_beta2, adam_eps;
  nhgd_inner_opts inner;
  int64_t val_batch; /* validation rows drawn per outer step (0: every row) */
  int block_size, grid_rows, kron;
  char cross_mode[16];   /* end | average */
  char cross_rows[16];   /* all | trajectory | end */
  int64_t cross_samples; /* rows of the cross term at the inner loop's end (cross_rows end) */
  char checkpoint_dir[NHGD_PATH_MAX];
  int checkpoint_every, checkpoint_every_inner;
  double checkpoint_seconds;
  int keep;
  char restart[NHGD_PATH_MAX];
  int64_t halt_after;
  int eval_every, log_level;
  double divergence_factor; /* stop when the validation loss exceeds this multiple of its start */
  char on_divergence[8];    /* stop | halve */
  int divergence_retries;   /* rollbacks allowed with halve */
} nhgd_solver_opts;

#endif
