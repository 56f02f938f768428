/* Serial HDF5 writer shared by every `nhgd data` writer: temporary file, then rename. */
#include "data/data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "io/h5util.h"

typedef struct detail_buf {
  char *buf;
  size_t len;
} detail_buf;

static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *client) {
  /* Walking upward, the first entry is where HDF5 detected the problem: the most specific
   * description (e.g. "truncated file: eof = ..."). */
  detail_buf *d = (detail_buf *)client;
  if (n == 0 && e->desc) snprintf(d->buf, d->len, "%s", e->desc);
  return 0;
}

void nhgd_data_h5_detail(char *buf, size_t len) {
  if (len == 0) return;
  buf[0] = '\0';
  detail_buf d = {buf, len};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, &d);
}

/* Record an HDF5 failure about path and object, with HDF5's own innermost message. */
static int h5_fail(const char *file, int line, const char *path, const char *what,
                   const char *object) {
  char detail[512];
  nhgd_data_h5_detail(detail, sizeof detail);
  return nhgd_error_set(NHGD_ERR_HDF5, file, line, "%s: cannot %s %s%s%s", path, what, object,
                        detail[0] ? ": " : "", detail);
}
#define H5W_FAIL(rc, label, what, object)                                                          \
  do {                                                                                             \
    (rc) = h5_fail(__FILE__, __LINE__, w->path, (what), (object));                                 \
    goto label;                                                                                    \
  } while (0)

int nhgd_h5w_create(nhgd_h5w *w, const char *path) {
  int rc = NHGD_OK;
  hid_t fapl = H5I_INVALID_HID;
  w->file = H5I_INVALID_HID;
  nhgd_h5_quiet();
  if (!path || !path[0]) NHGD_FAIL(NHGD_ERR_ARG, "no output file given");
  if (strlen(path) >= sizeof w->path) NHGD_FAIL(NHGD_ERR_ARG, "output path too long: %s", path);
  snprintf(w->path, sizeof w->path, "%s", path);
  snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
  /* The sec2 driver explicitly: these files are written by one process even when the
   * library is linked against parallel HDF5 and the program runs under mpirun. */
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0) H5W_FAIL(rc, done, "create", "(file access list)");
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (w->file < 0) {
    char detail[512];
    nhgd_data_h5_detail(detail, sizeof detail);
    NHGD_RAISE(rc, done, NHGD_ERR_IO, "%s: cannot create the temporary file %s%s%s", path, w->tmp,
               detail[0] ? ": " : "", detail);
  }
  NHGD_TRY(rc, nhgd_h5w_attr_string(w, "format", NHGD_DATA_FORMAT), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(w, "format_version", NHGD_DATA_FORMAT_VERSION), done);
done:
  if (fapl >= 0) H5Pclose(fapl);
  if (rc && w->file >= 0) {
    H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    remove(w->tmp);
  }
  return rc;
}

int nhgd_h5w_finish(nhgd_h5w *w, int status) {
  if (w->file < 0) return status;
  if (H5Fclose(w->file) < 0 && !status)
    status = h5_fail(__FILE__, __LINE__, w->path, "close", w->tmp);
  w->file = H5I_INVALID_HID;
  /* rename() is atomic: readers see either the previous file or the complete new one. */
  if (!status && rename(w->tmp, w->path) != 0)
    status = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "%s: cannot rename %s into place: %s",
                            w->path, w->tmp, strerror(errno));
  if (status) remove(w->tmp);
  return status;
}

/* A dataset of rank 1 or 2 at path, chunked (about 1 MiB chunks), without modification times
 * so that the same inputs give byte-identical files. */
static int write_dataset(nhgd_h5w *w, const char *path, int rank, const hsize_t *dims,
                         hid_t filetype, hid_t memtype, const void *buf) {
  int rc = NHGD_OK;
  hid_t dcpl = H5I_INVALID_HID, space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
  const hsize_t target = (hsize_t)1 << 20, elsize = H5Tget_size(filetype);
  hsize_t chunk[2], total = 1;
  for (int i = 0; i < rank; ++i)
    total *= dims[i];
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) H5W_FAIL(rc, done, "create", path);
  if (total > 0) {
    if (rank == 2) {
      chunk[1] = dims[1] < target / elsize ? dims[1] : target / elsize;
      chunk[0] = target / (chunk[1] * elsize);
      if (chunk[0] < 1) chunk[0] = 1;
      if (chunk[0] > dims[0]) chunk[0] = dims[0];
    } else {
      chunk[0] = dims[0] < target / elsize ? dims[0] : target / elsize;
    }
    if (H5Pset_chunk(dcpl, rank, chunk) < 0) H5W_FAIL(rc, done, "create", path);
  }
  space = H5Screate_simple(rank, dims, NULL);
  if (space < 0) H5W_FAIL(rc, done, "create", path);
  dset = H5Dcreate2(w->file, path, filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (dset < 0) H5W_FAIL(rc, done, "create", path);
  if (total > 0 && H5Dwrite(dset, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    H5W_FAIL(rc, done, "write", path);
done:
  if (dset >= 0 && H5Dclose(dset) < 0 && !rc)
    rc = h5_fail(__FILE__, __LINE__, w->path, "close", path);
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0) H5Pclose(dcpl);
  return rc;
}

int nhgd_h5w_matrix(nhgd_h5w *w, const char *path, int64_t rows, int64_t cols, const double *a,
                    int as_float32) {
  const hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  return write_dataset(w, path, 2, dims, as_float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE,
                       H5T_NATIVE_DOUBLE, a);
}

int nhgd_h5w_int32s(nhgd_h5w *w, const char *path, int64_t n, const int32_t *v) {
  const hsize_t dims[1] = {(hsize_t)n};
  return write_dataset(w, path, 1, dims, H5T_STD_I32LE, H5T_NATIVE_INT32, v);
}

int nhgd_h5w_int8s(nhgd_h5w *w, const char *path, int64_t n, const int8_t *v) {
  const hsize_t dims[1] = {(hsize_t)n};
  return write_dataset(w, path, 1, dims, H5T_STD_I8LE, H5T_NATIVE_INT8, v);
}

int nhgd_h5w_doubles(nhgd_h5w *w, const char *path, int64_t n, const double *v) {
  const hsize_t dims[1] = {(hsize_t)n};
  return write_dataset(w, path, 1, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v);
}

int nhgd_h5w_group(nhgd_h5w *w, const char *path) {
  int rc = NHGD_OK;
  hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
  if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0) H5W_FAIL(rc, done, "create", path);
  g = H5Gcreate2(w->file, path, H5P_DEFAULT, gcpl, H5P_DEFAULT);
  if (g < 0) H5W_FAIL(rc, done, "create", path);
done:
  if (g >= 0) H5Gclose(g);
  if (gcpl >= 0) H5Pclose(gcpl);
  return rc;
}

int nhgd_h5w_split(nhgd_h5w *w, const char *name, const nhgd_wsplit *s, int x_as_float32) {
  char path[64];
  snprintf(path, sizeof path, "/%s", name);
  NHGD_CHECK(nhgd_h5w_group(w, path));
  snprintf(path, sizeof path, "/%s/X", name);
  NHGD_CHECK(nhgd_h5w_matrix(w, path, s->n, s->m, s->X, x_as_float32));
  snprintf(path, sizeof path, "/%s/y", name);
  if (s->y_class)
    NHGD_CHECK(nhgd_h5w_int32s(w, path, s->n, s->y_class));
  else
    NHGD_CHECK(nhgd_h5w_doubles(w, path, s->n, s->y_real));
  return NHGD_OK;
}

/* A root attribute with n elements (n < 0: scalar). */
static int write_attr(nhgd_h5w *w, const char *name, hid_t filetype, hid_t memtype, int64_t n,
                      const void *v) {
  int rc = NHGD_OK;
  hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
  const hsize_t dims[1] = {(hsize_t)(n < 0 ? 1 : n)};
  space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  if (space < 0) H5W_FAIL(rc, done, "write attribute", name);
  attr = H5Acreate2(w->file, name, filetype, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr < 0 || H5Awrite(attr, memtype, v) < 0) H5W_FAIL(rc, done, "write attribute", name);
done:
  if (attr >= 0) H5Aclose(attr);
  if (space >= 0) H5Sclose(space);
  return rc;
}

int nhgd_h5w_attr_int(nhgd_h5w *w, const char *name, int64_t v) {
  return write_attr(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &v);
}

int nhgd_h5w_attr_u64(nhgd_h5w *w, const char *name, uint64_t v) {
  return write_attr(w, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, -1, &v);
}

int nhgd_h5w_attr_double(nhgd_h5w *w, const char *name, double v) {
  return write_attr(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1, &v);
}

int nhgd_h5w_attr_doubles(nhgd_h5w *w, const char *name, int64_t n, const double *v) {
  return write_attr(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, n, v);
}

int nhgd_h5w_attr_string(nhgd_h5w *w, const char *name, const char *v) {
  int rc = NHGD_OK;
  /* Fixed-length, NUL-terminated: what h5py and h5dump show as a plain string. */
  hid_t type = H5Tcopy(H5T_C_S1);
  if (type < 0 || H5Tset_size(type, strlen(v) + 1) < 0 || H5Tset_strpad(type, H5T_STR_NULLTERM) < 0)
    H5W_FAIL(rc, done, "write attribute", name);
  rc = write_attr(w, name, type, type, -1, v);
done:
  if (type >= 0) H5Tclose(type);
  return rc;
}
