/* Private state of one solver run and the functions the files of outer/ share: options.c
 * (the option block), create.c (creation, restart), state.c (checkpoint parts), rollback.c
 * (divergence and rollback), optim.c (outer optimisers), solver.c (the run and its API). */
#ifndef NHGD_OUTER_ENGINE_H
#define NHGD_OUTER_ENGINE_H

#include <mpi.h>
#include <stdint.h>

#include "core/timer.h"
#include "estimators/estimator.h"
#include "inner/inner.h"
#include "io/checkpoint.h"
#include "io/history.h"
#include "nhgd/solver.h"
#include "outer/options.h"

/* The state at the start of outer step k, where a rollback of the inner step size returns to
 * (--on-divergence halve), and (has_prev) v and Adam's moments as they were before outer step
 * k - 1 updated them, from where a rollback of the outer step size redoes that update; v0 is
 * the v the run started from. Kept with either --on-divergence: the experiments that decide
 * which step size a divergence is put down to run from it. */
typedef struct rollback_state {
  int valid, has_prev;
  int64_t k;
  int have_hypergrad;
  double last_loss;
  double *theta, *u;                         /* d */
  double *v, *m, *s, *h, *vp, *mp, *sp, *v0; /* p_local */
} rollback_state;

/* --cross-rows: the sampled cross term (cross.c). */
enum { NHGD_CROSS_ALL = 0, NHGD_CROSS_TRAJECTORY, NHGD_CROSS_END };
typedef struct nhgd_cross {
  int mode;      /* NHGD_CROSS_*; ALL also when the problem has nothing to sample */
  int width;     /* numbers per record (the problem's cross_width) */
  int64_t n;     /* records kept (this rank) */
  int64_t cap;   /* records room is made for */
  double *rec;   /* width x cap: the problem's cross_keep records */
  int *rows;     /* cap: their local rows */
  int64_t *pos;  /* cap: position in the loop's global batches, t B + slot (end: the row) */
  double *scale; /* cap */
  int64_t *draw, *scratch; /* end: the rows drawn, and the drawing's scratch */
} nhgd_cross;

struct nhgd_solver {
  MPI_Comm comm; /* a duplicate of the caller's */
  int rank, size;
  nhgd_options *options; /* a copy of the caller's */
  const nhgd_solver_opts *opt;
  const nhgd_data *data;  /* the problem's view of the data (pb->data) */
  const nhgd_data *input; /* the data the solver was given (the view may derive from it) */
  nhgd_problem *pb;
  int64_t d, p, p_local;
  nhgd_inner inner;
  double *v;               /* p_local */
  double *u, *gval;        /* d */
  double *h, *jt;          /* p_local: hypergradient, cross term J^T u */
  double *adam_m, *adam_s; /* p_local */
  double *buf;             /* d + 2: evaluation sums */
  int64_t k;               /* outer steps completed */
  /* Work counter, replicated: per-sample gradients (inner SGD, validation gradients) plus
   * per-sample Hessian(-vector) evaluations (baselines, exact) used so far. NHGD adds
   * nothing: it reuses the inner loop's per-sample gradients. */
  double samples;
  double comm_bytes;  /* payload bytes this rank received from the estimator's collectives */
  int64_t comm_steps; /* inner steps those bytes cover */
  /* --val-batch (val_batch.c): the rows drawn for outer step vbatch_k (ascending global
   * indices), Floyd's set, and this rank's of them gathered as a split of K global rows */
  int64_t *vdraw, *vtable;
  nhgd_split vbatch;
  int64_t vbatch_k; /* -1: none drawn */
  nhgd_est_ctx ctx;
  nhgd_estimator *est;
  nhgd_timers timers;
  double t_start;
  /* Clocks, seconds over the whole run (restarts included; each rank reads its own, rank 0's
   * are recorded): the method's own work and measurement (docs/usage.md, metrics). */
  double solver_time, eval_time;
  double solver_since; /* when the solver clock was started ... */
  int solver_running;  /* ... if it runs */
  nhgd_history hist;
  int have_hypergrad;
  /* checkpoint and restart */
  nhgd_ckpt *ckpt;
  nhgd_inner_requests req;
  int64_t ckpt_t;    /* inner step of the checkpoint being written or read */
  int ckpt_complete; /* the checkpoint being written ends the run */
  int resumed;       /* state came from a checkpoint */
  int64_t resume_t;  /* inner steps of outer step k already done at restart */
  char resume_path[NHGD_PATH_MAX + 64];
  char digest[24];  /* content digest of the data, hex (checkpoints only) */
  int pending_stop; /* a stop request met at the last inner step: honoured after the step */
  int pending_due;  /* likewise a checkpoint that fell due at the last inner step */
  nhgd_progress_fn progress;
  void *progress_arg;
  /* divergence */
  nhgd_inner_opts inner_opt; /* the inner loop's settings, with the inner step size in use */
  double outer_lr;           /* the base outer step size in use */
  double prev_first_loss;    /* inner loss at the first step of the last completed inner loop */
  int halve;                 /* --on-divergence halve */
  int diverged;              /* the error being returned is a divergence ... */
  nhgd_lr_kind blame;        /* ... put down to this step size */
  int blame_start;           /* ... or to the starting point, which no step size changes */
  int blame_drift;           /* ... or to outer steps no rollback undoes: start again */
  char blame_why[400];
  rollback_state snap;
  nhgd_cross cross;
  nhgd_rollback_fn rollback;
  void *rollback_arg;
};

/* The offset and count of this rank's entries of v in a dataset of all p entries. */
static inline int64_t nhgd_outer_v_offset(const nhgd_solver *s) {
  return s->pb->v_per_sample ? s->data->train.lo * s->pb->v_per_sample : 0;
}
static inline int64_t nhgd_outer_v_count(const nhgd_solver *s) {
  return s->pb->v_per_sample ? s->p_local : (s->rank == 0 ? s->p : 0);
}

/* The solver clock (solver_time): what runs between start and stop is the method's own work.
 * stop returns whether it ran, so that a checkpoint write can leave it out and start it again. */
static inline void nhgd_outer_clock_start(nhgd_solver *s) {
  s->solver_since = MPI_Wtime();
  s->solver_running = 1;
}
static inline int nhgd_outer_clock_stop(nhgd_solver *s) {
  const int was = s->solver_running;
  if (was) s->solver_time += MPI_Wtime() - s->solver_since;
  s->solver_running = 0;
  return was;
}

/* ---- val_batch.c: the validation rows of an outer step ---- */

/* Not collective: --val-batch against the validation rows of data (the problem's view): a
 * usage error (NHGD_ERR_ARG) naming both numbers when it asks for more rows than there are. */
int nhgd_outer_check_val_batch(const nhgd_solver_opts *o, const char *problem,
                               const nhgd_data *data);
/* The buffers of the draws (none without --val-batch); freed by nhgd_outer_val_batch_free. */
int nhgd_outer_val_batch_alloc(nhgd_solver *s);
void nhgd_outer_val_batch_free(nhgd_solver *s);
/* Not collective: the validation rows of outer step k: the whole split, or with --val-batch K
 * the K rows drawn for k (the same on every rank, restarts included), this rank's of them
 * gathered into a split of K global rows. Valid until rows of another step are asked for. */
const nhgd_split *nhgd_outer_val_rows(nhgd_solver *s, int64_t k);

/* ---- state.c: the solver's parts of a checkpoint ---- */

/* Collective: the checkpoint writer and its parts (made once); the checkpoint to continue
 * from, skipping the skip newest valid ones, opened (*file NULL when there is none). Its path
 * is in s->resume_path, also when it was found but failed to open. */
int nhgd_outer_setup_checkpoints(nhgd_solver *s, int skip, nhgd_ckpt_file **file);
/* Collective: write the checkpoint after inner step t of outer step k (t = 0: at the
 * boundary after k outer steps); complete: it ends the run. */
int nhgd_outer_write_checkpoint(nhgd_solver *s, int64_t t, int complete);

/* Collective: the mean validation loss at the current theta and v (solver.c). */
int nhgd_outer_val_loss(nhgd_solver *s, double *loss);

/* ---- rollback.c: divergence and --on-divergence halve ---- */

/* Collective: the validation loss must stay finite and within --divergence-factor of its
 * first value; otherwise an NHGD_ERR_NUMERIC error naming the step size blamed. */
int nhgd_outer_check_divergence(nhgd_solver *s, double loss);
/* Collective: the error for inner SGD whose theta stopped being finite, naming the step size
 * blamed. */
int nhgd_outer_inner_diverged(nhgd_solver *s);
/* Collective: the error for a hypergradient that is not finite while the estimate u is
 * (largest entry umax): theta or v grew too large, put down to a step size as a divergence
 * is (and rolled back with halve). */
int nhgd_outer_hypergrad_diverged(nhgd_solver *s, double umax);
/* Not collective: keep v and Adam's moments as they are before an outer step updates them. */
void nhgd_outer_keep_prev(nhgd_solver *s);
/* Not collective: the state at the start of outer step s->k becomes the rollback state
 * (with_prev: what nhgd_outer_keep_prev kept is part of it). */
void nhgd_outer_take_snapshot(nhgd_solver *s, int with_prev);
/* Collective, after a divergence (error err): with halve and a rollback left, return to the
 * rollback state with the blamed step size halved and return NHGD_OK (*redo: the outer step
 * of *rec is to be taken again from there); else err. */
int nhgd_outer_roll_back(nhgd_solver *s, int err, nhgd_record *rec, int *redo);

/* Collective: forget the state and take it from the bytes of a checkpoint file in memory, as
 * a restart from that file would (the checks of the options, the data digest and every field
 * included; not the CRC-32, which guards the file on disk). On failure the solver holds a
 * fresh start. Needs a solver made with --checkpoint-dir; the checkpoint fuzz harness uses it. */
int nhgd_solver_load_image(nhgd_solver *s, const void *image, size_t size);

/* ---- cross.c: the sampled cross term (--cross-rows) ---- */

/* Not collective: the cross options fit the problem and its data. */
int nhgd_cross_check(const nhgd_solver_opts *o, const nhgd_problem *pb);
/* Collective (errors agree through the caller): the mode the problem allows, its buffers. */
int nhgd_cross_init(nhgd_solver *s);
void nhgd_cross_free(nhgd_cross *c);
/* Not collective: a new inner loop begins (no records). */
void nhgd_cross_begin(nhgd_solver *s);
/* Not collective: inner step s->inner.step drew the nb local rows at theta (trajectory). */
int nhgd_cross_observe(nhgd_solver *s, const double *theta, int nb, const int *rows);
/* Not collective unless the problem's cross is: out (p_local) = the estimate of J^T u. */
int nhgd_cross_term(nhgd_solver *s, const double *theta, const double *u, double *out);
/* Collective: the records of an inner loop stopped part-way, into and out of a checkpoint. */
int nhgd_cross_save(nhgd_solver *s, nhgd_section *sec);
int nhgd_cross_load(nhgd_solver *s, nhgd_section *sec);

/* Outer optimiser: one step v -= lr_k * direction(h) on the n entries of this rank, with
 * the moments m and s of Adam (lazy-adam: only the entries with h_j != 0 change, m, s and v
 * alike); k is the number of outer steps already taken, lr the base step size (--outer-lr, or
 * what rollbacks halved it to) that the schedule applies to. */
void nhgd_outer_step(const nhgd_solver_opts *o, double lr, int64_t k, int64_t n, double *m,
                     double *s, double *v, const double *h);

#endif
