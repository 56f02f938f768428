/* The output HDF5 file of a run, and small HDF5 helpers for the solver. */
#ifndef NHGD_IO_OUTPUT_H
#define NHGD_IO_OUTPUT_H

#include <hdf5.h>
#include <stdint.h>

#include "io/h5util.h"
#include "nhgd/options.h"

struct nhgd_engine;

#define NHGD_OUTPUT_FORMAT_VERSION 1

/* Collective: write the output of the run (layout in README.md) to path, through a
 * temporary file renamed once every rank has succeeded. */
int nhgd_output_write(struct nhgd_engine *e, const char *path);

/* Collective: every option as a string attribute of group. */
int nhgd_output_write_options(hid_t group, const nhgd_options *o);

#endif
