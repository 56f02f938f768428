/* Sharded input data: the rows of /train, /val and /test that this rank owns, and the
 * writers behind `nhgd data` that produce input files. */
#ifndef NHGD_DATA_H
#define NHGD_DATA_H

#include "nhgd/export.h"

#include <mpi.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One split (train, val or test) as seen by one rank. Rank r owns the contiguous global
 * rows [lo, lo + n_local) with lo = r*(n/P) + min(r, n%P): the first n%P ranks own one row
 * more. X is row-major n_local x m (which is column-major m x n_local, ld = m). Exactly one
 * of y_class (classification) and y_real (regression) is non-NULL when n_local > 0. */
typedef struct nhgd_split {
  int64_t n_global; /* rows in the whole file */
  int64_t lo;       /* first global row owned here */
  int n_local;      /* rows owned here (may be 0 only if n_global < ranks, which is rejected) */
  int m;            /* features */
  double *X;
  int32_t *y_class;
  double *y_real;
} nhgd_split;

/* Task of a data file: given by the presence of the root attribute n_classes. */
typedef enum nhgd_task { NHGD_TASK_REGRESSION = 0, NHGD_TASK_CLASSIFICATION = 1 } nhgd_task;

/* The data of one run, held by every rank of comm. */
typedef struct nhgd_data {
  MPI_Comm comm; /* duplicated from the caller's communicator */
  int rank, size;
  nhgd_task task;
  int n_classes; /* 0 for regression */
  int m;         /* features, equal in all splits */
  nhgd_split train, val, test;
  int has_test;
  char path[4096];
} nhgd_data;

/* Collective. Read the rows of path that this rank owns (collective hyperslab reads; no
 * rank reads more than its own rows). Validates everything: groups and datasets present,
 * X two-dimensional float32/float64, y one-dimensional int32 (classification) or float64
 * (regression) with as many rows as X, equal feature counts, labels in 0..n_classes-1,
 * finite values, at least as many rows as ranks in every split. On error every rank
 * returns the same status and message (naming the file, dataset and problem) and *out is
 * NULL. */
NHGD_API int nhgd_data_load(MPI_Comm comm, const char *path, nhgd_data **out);

/* Collective (frees the duplicated communicator). Frees the data and sets *data to NULL;
 * NULL-safe. */
NHGD_API void nhgd_data_destroy(nhgd_data **data);

/* Rows [lo, lo+n) owned by rank r of P for a split of n_global rows. Not collective. */
NHGD_API void nhgd_partition(int64_t n_global, int P, int r, int64_t *lo, int64_t *n);

/* Rank that owns global row i. Not collective. */
NHGD_API int nhgd_partition_owner(int64_t n_global, int P, int64_t i);

/* ---- Writers behind `nhgd data` (run on one process; not collective) ---- */

/* Fashion-MNIST with the hyper-cleaning protocol (docs/algorithm.md section 6). */
typedef struct nhgd_fmnist_options {
  char dir[4096];    /* folder with the four IDX files (.gz or plain) */
  char output[4096]; /* HDF5 file to write */
  int64_t n_train;   /* training rows */
  int64_t n_val;     /* validation rows */
  double corruption; /* probability that a training label is replaced */
  uint64_t seed;     /* seed of the split and the corruption */
  int standardize;   /* standardise features with the train mean and deviation */
} nhgd_fmnist_options;
/* The defaults of nhgd_fmnist_options, the one place they are written: used by
 * nhgd_fmnist_options_default and, as text, by `nhgd data fashion-mnist` (so each must stay
 * a plain literal that the command line parses back to the same value). */
#define NHGD_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define NHGD_FMNIST_DEFAULT_OUTPUT "fashion_mnist.h5"
#define NHGD_FMNIST_DEFAULT_N_TRAIN 20000
#define NHGD_FMNIST_DEFAULT_N_VAL 5000
#define NHGD_FMNIST_DEFAULT_CORRUPTION 0.5
#define NHGD_FMNIST_DEFAULT_SEED 0
#define NHGD_FMNIST_DEFAULT_STANDARDIZE 1
/* Set every field of *o to its default above. */
NHGD_API void nhgd_fmnist_options_default(nhgd_fmnist_options *o);
NHGD_API int nhgd_data_fashion_mnist(const nhgd_fmnist_options *o);

/* Defaults of the IDX and LIBSVM importers (the library's _default functions and the
 * options of `nhgd data idx|libsvm` both use these). */
#define NHGD_IMPORT_DEFAULT_OUTPUT "imported.h5"
#define NHGD_IMPORT_DEFAULT_VAL_FRACTION 0.2
#define NHGD_IMPORT_DEFAULT_TEST_FRACTION 0.2
#define NHGD_IMPORT_DEFAULT_SEED 0
#define NHGD_IMPORT_DEFAULT_STANDARDIZE 1

/* A user's IDX image/label files split into train/val (and test from separate files). */
typedef struct nhgd_import_idx_options {
  char images[4096], labels[4096];           /* required */
  char test_images[4096], test_labels[4096]; /* optional, both or neither */
  char output[4096];
  double val_fraction; /* default 0.2 */
  uint64_t seed;
  int standardize; /* default 1 */
} nhgd_import_idx_options;
NHGD_API void nhgd_import_idx_options_default(nhgd_import_idx_options *o);
NHGD_API int nhgd_data_import_idx(const nhgd_import_idx_options *o);

/* A LIBSVM text file ("label idx:value ..." per line, 1-based indices). */
typedef struct nhgd_import_libsvm_options {
  char input[4096]; /* required */
  char test[4096];  /* optional */
  char output[4096];
  int64_t features; /* 0: the largest index seen */
  int regression;   /* 1: float targets; 0: classes, distinct labels mapped to 0..C-1 */
  double val_fraction, test_fraction; /* test_fraction used when no test file is given */
  uint64_t seed;
  int standardize;
} nhgd_import_libsvm_options;
NHGD_API void nhgd_import_libsvm_options_default(nhgd_import_libsvm_options *o);
NHGD_API int nhgd_data_import_libsvm(const nhgd_import_libsvm_options *o);

/* Defaults of the synthetic data writer (library and `nhgd data synth`). */
#define NHGD_SYNTH_DEFAULT_KIND "ridge"
#define NHGD_SYNTH_DEFAULT_OUTPUT "synth.h5"
#define NHGD_SYNTH_DEFAULT_N_TRAIN 1000
#define NHGD_SYNTH_DEFAULT_N_VAL 500
#define NHGD_SYNTH_DEFAULT_N_TEST 500
#define NHGD_SYNTH_DEFAULT_FEATURES 20
#define NHGD_SYNTH_DEFAULT_CLASSES 3
#define NHGD_SYNTH_DEFAULT_NOISE 1
#define NHGD_SYNTH_DEFAULT_SEED 0

/* Synthetic ridge (linear-Gaussian) or logistic (softmax) data with the true parameters
 * stored under /truth. */
typedef struct nhgd_synth_options {
  char kind[16]; /* "ridge" or "logistic" */
  char output[4096];
  int64_t n_train, n_val, n_test;
  int features, classes;
  double noise; /* ridge: noise standard deviation sigma */
  uint64_t seed;
} nhgd_synth_options;
NHGD_API void nhgd_synth_options_default(nhgd_synth_options *o);
NHGD_API int nhgd_data_synth(const nhgd_synth_options *o);

#ifdef __cplusplus
}
#endif
#endif
