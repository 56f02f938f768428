/* Private interfaces shared by the data file reader and the writers behind `nhgd data`. */
#ifndef NHGD_DATA_INTERNAL_H
#define NHGD_DATA_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "nhgd/data.h"

/* Values of the root attributes format and format_version written by every writer. */
#define NHGD_DATA_FORMAT "nhgd-data"
#define NHGD_DATA_FORMAT_VERSION 1

/* Copy the innermost message of HDF5's current error stack into buf ("" if none). Call it
 * right after the failing HDF5 call: the next API call clears the stack. Not collective. */
void nhgd_data_h5_detail(char *buf, size_t len);

/* Collective: nhgd_data_load on the bytes of an HDF5 file in memory (HDF5's core driver,
 * nothing written back; meant for one process, e.g. MPI_COMM_SELF): name stands for the file
 * in messages and in the data's path. The fuzz harness of the reader uses it. */
int nhgd_data_load_image(MPI_Comm comm, const char *name, const void *image, size_t size,
                         nhgd_data **out);

/* Bytes a dense split may take: MemAvailable, or NHGD_MAX_DENSE_MB when set lower (the fuzz
 * harnesses set it to their own allocation limit). A value that is not a number of MiB in
 * (0, 1e12] is an NHGD_ERR_ARG error, as an option's would be. */
int nhgd_data_dense_limit(double *bytes);

/* ---- One split held in memory by a writer ---- */

/* Dense row-major n x m features with either class labels or real targets. */
typedef struct nhgd_wsplit {
  int64_t n;
  int m;
  double *X;
  int32_t *y_class; /* classification */
  double *y_real;   /* regression */
} nhgd_wsplit;

/* Allocate X (n x m) and y_class (classification) or y_real (regression). */
int nhgd_wsplit_alloc(nhgd_wsplit *s, int64_t n, int m, int classification, const char *what);
/* Free the arrays of s (not s itself). NULL-safe. */
void nhgd_wsplit_free(nhgd_wsplit *s);

/* Standardise every feature with the mean and standard deviation of train (a constant
 * feature gets deviation 1, so it becomes 0) and apply the same map to val and test;
 * val and test may be NULL. */
int nhgd_data_standardize(nhgd_wsplit *train, nhgd_wsplit *val, nhgd_wsplit *test);

/* ---- Serial HDF5 writer (sec2 driver, one process) ---- */

/* A file being written to "<path>.tmp"; nhgd_h5w_finish renames it to path. */
typedef struct nhgd_h5w {
  hid_t file;
  char path[4096];
  char tmp[4096 + 8];
} nhgd_h5w;

/* Create "<path>.tmp" (replacing any previous one) and write the root attributes format and
 * format_version. On failure nothing is left on disk. */
int nhgd_h5w_create(nhgd_h5w *w, const char *path);

/* Write the split as the group /name with datasets X (float32 if x_as_float32, else
 * float64) and y (int32 labels or float64 targets). */
int nhgd_h5w_split(nhgd_h5w *w, const char *name, const nhgd_wsplit *s, int x_as_float32);

/* Datasets at an absolute path such as "/train/y_clean"; parent groups must exist. A
 * matrix is row-major rows x cols. */
int nhgd_h5w_matrix(nhgd_h5w *w, const char *path, int64_t rows, int64_t cols, const double *a,
                    int as_float32);
int nhgd_h5w_int32s(nhgd_h5w *w, const char *path, int64_t n, const int32_t *v);
int nhgd_h5w_int8s(nhgd_h5w *w, const char *path, int64_t n, const int8_t *v);
int nhgd_h5w_doubles(nhgd_h5w *w, const char *path, int64_t n, const double *v);
/* Create an empty group at an absolute path (parent must exist). */
int nhgd_h5w_group(nhgd_h5w *w, const char *path);

/* Root attributes. */
int nhgd_h5w_attr_int(nhgd_h5w *w, const char *name, int64_t v);
int nhgd_h5w_attr_u64(nhgd_h5w *w, const char *name, uint64_t v);
int nhgd_h5w_attr_double(nhgd_h5w *w, const char *name, double v);
int nhgd_h5w_attr_doubles(nhgd_h5w *w, const char *name, int64_t n, const double *v);
int nhgd_h5w_attr_string(nhgd_h5w *w, const char *name, const char *v);

/* Finish a file: if status is 0, close it and rename it into place; otherwise (or if
 * closing or renaming fails) remove the temporary file. Returns the final status. */
int nhgd_h5w_finish(nhgd_h5w *w, int status);

/* ---- IDX files (idx.c) ---- */

/* An IDX array of unsigned bytes: dims[0] items of dims[1] x dims[2] (images) or single
 * bytes (labels). */
typedef struct nhgd_idx {
  int ndim;
  int64_t dims[3];
  uint8_t *data;
} nhgd_idx;

/* Read an IDX file (gzip-compressed or plain) of unsigned bytes with ndim dimensions (1 for
 * labels, 3 for images). Checks the magic number, the dimensions and that the file holds
 * exactly the bytes its header promises. */
int nhgd_idx_read(const char *path, int ndim, nhgd_idx *out);
/* Read an images file and its labels file and check that their counts agree. */
int nhgd_idx_read_pair(const char *images, const char *labels, nhgd_idx *img, nhgd_idx *lab);
void nhgd_idx_free(nhgd_idx *a);
/* Number of classes of a label array: max label + 1; at least 2 is required. */
int nhgd_idx_classes(const nhgd_idx *lab, const char *path, int *n_classes);
/* Copy images rows[0..n) as features scaled to [0, 1] (pixel / 255) and their labels. */
void nhgd_idx_gather(const nhgd_idx *img, const nhgd_idx *lab, const int64_t *rows, int64_t n,
                     nhgd_wsplit *out);

/* What an IDX writer (fashion-mnist in fmnist.c, import-idx in idx.c) holds while it runs:
 * the training and test images and labels as read, the splits made of them, a row
 * permutation and the output file. Start from {.w = {.file = H5I_INVALID_HID}}, all else
 * zero. */
typedef struct nhgd_idx_writer {
  nhgd_idx img, lab, timg, tlab;
  nhgd_wsplit train, val, test;
  int64_t *perm;
  nhgd_h5w w;
} nhgd_idx_writer;
/* End an IDX writer: finish its file with status (see nhgd_h5w_finish) and free everything
 * it holds. Returns the final status. */
int nhgd_idx_writer_end(nhgd_idx_writer *iw, int status);

#endif
