/* Small HDF5 helpers: collective 1-D datasets (optionally checksummed), scalar attributes. */
#include "io/h5util.h"

#include <mpi.h>
#include <string.h>
#include <sys/statvfs.h>

#include "core/util.h"
#include "nhgd/version.h"

/* Dataset creation properties: chunked with Fletcher32 checksums when checksum is set. */
hid_t nhgd_h5_dcpl(int rank, const hsize_t *dims, int checksum) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || !checksum) return dcpl;
  hsize_t chunk[2];
  /* About 1 MiB chunks: large enough for fast I/O, small enough for partial reads. */
  hsize_t target = 131072;
  for (int i = rank - 1; i >= 0; --i) {
    chunk[i] = dims[i] < target ? (dims[i] ? dims[i] : 1) : target;
    target = target / chunk[i] ? target / chunk[i] : 1;
  }
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_fletcher32(dcpl);
  return dcpl;
}

hid_t nhgd_h5_xfer(hid_t obj) {
  hid_t xp = H5Pcreate(H5P_DATASET_XFER);
  if (xp < 0) return xp;
  hid_t f = H5Iget_file_id(obj);
  hid_t fapl = f >= 0 ? H5Fget_access_plist(f) : H5I_INVALID_HID;
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_MPIO) H5Pset_dxpl_mpio(xp, H5FD_MPIO_COLLECTIVE);
  if (fapl >= 0) H5Pclose(fapl);
  if (f >= 0) H5Fclose(f);
  return xp;
}

/* This rank's entries [off, off+cnt) of a 1-D file space (none if cnt is 0), the matching
 * memory space, and the transfer property list for dataset ds. */
static int select_range(hid_t ds, hid_t fs, hsize_t off, hsize_t cnt, hid_t *ms, hid_t *xp,
                        const char *name) {
  *ms = H5Screate_simple(1, &cnt, NULL);
  if (*ms < 0) NHGD_FAIL(NHGD_ERR_HDF5, "memory space of %s", name);
  if (cnt > 0) {
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0)
      NHGD_FAIL(NHGD_ERR_HDF5, "cannot select entries of %s", name);
  } else {
    H5Sselect_none(fs);
    H5Sselect_none(*ms);
  }
  *xp = nhgd_h5_xfer(ds);
  if (*xp < 0) NHGD_FAIL(NHGD_ERR_HDF5, "transfer property list of %s", name);
  return NHGD_OK;
}

int nhgd_h5_write_vector(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                         int64_t count, const double *data) {
  return nhgd_h5_write_vector_ex(loc, name, n_global, offset, count, data, 0);
}

int nhgd_h5_write_vector_ex(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                            int64_t count, const double *data, int checksum) {
  int rc = NHGD_OK;
  hsize_t dims = (hsize_t)n_global, off = (hsize_t)offset, cnt = (hsize_t)count;
  hid_t fs = H5Screate_simple(1, &dims, NULL), ms = -1, ds = -1, xp = -1, dcpl = -1;
  NHGD_H5_TRY(rc, fs, done, "cannot create the dataspace of %s", name);
  NHGD_H5_TRY(rc, dcpl = nhgd_h5_dcpl(1, &dims, checksum && n_global > 0), done,
              "dataset properties of %s", name);
  NHGD_H5_TRY(rc, ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, fs, H5P_DEFAULT, dcpl, H5P_DEFAULT),
              done, "cannot create dataset %s", name);
  if (n_global == 0) goto done; /* an empty dataset: nothing to transfer */
  NHGD_TRY(rc, select_range(ds, fs, off, cnt, &ms, &xp, name), done);
  NHGD_H5_TRY(rc, H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, xp, data), done,
              "cannot write dataset %s", name);
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (xp >= 0) H5Pclose(xp);
  if (ms >= 0) H5Sclose(ms);
  if (ds >= 0) H5Dclose(ds);
  if (fs >= 0) H5Sclose(fs);
  return rc;
}

static int attr_write(hid_t obj, const char *name, hid_t type, const void *value) {
  int rc = NHGD_OK;
  hid_t sp = H5Screate(H5S_SCALAR), at = -1;
  NHGD_H5_TRY(rc, sp, done, "scalar dataspace");
  NHGD_H5_TRY(rc, at = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create attribute %s", name);
  NHGD_H5_TRY(rc, H5Awrite(at, type, value), done, "cannot write attribute %s", name);
done:
  if (at >= 0) H5Aclose(at);
  if (sp >= 0) H5Sclose(sp);
  return rc;
}

int nhgd_h5_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) NHGD_FAIL(NHGD_ERR_HDF5, "string type");
  H5Tset_size(t, strlen(value) + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  int rc = attr_write(obj, name, t, value);
  H5Tclose(t);
  return rc;
}

int nhgd_h5_attr_int(hid_t obj, const char *name, int64_t value) {
  return attr_write(obj, name, H5T_NATIVE_INT64, &value);
}

int nhgd_h5_attr_double(hid_t obj, const char *name, double value) {
  return attr_write(obj, name, H5T_NATIVE_DOUBLE, &value);
}

int nhgd_h5_read_vector_coll(hid_t loc, const char *name, int64_t n_global, int64_t offset,
                             int64_t count, double *out) {
  int rc = NHGD_OK;
  hid_t ds = -1, fs = -1, ms = -1, xp = -1;
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
    NHGD_FAIL(NHGD_ERR_DATA, "dataset %s is missing", name);
  NHGD_H5_TRY(rc, ds = H5Dopen2(loc, name, H5P_DEFAULT), done, "cannot open dataset %s", name);
  NHGD_H5_TRY(rc, fs = H5Dget_space(ds), done, "dataspace of %s", name);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(fs) != 1 || (H5Sget_simple_extent_dims(fs, dims, NULL), 0) ||
      (int64_t)dims[0] != n_global)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s has %llu entries, expected %lld", name,
               (unsigned long long)dims[0], (long long)n_global);
  hsize_t off = (hsize_t)offset, cnt = (hsize_t)count;
  if (n_global == 0) goto done;
  NHGD_TRY(rc, select_range(ds, fs, off, cnt, &ms, &xp, name), done);
  NHGD_H5_TRY(rc, H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, xp, out), done,
              "cannot read dataset %s (damaged? checksum mismatch?)", name);
done:
  if (xp >= 0) H5Pclose(xp);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  if (ds >= 0) H5Dclose(ds);
  return rc;
}

static int attr_read(hid_t obj, const char *name, hid_t type, void *value) {
  if (H5Aexists(obj, name) <= 0) NHGD_FAIL(NHGD_ERR_DATA, "attribute %s is missing", name);
  hid_t at = H5Aopen(obj, name, H5P_DEFAULT);
  if (at < 0) NHGD_FAIL(NHGD_ERR_HDF5, "cannot open attribute %s", name);
  herr_t st = H5Aread(at, type, value);
  H5Aclose(at);
  if (st < 0) NHGD_FAIL(NHGD_ERR_DATA, "cannot read attribute %s", name);
  return NHGD_OK;
}

int nhgd_h5_attr_read_int(hid_t obj, const char *name, int64_t *value) {
  return attr_read(obj, name, H5T_NATIVE_INT64, value);
}

int nhgd_h5_attr_read_double(hid_t obj, const char *name, double *value) {
  return attr_read(obj, name, H5T_NATIVE_DOUBLE, value);
}

int nhgd_h5_attr_read_string(hid_t obj, const char *name, char *buf, size_t len) {
  if (H5Aexists(obj, name) <= 0) NHGD_FAIL(NHGD_ERR_DATA, "attribute %s is missing", name);
  int rc = NHGD_OK;
  hid_t at = H5Aopen(obj, name, H5P_DEFAULT), ft = -1, mt = -1;
  NHGD_H5_TRY(rc, at, done, "cannot open attribute %s", name);
  NHGD_H5_TRY(rc, ft = H5Aget_type(at), done, "type of attribute %s", name);
  if (H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) > 0)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "attribute %s is not a fixed-length string", name);
  size_t n = H5Tget_size(ft);
  if (n + 1 > len) NHGD_RAISE(rc, done, NHGD_ERR_DATA, "attribute %s is too long", name);
  mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, n + 1);
  H5Tset_strpad(mt, H5T_STR_NULLTERM);
  NHGD_H5_TRY(rc, H5Aread(at, mt, buf), done, "cannot read attribute %s", name);
  buf[n] = '\0';
done:
  if (mt >= 0) H5Tclose(mt);
  if (ft >= 0) H5Tclose(ft);
  if (at >= 0) H5Aclose(at);
  return rc;
}

int nhgd_h5_read_vector(const char *path, const char *name, int64_t n, double *out) {
  nhgd_h5_quiet();
  NHGD_CHECK(nhgd_check_regular(path));
  int rc = NHGD_OK;
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), ds = -1, sp = -1;
  if (f < 0) NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open as HDF5", path);
  if (H5Lexists(f, name + (name[0] == '/'), H5P_DEFAULT) <= 0)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: no dataset %s", path, name);
  NHGD_H5_TRY(rc, ds = H5Dopen2(f, name, H5P_DEFAULT), done, "%s: cannot open %s", path, name);
  sp = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(sp);
  if (nd != 1) NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: %s is %d-D, expected 1-D", path, name, nd);
  H5Sget_simple_extent_dims(sp, dims, NULL);
  if ((int64_t)dims[0] != n)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: %s has %llu entries, this problem needs %lld", path,
               name, (unsigned long long)dims[0], (long long)n);
  NHGD_H5_TRY(rc, H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), done,
              "%s: cannot read %s", path, name);
  for (int64_t i = 0; i < n; ++i)
    if (out[i] != out[i] || out[i] - out[i] != 0.0)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: %s[%lld] is not finite", path, name, (long long)i);
done:
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  H5Fclose(f);
  return rc;
}

int nhgd_h5_write_header(hid_t f, const char *format, int64_t version, int ranks) {
  NHGD_CHECK(nhgd_h5_attr_string(f, "format", format));
  NHGD_CHECK(nhgd_h5_attr_int(f, "format_version", version));
  NHGD_CHECK(nhgd_h5_attr_string(f, "nhgd_version", NHGD_VERSION_STRING));
  NHGD_CHECK(nhgd_h5_attr_string(f, "git_revision", NHGD_GIT_REVISION));
  return nhgd_h5_attr_int(f, "ranks", ranks);
}

typedef struct {
  hid_t group;
  int rc;
} config_writer;

static void write_option(const char *name, const char *value, unsigned flags, void *arg) {
  config_writer *w = arg;
  if (!w->rc) w->rc = nhgd_h5_attr_string(w->group, name, value);
}

int nhgd_h5_write_options(hid_t group, const nhgd_options *o) {
  config_writer w = {group, NHGD_OK};
  nhgd_options_foreach(o, write_option, &w);
  return w.rc;
}

int nhgd_io_check_space(MPI_Comm comm, const char *dir, double need, const char *what) {
  int rank, rc = NHGD_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    struct statvfs v;
    if (statvfs(dir, &v) == 0) {
      const double avail = (double)v.f_bavail * (double)v.f_frsize;
      if (avail < need)
        rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                            "%s: not enough space: about %.0f KiB needed, %.0f KiB free on the "
                            "device of %s (nothing was written)",
                            what, need / 1024.0, avail / 1024.0, dir);
    }
  }
  return nhgd_error_agree(comm, rc);
}

int nhgd_h5_group_agreed(MPI_Comm comm, hid_t loc, const char *name, hid_t *g) {
  int rc = NHGD_OK;
  NHGD_H5_TRY(rc, *g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /%s", name);
done:
  rc = nhgd_error_agree(comm, rc);
  if (rc && *g >= 0) {
    H5Gclose(*g);
    *g = -1;
  }
  return rc;
}

void nhgd_h5_quiet(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The most telling line of HDF5's error stack: a system error message where there is one,
 * else the innermost description. */
typedef struct {
  char text[256];
  int have_errno;
} h5_cause;

static herr_t take_cause(unsigned n, const H5E_error2_t *e, void *arg) {
  h5_cause *c = arg;
  if (c->have_errno || !e->desc) return 0;
  const char *m = strstr(e->desc, "error message = '");
  if (m) {
    m += strlen("error message = '");
    size_t len = strcspn(m, "'");
    if (len >= sizeof c->text) len = sizeof c->text - 1;
    memcpy(c->text, m, len);
    c->text[len] = '\0';
    c->have_errno = 1;
  } else if (n == 0) {
    snprintf(c->text, sizeof c->text, "%s", e->desc);
  }
  return 0;
}

void nhgd_h5_append_cause(void) {
  h5_cause c = {"", 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_cause, &c);
  if (!c.text[0]) return;
  char buf[300];
  snprintf(buf, sizeof buf, " (%s)", c.text);
  nhgd_error_append_fresh(buf);
}
