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

/* Write a small logistic data set named <stem>_np<P>.h5 and load it on every rank (abort on
 * failure, printing why). */
static inline nhgd_data *synth_data_small_cls(const char *stem, int features) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char path[128];
  snprintf(path, sizeof path, "%s_np%d.h5", stem, size);
  const synth_data_sizes sizes = {
      .n_train = 61, .n_val = 23, .n_test = 10, .classes = 3, .noise = 1, .seed = 5};
  nhgd_data *cls = NULL;
  if (synth_data_write("logistic", path, features, &sizes) ||
      nhgd_data_load(MPI_COMM_WORLD, path, &cls)) {
    if (rank == 0) fprintf(stderr, "data: %s\n", nhgd_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return cls;
}

/* The pair of sets the estimator tests share: ridge (12 features, 300 training rows) and
 * logistic (6 features, 3 classes, 200 training rows), written to <stem>_ridge_np<P>.h5 and
 * <stem>_cls_np<P>.h5 (their paths in ridge_path and cls_path, 128 bytes each) and loaded on
 * every rank (abort on failure, printing why). */
static inline void synth_data_pair(const char *stem, char *ridge_path, char *cls_path,
                                   nhgd_data **ridge, nhgd_data **cls) {
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  snprintf(ridge_path, 128, "%s_ridge_np%d.h5", stem, size);
  snprintf(cls_path, 128, "%s_cls_np%d.h5", stem, size);
  const synth_data_sizes ridge_sizes = {
      .n_train = 300, .n_val = 120, .n_test = 20, .classes = 3, .noise = 0.7, .seed = 5};
  const synth_data_sizes cls_sizes = {
      .n_train = 200, .n_val = 60, .n_test = 20, .classes = 3, .noise = 0.7, .seed = 5};
  int rc = synth_data_write("ridge", ridge_path, 12, &ridge_sizes);
  if (!rc) rc = synth_data_write("logistic", cls_path, 6, &cls_sizes);
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, ridge_path, ridge);
  if (!rc) rc = nhgd_data_load(MPI_COMM_WORLD, cls_path, cls);
  if (rc) {
    if (rank == 0) fprintf(stderr, "data: %s\n", nhgd_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

#endif
