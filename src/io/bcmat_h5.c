/* Block-cyclic matrices as HDF5 datasets: each rank writes and reads its own blocks. */
#include "io/bcmat_h5.h"

#include "core/util.h"
#include "io/h5util.h"

/* Select this rank's blocks in a file space (dims j, i: the dataset is column-major) and the
 * matching memory space (nloc x lld): at most four hyperslabs, from the layout's own slabs. */
static int select_local(const nhgd_bcmat *A, hid_t fs, hid_t ms) {
  nhgd_bcmat_slab r[2], c[2];
  int nr, nc;
  if (nhgd_bcmat_local_slabs(A, r, &nr, c, &nc) == 0) {
    H5Sselect_none(fs);
    H5Sselect_none(ms);
    return NHGD_OK;
  }
  int first = 1;
  for (int jc = 0; jc < nc; ++jc)
    for (int ir = 0; ir < nr; ++ir) {
      hsize_t start[2] = {(hsize_t)c[jc].start, (hsize_t)r[ir].start};
      hsize_t stride[2] = {(hsize_t)c[jc].stride, (hsize_t)r[ir].stride};
      hsize_t count[2] = {(hsize_t)c[jc].count, (hsize_t)r[ir].count};
      hsize_t block[2] = {(hsize_t)c[jc].block, (hsize_t)r[ir].block};
      if (H5Sselect_hyperslab(fs, first ? H5S_SELECT_SET : H5S_SELECT_OR, start, stride, count,
                              block) < 0)
        NHGD_FAIL(NHGD_ERR_HDF5, "cannot select the local blocks");
      first = 0;
    }
  hsize_t mstart[2] = {0, 0}, mcount[2] = {(hsize_t)A->nloc, (hsize_t)A->mloc};
  if (H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, NULL, mcount, NULL) < 0)
    NHGD_FAIL(NHGD_ERR_HDF5, "cannot select the local array");
  return NHGD_OK;
}

static int bcmat_io(nhgd_bcmat *A, hid_t loc, const char *name, int write) {
  int rc = NHGD_OK;
  hsize_t dims[2] = {(hsize_t)A->n, (hsize_t)A->n};
  hsize_t mdims[2] = {(hsize_t)(A->nloc > 0 ? A->nloc : 1), (hsize_t)A->lld};
  hid_t fs = -1, ms = -1, ds = -1, xp = -1, dcpl = -1;
  NHGD_H5_TRY(rc, ms = H5Screate_simple(2, mdims, NULL), done, "memory space of %s", name);
  if (write) {
    NHGD_H5_TRY(rc, fs = H5Screate_simple(2, dims, NULL), done, "file space of %s", name);
    NHGD_H5_TRY(rc, dcpl = nhgd_h5_dcpl(2, dims, 1), done, "properties of %s", name);
    NHGD_H5_TRY(rc, ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                done, "cannot create dataset %s", name);
    NHGD_TRY(rc, nhgd_h5_attr_string(ds, "storage_order", "column-major: dataset[j][i] = A[i][j]"),
             done);
  } else {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s is missing", name);
    NHGD_H5_TRY(rc, ds = H5Dopen2(loc, name, H5P_DEFAULT), done, "cannot open %s", name);
    NHGD_H5_TRY(rc, fs = H5Dget_space(ds), done, "file space of %s", name);
    hsize_t have[2] = {0, 0};
    if (H5Sget_simple_extent_ndims(fs) != 2)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s is not a matrix", name);
    H5Sget_simple_extent_dims(fs, have, NULL);
    if (have[0] != dims[0] || have[1] != dims[1])
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s is %llu x %llu, expected %d x %d", name,
                 (unsigned long long)have[0], (unsigned long long)have[1], A->n, A->n);
  }
  NHGD_TRY(rc, select_local(A, fs, ms), done);
  NHGD_H5_TRY(rc, xp = nhgd_h5_xfer(ds), done, "transfer properties");
  if (write)
    NHGD_H5_TRY(rc, H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, xp, A->a), done,
                "cannot write dataset %s", name);
  else
    NHGD_H5_TRY(rc, H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, xp, A->a), done,
                "cannot read dataset %s (damaged? checksum mismatch?)", name);
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (xp >= 0) H5Pclose(xp);
  if (ds >= 0) H5Dclose(ds);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return rc;
}

int nhgd_bcmat_h5_write(const nhgd_bcmat *A, hid_t loc, const char *name) {
  return bcmat_io((nhgd_bcmat *)A, loc, name, 1);
}

int nhgd_bcmat_h5_read(nhgd_bcmat *A, hid_t loc, const char *name) {
  return bcmat_io(A, loc, name, 0);
}
