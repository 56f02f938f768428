/* The output file of a run: the start-up check of its path. */
#ifndef NHGD_OUTPUT_H
#define NHGD_OUTPUT_H

#include "nhgd/export.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Collective over comm: can the output file path be written? Refuses a folder, and a path
 * whose temporary name (path.tmp) cannot be created (rank 0 tries; every rank returns the
 * same status, NHGD_ERR_IO naming the path and the cause). Meant for start-up, so that a bad
 * --output is found before the run rather than after it. */
NHGD_API int nhgd_output_check(MPI_Comm comm, const char *path);

#ifdef __cplusplus
}
#endif
#endif
