/* Checks for MPI test programs that abort the whole job on failure. */
/* cmocka would let the other ranks wait in a collective until the timeout; MPI_Abort ends the
 * job at once with the rank and location printed. */
#ifndef NHGD_TEST_DATA_MPI_CHECK_H
#define NHGD_TEST_DATA_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static inline int mc_rank(void) {
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

#define MC_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "[rank %d] %s:%d: check failed: %s\n  ", mc_rank(), __FILE__, __LINE__,      \
              #cond);                                                                              \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      fflush(stderr);                                                                              \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                \
    }                                                                                              \
  } while (0)

/* NHGD_TEST_NP, set by nhgd_add_mpi_test, checked against the real size so a test that
 * depends on it cannot silently test the wrong thing. */
static inline int mc_expected_np(void) {
  const char *s = getenv("NHGD_TEST_NP");
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (s) MC_CHECK(atoi(s) == size, "NHGD_TEST_NP=%s but MPI_COMM_WORLD has %d ranks", s, size);
  return size;
}

#endif
