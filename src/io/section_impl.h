/* The inside of a checkpoint section, for the checkpoint writer and reader only. */
#ifndef NHGD_IO_SECTION_IMPL_H
#define NHGD_IO_SECTION_IMPL_H

#include <hdf5.h>
#include <mpi.h>

#include "io/section.h"

struct nhgd_section {
  hid_t loc; /* the file or a group */
  int rank;
  MPI_Comm comm;  /* every call agrees on its outcome over comm before it returns */
  double *sizing; /* not NULL: nothing is written, the bytes a write would need are added */
};

#endif
