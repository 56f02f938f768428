/* Fault injection for test builds (-DNHGD_FAULTS=ON); empty otherwise. */
#include "core/fault.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NHGD_FAULTS
/* Test builds only. The rank is the world rank: a fault is aimed at one process of the job,
 * whatever communicator the failing call is made on. */
static long fault_calls[NHGD_FAULT_KINDS];
static long fault_at = -1;
static int fault_parsed, fault_kind = -1, fault_rank, fault_fired;

static int fault_rank_cached = -1;
static const char *fault_call = "";

/* The world rank, remembered: the report at exit comes after MPI_Finalize. */
static int fault_world_rank(void) {
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (fault_rank_cached < 0 && up && !down) MPI_Comm_rank(MPI_COMM_WORLD, &fault_rank_cached);
  return fault_rank_cached < 0 ? 0 : fault_rank_cached;
}

static const char *fault_count_path;

/* At exit, after MPI_Finalize: appended to a file, as the launcher may no longer forward
 * standard error by then. */
static void fault_report(void) {
  FILE *f = fopen(fault_count_path, "a");
  if (!f) return;
  fprintf(f, "nhgd-faults: rank %d: h5 %ld alloc %ld\n", fault_world_rank(),
          fault_calls[NHGD_FAULT_H5], fault_calls[NHGD_FAULT_ALLOC]);
  fclose(f);
}

static void fault_parse(void) {
  fault_parsed = 1;
  const char *spec = getenv("NHGD_FAULT");
  const char *count = getenv("NHGD_FAULT_COUNT");
  if (count && count[0]) {
    fault_count_path = count;
    atexit(fault_report);
  }
  if (!spec || !spec[0]) return;
  char kind[16] = "";
  long n = -1;
  int r = 0;
  if (sscanf(spec, "%15[a-z0-9]:%ld:%d", kind, &n, &r) < 2 || n < 1) return;
  fault_kind = !strcmp(kind, "h5") ? NHGD_FAULT_H5 : !strcmp(kind, "alloc") ? NHGD_FAULT_ALLOC : -1;
  fault_at = n;
  fault_rank = r;
}

int nhgd_fault_hit(int kind) {
  if (!fault_parsed) fault_parse();
  long n = ++fault_calls[kind];
  (void)fault_world_rank();
  if (kind != fault_kind || n != fault_at || fault_fired) return 0;
  if (fault_world_rank() != fault_rank) return 0;
  fault_fired = 1;
  fprintf(stderr, "nhgd-faults: injecting a failure of %s call %ld on rank %d (%.60s)\n",
          kind == NHGD_FAULT_H5 ? "HDF5" : "allocation", n, fault_rank,
          kind == NHGD_FAULT_H5 ? fault_call : "nhgd_calloc");
  return 1;
}

int nhgd_fault_hit_h5(const char *call) {
  static const char *const transfers[] = {"H5Dwrite", "H5Dread"};
  for (size_t i = 0; i < sizeof transfers / sizeof transfers[0]; ++i)
    if (strstr(call, transfers[i])) {
      fault_call = call;
      return nhgd_fault_hit(NHGD_FAULT_H5);
    }
  return 0;
}
#endif

/* ISO C forbids an empty translation unit. */
typedef int nhgd_fault_unit;
