/* Private state of one solver run, for the files of outer/ only. */
#ifndef NHGD_OUTER_ENGINE_H
#define NHGD_OUTER_ENGINE_H

#include <stdint.h>

#include "core/timer.h"
#include "estimators/estimator.h"
#include "inner/inner.h"
#include "io/checkpoint.h"
#include "io/history.h"
#include "nhgd/solver.h"

/* The solver's option block (its table is in solver.c). */
typedef struct nhgd_solver_opts {
  char estimator[32];
  char v_from[NHGD_PATH_MAX];
  int64_t outer_steps;
  char outer_opt[16]; /* sgd | adam */
  double outer_lr;
  char outer_schedule[16]; /* const | invsqrt | inv */
  double outer_decay;
  double adam_beta1, adam_beta2, adam_eps;
  nhgd_inner_opts inner;
  int block_size, grid_rows, kron;
  char cross_mode[16]; /* end | average */
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

/* Collective: forget the state and take it from the bytes of a checkpoint file in memory, as
 * a restart from that file would (the checks of the options, the data digest and every field
 * included; not the CRC-32, which guards the file on disk). On failure the solver holds a
 * fresh start. Needs a solver made with --checkpoint-dir; the checkpoint fuzz harness uses it. */
int nhgd_solver_load_image(nhgd_solver *s, const void *image, size_t size);

/* Outer optimiser: one step v -= lr_k * direction(h) on the n entries of this rank, with
 * the moments m and s of Adam; k is the number of outer steps already taken, lr the base step
 * size (--outer-lr, or what rollbacks halved it to) that the schedule applies to. */
void nhgd_outer_step(const nhgd_solver_opts *o, double lr, int64_t k, int64_t n, double *m,
                     double *s, double *v, const double *h);

#endif
