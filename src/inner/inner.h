/* Data-parallel inner SGD: global minibatches from the counter RNG, one allreduce a step,
 * an observer told of every step. The loop decides nothing about checkpoints: it reports a
 * stop request or a due checkpoint to its caller, which acts. */
#ifndef NHGD_INNER_INNER_H
#define NHGD_INNER_INNER_H

#include <mpi.h>
#include <stdint.h>

#include "core/timer.h"
#include "nhgd/data.h"
#include "nhgd/problem.h"

/* The settings of the inner loop. */
typedef struct nhgd_inner_opts {
  int64_t steps, batch; /* T; B (0: full batch, every row once) */
  double lr, decay;
  char schedule[16]; /* const | inv | cosine */
  int warm_start;
  uint64_t seed;
} nhgd_inner_opts;

/* Called after the allreduce of every step with that step's local rows and the theta its
 * gradient used (collective). */
typedef int (*nhgd_inner_observer)(void *arg, const double *theta, int nb, const int *rows);

typedef struct nhgd_inner {
  MPI_Comm comm;
  int rank;
  const nhgd_inner_opts *opt;
  const nhgd_data *data;
  const nhgd_problem *pb;
  const double *v;
  nhgd_timers *timers;
  nhgd_inner_observer observe; /* NULL: none */
  void *observe_arg;
  int average; /* keep the sum of the iterates (cross mode average) */
  int64_t d;
  double *theta, *theta_init, *theta_sum; /* d each */
  double *scratch;                        /* d + 4 */
  int *rows;                              /* local rows of the current batch */
  int64_t *slots;                         /* their slots in the global batch (see draw_batch) */
  int64_t step;                           /* the inner step being taken (for the observer) */
  double last_loss;                       /* mean minibatch loss of the last step */
  double first_loss;                      /* and of the first step of this inner loop */
  double *samples;                        /* work counter: per-sample gradients are added */
  int64_t steps_run;                      /* inner steps taken by this process */
  int64_t diverged; /* 1 + the step where theta stopped being finite (the loop failed); 0 */
  int bad_gradient; /* ... because the gradient there, at a finite theta, was not finite */
} nhgd_inner;

/* What the caller is told when the loop returns. */
typedef enum {
  NHGD_INNER_DONE = 0, /* all T steps taken */
  NHGD_INNER_STOP,     /* a stop was requested: checkpoint and stop after step *t */
  NHGD_INNER_DUE       /* a checkpoint is due after step *t; call again from *t */
} nhgd_inner_event;

/* Requests the loop asks about at every step, and agrees on through the gradient's
 * allreduce: any rank's yes counts. */
typedef struct nhgd_inner_requests {
  int enabled;          /* 0: never report STOP or DUE */
  double every_seconds; /* checkpoint every so many seconds (0: off) */
  double last_time;     /* MPI_Wtime of the last checkpoint */
  int64_t every_inner;  /* checkpoint every so many inner steps (0: off) */
  int64_t halt_after;   /* stop after this many steps of this process (0: never) */
} nhgd_inner_requests;

/* Not collective. Allocate theta & co for d parameters and the rows of a batch of opt (drawn
 * from data's training split). */
int nhgd_inner_init(nhgd_inner *in, int64_t d, const nhgd_inner_opts *opt, const nhgd_data *data);
void nhgd_inner_free(nhgd_inner *in);

/* Step size of inner step t of T. */
double nhgd_inner_lr(const nhgd_inner_opts *o, int64_t t, int64_t T);

/* Collective: inner SGD steps from *t (0: a new inner loop, which restarts theta unless warm
 * starting) of outer step k. On return *t is the number of steps done and *event says why
 * the loop returned. */
int nhgd_inner_run(nhgd_inner *in, int64_t k, const nhgd_inner_requests *req, int64_t *t,
                   nhgd_inner_event *event);

#endif
