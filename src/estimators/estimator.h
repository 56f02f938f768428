/* The estimator seam: what an estimator of u = H^{-1} grad_theta f sees of a run (a narrow
 * context, never the solver's state), its vtable, and the registry that maps --estimator
 * names to implementations and to their option blocks. */
#ifndef NHGD_ESTIMATORS_ESTIMATOR_H
#define NHGD_ESTIMATORS_ESTIMATOR_H

#include <mpi.h>
#include <stdint.h>

#include "core/timer.h"
#include "linalg/bcmat.h"
#include "io/section.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"

/* What an estimator may read and use. The solver owns everything pointed to. */
typedef struct nhgd_est_ctx {
  MPI_Comm comm;
  int rank, size;
  int64_t d;
  nhgd_problem *pb;
  const nhgd_data *data;
  const double *v;      /* this rank's entries of v (updated between outer steps) */
  const double *u_prev; /* the u of the previous outer step (0 at the start): warm starts */
  /* run settings an estimator needs */
  uint64_t seed;
  int64_t inner_steps, batch;  /* T, and B (0: full batch) */
  int kron;                    /* use the problem's Kronecker structure when declared */
  int block_size;              /* block-cyclic block size (0: automatic) */
  int grid_rows;               /* process grid rows (0: automatic) */
  const void *opt;             /* the estimator's own option block */
  const nhgd_options *options; /* every option (for blocks shared between estimators) */
  nhgd_timers *timers;
  /* Not collective: the validation rows of outer step k that grad_theta f comes from: data->val,
   * or with --val-batch a split of the rows drawn for k (n_global of them in all). NULL in a
   * context of no solver: data->val. */
  const nhgd_split *(*val_rows)(void *arg, int64_t k);
  void *val_rows_arg;
  double *samples;     /* work counter (replicated): add per-sample evaluations */
  double *comm_bytes;  /* payload bytes this rank received from the estimator's collectives */
  int64_t *comm_steps; /* inner steps those bytes cover */
  nhgd_grid *grid;     /* created on first use (nhgd_est_grid) */
  int precond;         /* 1: the estimator is another's preconditioner (precond.h): its solve of
                          an outer step is followed by more applications of the same operator */
} nhgd_est_ctx;

/* Collective. Bytes of memory one rank may use: mib or, when 0, 90 % of MemAvailable divided
 * by the ranks on this node. Equal on all ranks (the minimum). */
int nhgd_mem_budget(MPI_Comm comm, double mib, double *bytes);
/* Collective: the budget of --mem-per-rank (nhgd_mem_budget) binds every estimator. bytes:
 * what the estimator who will hold per rank (the most any rank holds); what names it. Above
 * the budget an NHGD_ERR_MEM error gives both and hint (how to make it fit). */
int nhgd_est_check_memory(nhgd_est_ctx *c, const char *who, const char *what, double bytes,
                          const char *hint);

/* Collective: the process grid, created on first call. */
int nhgd_est_grid(nhgd_est_ctx *c, nhgd_grid **g);
/* Global rows of an inner minibatch: B, or every training row with full batches. */
int64_t nhgd_est_batch_rows(const nhgd_est_ctx *c);

typedef struct nhgd_estimator nhgd_estimator;

/* What an estimator does: begin/observe/solve/save/load are collective. Filled once per
 * estimator, in its descriptor. */
typedef struct nhgd_estimator_ops {
  int needs_observe; /* 1: observe is called after every inner step */
  /* Start the inner loop of outer step k, which begins at theta0. NULL: nothing to do. */
  int (*begin)(nhgd_estimator *est, int64_t k, const double *theta0);
  /* The nb local training rows of inner step t, at the theta the step's gradient used. */
  int (*observe)(nhgd_estimator *est, const double *theta, int nb, const int *rows);
  /* u (d, replicated) from g = grad_theta f (d, replicated) at theta. */
  int (*solve)(nhgd_estimator *est, const double *theta, const double *g, double *u);
  /* After solve, before the engine forms the hypergradient: a correction of the inner iterate
   * (nbo's Newton step). theta (d, replicated, the inner loop's own) may be changed in place;
   * the hypergradient of this outer step, its checkpoint and the next inner loop (with
   * --warm-start 1) then see the corrected theta. The same on every rank. NULL: none. */
  int (*correct)(nhgd_estimator *est, double *theta);
  /* Checkpoint: the running state of the current inner loop into its section, and back. k is
   * the outer step the state belongs to. NULL for stateless estimators. */
  int (*save)(nhgd_estimator *est, nhgd_section *sec);
  int (*load)(nhgd_estimator *est, nhgd_section *sec, int64_t k);
  /* A restart at an outer-step boundary: only the state that outlives an inner loop (kfac's
   * factors with --kfac-refresh), from the section save wrote. NULL: there is none. */
  int (*load_kept)(nhgd_estimator *est, nhgd_section *sec);
  /* Free what init allocated inside the state (the registry frees the state itself); it may
   * find the state half built. NULL: nothing. */
  void (*release)(nhgd_estimator *est);
  /* When the u it returned is not finite or too large to use: the setting to change, in
   * words (e.g. "lower --soba-rho (now 1e+12): ..."). NULL: nothing to say. */
  void (*advice)(const nhgd_estimator *est, char *buf, size_t len);
} nhgd_estimator_ops;

/* An estimator: its descriptor's ops over its own state. */
struct nhgd_estimator {
  const char *name;
  void *state; /* state_size bytes, zeroed, allocated by the registry */
  nhgd_est_ctx *ctx;
  const nhgd_estimator_ops *ops;
};

/* An implementation: its name, its option block (NULL: none), the size of its state, its
 * ops and its constructor. The registry allocates the state (agreed over the ranks) and
 * calls init, which sets the state up; resume, when not NULL, is the estimator section of
 * the checkpoint the run will continue from, so that init can follow choices made then. */
typedef int (*nhgd_estimator_init_fn)(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume);
typedef struct nhgd_estimator_desc {
  const char *name;
  const nhgd_option_block *options;
  size_t state_size;
  nhgd_estimator_ops ops;
  nhgd_estimator_init_fn init; /* NULL: nothing to set up */
} nhgd_estimator_desc;

extern const nhgd_estimator_desc nhgd_estimator_exact, nhgd_estimator_nhgd, nhgd_estimator_cg,
    nhgd_estimator_neumann, nhgd_estimator_soba, nhgd_estimator_nbo, nhgd_estimator_none;
/* The option block shared by the Hessian-vector-product baselines (cg, neumann). */
extern const nhgd_option_block nhgd_hvp_options;

/* '|'-separated names of every estimator (for the --estimator choices). */
const char *nhgd_estimator_names(void);
/* Add every estimator's option block to o. Not collective. */
int nhgd_estimator_add_options(nhgd_options *o);
/* Collective: create the estimator named name with context c (kept by the estimator, not
 * owned); c->opt is set to its option block from o. */
int nhgd_estimator_create(const char *name, const nhgd_options *o, nhgd_est_ctx *c,
                          nhgd_section *resume, nhgd_estimator **out);
void nhgd_estimator_destroy(nhgd_estimator **est);

/* Advice for an estimator that solves with the Hessian of the inner objective (exact, cg):
 * H is nearly singular; where the problem has a regulariser of its own, raise it. */
void nhgd_est_hessian_advice(const nhgd_estimator *est, char *buf, size_t len);

#endif
