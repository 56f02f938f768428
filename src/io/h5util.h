/* Small HDF5 helpers shared by the output and checkpoint writers. */
#ifndef NHGD_IO_H5UTIL_H
#define NHGD_IO_H5UTIL_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "nhgd/options.h"

/* Dataset creation property list; chunked with Fletcher32 checksums when checksum is set. */
hid_t nhgd_h5_dcpl(int rank, const hsize_t *dims, int checksum);
/* A dataset transfer property list for obj's file: collective with the MPI-IO driver, the
 * default with any other (a checkpoint image in memory, through the core driver). */
hid_t nhgd_h5_xfer(hid_t obj);

/* Collective: write a 1-D float64 dataset of n_global entries, this rank's entries
 * [offset, offset+count) from data (count may be 0); _ex adds Fletcher32 checksums. */
int nhgd_h5_write_vector(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                         int64_t count, const double *data);
int nhgd_h5_write_vector_ex(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                            int64_t count, const double *data, int checksum);
/* Collective: read entries [offset, offset+count) of a 1-D dataset that must have n_global
 * entries. */
int nhgd_h5_read_vector_coll(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                             int64_t count, double *out);
/* Not collective: read the whole 1-D float64 dataset name of exactly n entries from path,
 * all finite. */
int nhgd_h5_read_vector(const char *path, const char *name, int64_t n, double *out);

/* Collective: scalar attributes. */
int nhgd_h5_attr_string(hid_t obj, const char *name, const char *value);
int nhgd_h5_attr_int(hid_t obj, const char *name, int64_t value);
int nhgd_h5_attr_double(hid_t obj, const char *name, double value);
int nhgd_h5_attr_read_int(hid_t obj, const char *name, int64_t *value);
int nhgd_h5_attr_read_double(hid_t obj, const char *name, double *value);
int nhgd_h5_attr_read_string(hid_t obj, const char *name, char *buf, size_t len);

/* Collective: the attributes every file nhgd writes starts with: format, format_version,
 * nhgd_version, git_revision, ranks. */
int nhgd_h5_write_header(hid_t f, const char *format, int64_t version, int ranks);

/* Collective: every option of o as a string attribute of group (outputs and checkpoints). */
int nhgd_h5_write_options(hid_t group, const nhgd_options *o);

/* Collective: create group name in loc, agreed on: every rank has it (*g), or none has. */
int nhgd_h5_group_agreed(MPI_Comm comm, hid_t loc, const char *name, hid_t *g);

/* Collective: refuse (NHGD_ERR_IO, naming what) if the device of dir has less than need bytes
 * free; rank 0 looks, every rank returns the same status. Unknown free space passes. */
int nhgd_io_check_space(MPI_Comm comm, const char *dir, double need, const char *what);

/* HDF5 identifiers are negative on failure; the message then ends with HDF5's own cause
 * (e.g. the system error of a failed write), taken from its error stack. */
#define NHGD_H5_TRY(rc, expr, label, ...)                                                          \
  do {                                                                                             \
    if ((expr) < 0 || nhgd_fault_hit_h5(#expr)) {                                                  \
      (rc) = nhgd_error_set(NHGD_ERR_HDF5, __FILE__, __LINE__, __VA_ARGS__);                       \
      nhgd_h5_append_cause();                                                                      \
      goto label;                                                                                  \
    }                                                                                              \
  } while (0)

/* Not collective: add HDF5's cause of the failure just recorded to its message. */
void nhgd_h5_append_cause(void);

/* Silence HDF5's own error stack printing (we report errors ourselves). Not collective. */
void nhgd_h5_quiet(void);

#endif
