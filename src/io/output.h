/* The output HDF5 file of a run. */
#ifndef NHGD_IO_OUTPUT_H
#define NHGD_IO_OUTPUT_H

#include <mpi.h>
#include <stdint.h>

#include "core/timer.h"
#include "io/history.h"
#include "nhgd/options.h"

#define NHGD_OUTPUT_FORMAT_VERSION 1

/* What the output holds, as the solver hands it over. */
typedef struct nhgd_output_view {
  MPI_Comm comm;
  int rank, size;
  const char *problem, *estimator;
  int64_t outer_steps_done;
  double bytes_per_step;           /* this rank's estimator payload per inner step */
  int64_t d, p, v_offset, v_count; /* v and h: this rank's [offset, offset + count) */
  const double *theta, *v, *h, *u; /* h and u only when have_hypergrad */
  int have_hypergrad;
  const nhgd_options *options;
  const nhgd_history *history;
  const nhgd_timers *timers;
} nhgd_output_view;

/* Collective: write the output of the run (layout in docs/usage.md) to path, through a
 * temporary file renamed once every rank has succeeded. */
int nhgd_output_write(const nhgd_output_view *o, const char *path);

#endif
