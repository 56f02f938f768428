/* The output HDF5 file of a run, and small HDF5 helpers for the solver. */
#ifndef NHGD_IO_OUTPUT_H
#define NHGD_IO_OUTPUT_H

#include <hdf5.h>
#include <stdint.h>

struct nhgd_engine;

#define NHGD_OUTPUT_FORMAT_VERSION 1

/* Collective: write the output of the run (layout in README.md) to path, through a
 * temporary file renamed once every rank has succeeded. */
int nhgd_output_write(struct nhgd_engine *e, const char *path);

/* Not collective: read the 1-D float64 dataset name of exactly n entries from path. */
int nhgd_h5_read_vector(const char *path, const char *name, int64_t n, double *out);

/* Collective: write a 1-D float64 dataset of n_global entries, this rank's entries
 * [offset, offset+count) from data (count may be 0). */
int nhgd_h5_write_vector(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                         int64_t count, const double *data);
/* Collective: scalar attributes on an object. */
int nhgd_h5_attr_string(hid_t obj, const char *name, const char *value);
int nhgd_h5_attr_int(hid_t obj, const char *name, int64_t value);
int nhgd_h5_attr_double(hid_t obj, const char *name, double value);

#endif
