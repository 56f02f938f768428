/* Helpers for the data tests: serial HDF5 reads, small file writers, string checks. */
#ifndef NHGD_TEST_DATA_TESTUTIL_H
#define NHGD_TEST_DATA_TESTUTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Whole dataset as doubles (row-major); *rows, *cols get its shape (cols = 1 for 1-D).
 * NULL (after printing why) if it is missing. Free with free(). */
double *tu_read_doubles(const char *path, const char *dset, int64_t *rows, int64_t *cols);
/* Whole 1-D integer dataset as int32. */
int32_t *tu_read_ints(const char *path, const char *dset, int64_t *n);
/* 1 if the object (group or dataset) exists, 0 if not. */
int tu_exists(const char *path, const char *object);
/* Class and size in bytes of a dataset's type; returns 0 on success. */
int tu_dataset_type(const char *path, const char *dset, H5T_class_t *cls, size_t *size);
/* Root attributes; return 0 on success, -1 if absent. */
int tu_attr_int(const char *path, const char *name, long long *v);
int tu_attr_double(const char *path, const char *name, double *v);
int tu_attr_doubles(const char *path, const char *name, double *v, int64_t max, int64_t *n);
int tu_attr_string(const char *path, const char *name, char *buf, size_t len);

/* Write bytes to a file; gz != 0 compresses with zlib. Returns 0 on success. */
int tu_write_bytes(const char *path, const void *data, size_t n, int gz);
/* Write text to a file. */
int tu_write_text(const char *path, const char *text);
/* IDX file of unsigned bytes: magic, ndim big-endian dimensions, then n_data bytes of data
 * (which may differ from the product of the dimensions to make damaged files). */
int tu_write_idx(const char *path, int gz, uint32_t magic, int ndim, const uint32_t *dims,
                 const uint8_t *data, size_t n_data);
/* Size of a file in bytes, -1 if it does not exist. */
long long tu_file_size(const char *path);
/* 1 if two files have identical bytes. */
int tu_same_bytes(const char *a, const char *b);

/* 1 if haystack contains needle; otherwise prints both and returns 0. */
int tu_contains(const char *haystack, const char *needle);

#endif
