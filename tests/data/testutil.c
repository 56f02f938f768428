/* Helpers for the data tests: serial HDF5 reads, small file writers, string checks. */
#include "data/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static hid_t open_ro(const char *path) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_sec2(fapl);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) fprintf(stderr, "testutil: cannot open %s\n", path);
  return f;
}

static void *read_whole(const char *path, const char *dset, hid_t memtype, size_t elsize,
                        int64_t *rows, int64_t *cols) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = open_ro(path);
  if (f < 0) return NULL;
  void *buf = NULL;
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  if (d >= 0) {
    hid_t space = H5Dget_space(d);
    hsize_t dims[2] = {0, 1};
    const int nd = H5Sget_simple_extent_ndims(space);
    if (nd >= 1 && nd <= 2) {
      H5Sget_simple_extent_dims(space, dims, NULL);
      if (nd == 1) dims[1] = 1;
      buf = calloc(dims[0] * dims[1] + 1, elsize);
      if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
      }
      if (rows) *rows = (int64_t)dims[0];
      if (cols) *cols = (int64_t)dims[1];
    }
    H5Sclose(space);
    H5Dclose(d);
  }
  if (!buf) fprintf(stderr, "testutil: cannot read %s in %s\n", dset, path);
  H5Fclose(f);
  return buf;
}

double *tu_read_doubles(const char *path, const char *dset, int64_t *rows, int64_t *cols) {
  return read_whole(path, dset, H5T_NATIVE_DOUBLE, sizeof(double), rows, cols);
}

int32_t *tu_read_ints(const char *path, const char *dset, int64_t *n) {
  return read_whole(path, dset, H5T_NATIVE_INT32, sizeof(int32_t), n, NULL);
}

int tu_exists(const char *path, const char *object) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = open_ro(path);
  if (f < 0) return 0;
  /* H5Oexists_by_name fails for a missing intermediate group: treat that as absent. */
  htri_t e = H5Lexists(f, object, H5P_DEFAULT) > 0 ? H5Oexists_by_name(f, object, H5P_DEFAULT) : 0;
  H5Fclose(f);
  return e > 0;
}

int tu_dataset_type(const char *path, const char *dset, H5T_class_t *cls, size_t *size) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = open_ro(path);
  if (f < 0) return -1;
  int rc = -1;
  hid_t d = H5Dopen2(f, dset, H5P_DEFAULT);
  if (d >= 0) {
    hid_t t = H5Dget_type(d);
    *cls = H5Tget_class(t);
    *size = H5Tget_size(t);
    H5Tclose(t);
    H5Dclose(d);
    rc = 0;
  }
  H5Fclose(f);
  return rc;
}

static int read_attr(const char *path, const char *name, hid_t memtype, void *v, int64_t max,
                     int64_t *n) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = open_ro(path);
  if (f < 0) return -1;
  int rc = -1;
  if (H5Aexists(f, name) > 0) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t s = H5Aget_space(a);
    const hssize_t npts = H5Sget_simple_extent_npoints(s);
    if (npts >= 1 && npts <= max && H5Aread(a, memtype, v) >= 0) rc = 0;
    if (n) *n = npts;
    H5Sclose(s);
    H5Aclose(a);
  }
  H5Fclose(f);
  return rc;
}

int tu_attr_int(const char *path, const char *name, long long *v) {
  return read_attr(path, name, H5T_NATIVE_LLONG, v, 1, NULL);
}

int tu_attr_double(const char *path, const char *name, double *v) {
  return read_attr(path, name, H5T_NATIVE_DOUBLE, v, 1, NULL);
}

int tu_attr_doubles(const char *path, const char *name, double *v, int64_t max, int64_t *n) {
  return read_attr(path, name, H5T_NATIVE_DOUBLE, v, max, n);
}

int tu_attr_string(const char *path, const char *name, char *buf, size_t len) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = open_ro(path);
  if (f < 0) return -1;
  int rc = -1;
  if (H5Aexists(f, name) > 0) {
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && H5Tget_size(t) < len) {
      memset(buf, 0, len);
      if (H5Aread(a, t, buf) >= 0) rc = 0;
    }
    H5Tclose(t);
    H5Aclose(a);
  }
  H5Fclose(f);
  return rc;
}

int tu_write_bytes(const char *path, const void *data, size_t n, int gz) {
  if (gz) {
    gzFile g = gzopen(path, "wb");
    if (!g) return -1;
    const int ok = n == 0 || gzwrite(g, data, (unsigned)n) == (int)n;
    return gzclose(g) == Z_OK && ok ? 0 : -1;
  }
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  const int ok = fwrite(data, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

int tu_write_text(const char *path, const char *text) {
  return tu_write_bytes(path, text, strlen(text), 0);
}

int tu_write_idx(const char *path, int gz, uint32_t magic, int ndim, const uint32_t *dims,
                 const uint8_t *data, size_t n_data) {
  const size_t head = 4 + 4 * (size_t)ndim;
  uint8_t *buf = malloc(head + n_data + 1);
  if (!buf) return -1;
  const uint32_t words[4] = {magic, ndim > 0 ? dims[0] : 0, ndim > 1 ? dims[1] : 0,
                             ndim > 2 ? dims[2] : 0};
  for (int w = 0; w <= ndim; ++w)
    for (int b = 0; b < 4; ++b)
      buf[4 * w + b] = (uint8_t)(words[w] >> (24 - 8 * b));
  if (n_data) memcpy(buf + head, data, n_data);
  const int rc = tu_write_bytes(path, buf, head + n_data, gz);
  free(buf);
  return rc;
}

long long tu_file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  const long long n = ftell(f);
  fclose(f);
  return n;
}

int tu_same_bytes(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    const int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

int tu_contains(const char *haystack, const char *needle) {
  if (haystack && needle && strstr(haystack, needle)) return 1;
  fprintf(stderr, "expected the message\n  \"%s\"\nto contain\n  \"%s\"\n",
          haystack ? haystack : "(null)", needle ? needle : "(null)");
  return 0;
}
