/* Synthetic data files for the MPI tests of the engine and the estimators. */
#ifndef NHGD_TESTS_SYNTH_DATA_H
#define NHGD_TESTS_SYNTH_DATA_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "nhgd/nhgd.h"

/* The fields of nhgd_synth_options that a test chooses, besides kind, output and features;
 * every field is copied, so give each one (noise 1 is the generator's default). */
typedef struct synth_data_sizes {
  int64_t n_train, n_val, n_test;
  int classes;
  double noise;
  uint64_t seed;
} synth_data_sizes;

/* Collective on MPI_COMM_WORLD: rank 0 writes `kind` ("ridge" or "logistic") data with the
 * given features and sizes to path; every rank returns the same status. */
static inline int synth_data_write(const char *kind, const char *path, int features,
                                   const synth_data_sizes *z) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  nhgd_synth_options so;
  nhgd_synth_options_default(&so);
  snprintf(so.kind, sizeof so.kind, "%s", kind);
  snprintf(so.output, sizeof so.output, "%s", path);
  so.n_train = z->n_train, so.n_val = z->n_val, so.n_test = z->n_test;
  so.features = features, so.classes = z->classes, so.noise = z->noise, so.seed = z->seed;
  int rc = rank == 0 ? nhgd_data_synth(&so) : 0;
  return nhgd_error_agree(MPI_COMM_WORLD, rc);
}

#endif
