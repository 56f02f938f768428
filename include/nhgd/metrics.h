/* The metrics file of a run (docs/usage.md, metrics): one JSON object per outer step, per
 * rollback and, at the end, one with the timing table, strict JSON (a value that is missing or
 * not finite is null). Rank 0 of the solver's communicator holds the file; the other ranks
 * hold a handle that writes nothing. The program's --metrics and the Python package's
 * metrics= both use it. */
#ifndef NHGD_METRICS_H
#define NHGD_METRICS_H

#include "nhgd/export.h"
#include "nhgd/history.h"
#include "nhgd/solver.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nhgd_metrics nhgd_metrics;

/* Collective over the solver's communicator. Open path for the run of s: a solver that resumed
 * a run appends to the file (the run's earlier lines are there), else the file is started
 * afresh. The caller has checked the path against the run's other files (nhgd_paths_check,
 * NHGD_PATH_APPEND). Fails alike on every rank when rank 0 cannot open it. */
NHGD_API int nhgd_metrics_open(nhgd_solver *s, const char *path, nhgd_metrics **out);

/* Hooks for nhgd_solver_set_progress and nhgd_solver_set_rollback (arg: the handle), or for a
 * caller's own hooks to call. Every line is written whole or not at all: a write that fails (a
 * full disk) cuts the file back to the lines before it, keeps the failure for
 * nhgd_metrics_close and requests a stop (nhgd_request_stop), so that a run with checkpoints
 * checkpoints before it ends. */
NHGD_API void nhgd_metrics_progress(const nhgd_progress *p, void *metrics);
NHGD_API void nhgd_metrics_rollback(const nhgd_rollback *r, void *metrics);

/* Collective (the timing table is reduced over the ranks): the timing line. m NULL (on every
 * rank): nothing to do. */
NHGD_API int nhgd_metrics_timing(nhgd_metrics *m, nhgd_solver *s);

/* Collective: close the file and free the handle (NULL or a freed handle: nothing to do). A
 * write that failed is then an error on every rank naming the file; with checkpoint_dir set,
 * the message says that the state is checkpointed and how to continue. */
NHGD_API int nhgd_metrics_close(nhgd_metrics **m, const char *checkpoint_dir);

#ifdef __cplusplus
}
#endif
#endif
