/* Named timing stages accumulated per rank and reduced to min/avg/max at the end. */
#ifndef NHGD_CORE_TIMER_H
#define NHGD_CORE_TIMER_H

#include <mpi.h>
#include <stdio.h>

typedef enum {
  NHGD_T_SAMPLING,
  NHGD_T_INNER_GRAD,
  NHGD_T_ALLREDUCE,
  NHGD_T_CURVATURE,
  NHGD_T_SOLVE,
  NHGD_T_HYPERGRAD,
  NHGD_T_EVAL,
  NHGD_T_IO,
  NHGD_T_COUNT
} nhgd_stage;

typedef struct nhgd_timers {
  double acc[NHGD_T_COUNT];
  double started[NHGD_T_COUNT];
} nhgd_timers;

const char *nhgd_stage_name(int stage);
void nhgd_timer_start(nhgd_timers *t, nhgd_stage s);
void nhgd_timer_stop(nhgd_timers *t, nhgd_stage s);
/* Collective: min, avg, max over the ranks of comm for every stage. */
int nhgd_timers_reduce(const nhgd_timers *t, MPI_Comm comm, double *mn, double *avg, double *mx);

#endif
