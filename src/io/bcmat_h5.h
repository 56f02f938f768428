/* Block-cyclic matrices as HDF5 datasets (checkpoint sections use them). */
#ifndef NHGD_IO_BCMAT_H5_H
#define NHGD_IO_BCMAT_H5_H

#include <hdf5.h>

#include "linalg/bcmat.h"

/* Collective: write A as the n x n float64 dataset name under loc, stored column-major
 * (dataset[j][i] = A[i][j]; attribute storage_order says so), each rank writing its blocks
 * through at most four regular hyperslabs, with Fletcher32 checksums. The file does not
 * depend on the grid or block size. */
int nhgd_bcmat_h5_write(const nhgd_bcmat *A, hid_t loc, const char *name);
/* Collective: read such a dataset into A (any grid and block size); the size must match. */
int nhgd_bcmat_h5_read(nhgd_bcmat *A, hid_t loc, const char *name);

#endif
