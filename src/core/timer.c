/* Named timing stages. */
#include "core/timer.h"

#include "nhgd/errors.h"

static const char *const stage_names[NHGD_T_COUNT] = {
    "sampling", "inner_grad", "allreduce", "curvature", "solve", "hypergrad", "eval", "io"};

const char *nhgd_stage_name(int stage) {
  return stage >= 0 && stage < NHGD_T_COUNT ? stage_names[stage] : "?";
}

void nhgd_timer_start(nhgd_timers *t, nhgd_stage s) {
  t->started[s] = MPI_Wtime();
}

void nhgd_timer_stop(nhgd_timers *t, nhgd_stage s) {
  t->acc[s] += MPI_Wtime() - t->started[s];
}

int nhgd_timers_reduce(const nhgd_timers *t, MPI_Comm comm, double *mn, double *avg, double *mx) {
  int P;
  MPI_Comm_size(comm, &P);
  NHGD_MPI_CHECK(MPI_Allreduce(t->acc, mn, NHGD_T_COUNT, MPI_DOUBLE, MPI_MIN, comm));
  NHGD_MPI_CHECK(MPI_Allreduce(t->acc, mx, NHGD_T_COUNT, MPI_DOUBLE, MPI_MAX, comm));
  NHGD_MPI_CHECK(MPI_Allreduce(t->acc, avg, NHGD_T_COUNT, MPI_DOUBLE, MPI_SUM, comm));
  for (int i = 0; i < NHGD_T_COUNT; ++i)
    avg[i] /= P;
  return NHGD_OK;
}
