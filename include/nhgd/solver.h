/* The bilevel solver: outer loop of hypergradient steps around data-parallel inner SGD. */
#ifndef NHGD_SOLVER_H
#define NHGD_SOLVER_H

#include "nhgd/export.h"

#include <mpi.h>
#include "nhgd/checkpoint.h"
#include "nhgd/data.h"
#include "nhgd/history.h"
#include "nhgd/options.h"
#include "nhgd/output.h"
#include "nhgd/problem.h"
#include "nhgd/stop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nhgd_solver nhgd_solver;

/* Collective over comm, which must have the same ranks in the same order as the
 * communicator the data was loaded on (the solver works on a duplicate of it). Copies the
 * options (from nhgd_options_create_run), binds the data and problem (not owned: keep them
 * alive until destroy), initialises theta and v (from --v-from when set), continues from a
 * checkpoint when --checkpoint-dir holds one, and creates the estimator. */
NHGD_API int nhgd_solver_create(MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                                nhgd_problem *pb, nhgd_solver **out);

/* Not collective: the options that must fit the problem and its data (--val-batch at most its
 * validation rows, --cross-samples at most its training rows, --cross-rows a problem that has
 * a sampled cross term, --efim-samples with --batch 0 at most the training rows):
 * NHGD_ERR_ARG, a usage error, naming the values when they do not. nhgd_solver_create checks
 * them too (the nhgd estimator --efim-samples); the program calls this first, to exit with
 * its usage code. */
NHGD_API int nhgd_solver_check_data(const nhgd_options *o, const nhgd_problem *pb);

/* Collective. Run the remaining outer steps: inner SGD, estimator, hypergradient, outer
 * step, progress line and metrics per step. */
NHGD_API int nhgd_solver_run(nhgd_solver *s);

/* Collective. One inner loop at the current v, then u and the hypergradient, no outer step
 * (what `nhgd hypergrad` does). */
NHGD_API int nhgd_solver_hypergrad(nhgd_solver *s);

/* Collective. Write the output HDF5 file (docs/usage.md: /theta, /v, /history, /config, and
 * /hypergradient, /u after nhgd_solver_hypergrad). Written under a temporary name and
 * renamed once every rank has succeeded. */
NHGD_API int nhgd_solver_write(nhgd_solver *s, const char *path);

/* Collective. Print the table of timing stages (min/avg/max over ranks) on rank 0. */
NHGD_API int nhgd_solver_report(nhgd_solver *s);

/* Collective. The number of timing stages and, for each stage i < n, its name and min, avg,
 * max seconds over the ranks (arrays of at least n entries; NULL to ask only for n). */
NHGD_API int nhgd_solver_timing(nhgd_solver *s, int *n, const char **names, double *mn, double *avg,
                                double *mx);

/* Not collective: did the solver continue from a checkpoint? */
NHGD_API int nhgd_solver_resumed(const nhgd_solver *s);

/* Not collective: the outer steps done so far. */
NHGD_API int64_t nhgd_solver_outer_steps_done(const nhgd_solver *s);

/* Not collective: call fn(record, arg) after every outer step (NULL: none). */
NHGD_API void nhgd_solver_set_progress(nhgd_solver *s, nhgd_progress_fn fn, void *arg);

/* Not collective: call fn(rollback, arg) after every rollback of --on-divergence halve (NULL:
 * none). The records of the outer steps taken again are reported to the progress callback
 * again. */
NHGD_API void nhgd_solver_set_rollback(nhgd_solver *s, nhgd_rollback_fn fn, void *arg);

/* Read-only views (not collective): theta (d entries), this rank's v (p entries, or the
 * training rows it owns when v is per sample), the last u (d) and this rank's hypergradient
 * entries (same layout as v). */
NHGD_API const double *nhgd_solver_theta(const nhgd_solver *s);
NHGD_API const double *nhgd_solver_v(const nhgd_solver *s);
NHGD_API const double *nhgd_solver_u(const nhgd_solver *s);
NHGD_API const double *nhgd_solver_hypergradient(const nhgd_solver *s);
/* Number of entries of this rank's v slice. */
NHGD_API int64_t nhgd_solver_v_local(const nhgd_solver *s);
/* Validation loss and test accuracy of the last outer step (NaN when not evaluated). */
NHGD_API double nhgd_solver_val_loss(const nhgd_solver *s);
NHGD_API double nhgd_solver_test_accuracy(const nhgd_solver *s);

/* Collective; NULL-safe. */
NHGD_API void nhgd_solver_destroy(nhgd_solver **s);

#ifdef __cplusplus
}
#endif
#endif
