/* The bilevel solver: outer loop of hypergradient steps around data-parallel inner SGD. */
#ifndef NHGD_SOLVER_H
#define NHGD_SOLVER_H

#include <mpi.h>
#include "nhgd/data.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nhgd_solver nhgd_solver;

/* Collective over comm (which must be the communicator the data was loaded on). Binds the
 * options, data and problem (not owned: keep them alive until destroy), initialises theta
 * and v (from --v-from when set) and creates the estimator. */
int nhgd_solver_create(MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                       nhgd_problem *pb, nhgd_solver **out);

/* Collective. Run the remaining outer steps: inner SGD, estimator, hypergradient, outer
 * step, progress line and metrics per step. */
int nhgd_solver_run(nhgd_solver *s);

/* Collective. One inner loop at the current v, then u and the hypergradient, no outer step
 * (what `nhgd hypergrad` does). */
int nhgd_solver_hypergrad(nhgd_solver *s);

/* Collective. Write the output HDF5 file (see README: /theta, /v, /history, /config, and
 * /hypergradient, /u after nhgd_solver_hypergrad). Written under a temporary name and
 * renamed once every rank has succeeded. */
int nhgd_solver_write(nhgd_solver *s, const char *path);

/* Collective. Print the table of timing stages (min/avg/max over ranks) on rank 0. */
int nhgd_solver_report(nhgd_solver *s);

/* Read-only views (not collective): theta (d entries), this rank's v (p entries, or the
 * training rows it owns when v is per sample), the last u (d) and this rank's hypergradient
 * entries (same layout as v). */
const double *nhgd_solver_theta(const nhgd_solver *s);
const double *nhgd_solver_v(const nhgd_solver *s);
const double *nhgd_solver_u(const nhgd_solver *s);
const double *nhgd_solver_hypergradient(const nhgd_solver *s);
/* Number of entries of this rank's v slice. */
int64_t nhgd_solver_v_local(const nhgd_solver *s);
/* Validation loss and test accuracy of the last outer step (NaN when not evaluated). */
double nhgd_solver_val_loss(const nhgd_solver *s);
double nhgd_solver_test_accuracy(const nhgd_solver *s);

/* Collective; NULL-safe. */
void nhgd_solver_destroy(nhgd_solver **s);

#ifdef __cplusplus
}
#endif
#endif
