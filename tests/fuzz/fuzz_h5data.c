/* libFuzzer harness: the reader of nhgd data files (the HDF5 input format), on one process,
 * with files in memory (HDF5's core driver, opened from their image). By default the input
 * describes a file, which is built and then read: which splits, groups and datasets exist,
 * their ranks, shapes and types, the root attributes, and the values (raw bytes, so NaN, Inf
 * and any label) all come from the input, so the reader's checks are what is fuzzed. With
 * NHGD_FUZZ_RAW=1 the input is the file's bytes themselves: that fuzzes HDF5's own parser,
 * which in 1.10.8 crashes on some damaged files (see bench/results/fuzz.md). Any input must
 * give a status, never a crash, an overflow or a leak. */
#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "nhgd/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int raw;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  /* The reader refuses splits above this, below libFuzzer's 2 GiB allocation limit. */
  setenv("NHGD_MAX_DENSE_MB", "512", 1);
  const char *r = getenv("NHGD_FUZZ_RAW");
  raw = r && r[0] == '1';
  MPI_Init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  return 0;
}

/* The input, read front to back; past its end every byte is 0. */
typedef struct {
  const uint8_t *p;
  size_t n, at;
} reader;

static unsigned byte(reader *r) {
  return r->at < r->n ? r->p[r->at++] : 0u;
}

static hid_t type_of(unsigned code) {
  const hid_t t[] = {H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT, H5T_NATIVE_INT32,
                     H5T_NATIVE_INT8,   H5T_NATIVE_INT64, H5T_NATIVE_UINT16};
  return t[code % (sizeof t / sizeof t[0])];
}

/* One dataset: a rank of 1 to 3, up to 15 entries a dimension, a type, raw values. */
static void put_dataset(reader *r, hid_t group, const char *name, hsize_t rows) {
  const unsigned flags = byte(r);
  if (flags & 1) return; /* missing */
  const int rank = 1 + (int)(byte(r) % 3);
  hsize_t dims[3] = {flags & 2 ? byte(r) % 16 : rows, 1 + byte(r) % 8, 1 + byte(r) % 3};
  const hid_t type = type_of(byte(r));
  const size_t count = (size_t)dims[0] * (rank > 1 ? dims[1] : 1) * (rank > 2 ? dims[2] : 1);
  const size_t bytes = count * H5Tget_size(type);
  unsigned char *v = calloc(bytes ? bytes : 1, 1);
  if (!v) return;
  for (size_t i = 0; i < bytes; ++i)
    v[i] = (unsigned char)byte(r);
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0) {
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
  }
  H5Sclose(space);
  free(v);
}

static void put_int_attr(hid_t obj, const char *name, int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
  }
  H5Sclose(space);
}

/* The file the input describes, built in memory; its image in *image (malloc'ed). */
static size_t build(reader *r, void **image) {
  *image = NULL;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 1 << 12, 0);
  hid_t f = H5Fcreate("fuzz-built", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) return 0;
  const unsigned root = byte(r);
  /* n_classes and format_version: absent, small, or any 64-bit value. */
  if (root & 1)
    put_int_attr(f, "n_classes", root & 2 ? (int64_t)(byte(r) % 12) - 1 : (int64_t)byte(r) << 40);
  if (root & 4) put_int_attr(f, "format_version", (int64_t)(byte(r) % 4) - 1);
  static const char *const splits[] = {"train", "val", "test"};
  for (int s = 0; s < 3; ++s) {
    const unsigned how = byte(r);
    if (how & 1) continue; /* no such group */
    if (how & 2) {         /* a dataset where the group should be */
      put_dataset(r, f, splits[s], 2);
      continue;
    }
    hid_t g = H5Gcreate2(f, splits[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) continue;
    const hsize_t rows = byte(r) % 16;
    put_dataset(r, g, "X", rows);
    put_dataset(r, g, "y", rows);
    H5Gclose(g);
  }
  H5Fflush(f, H5F_SCOPE_GLOBAL);
  ssize_t n = H5Fget_file_image(f, NULL, 0);
  if (n > 0 && (*image = malloc((size_t)n)) && H5Fget_file_image(f, *image, (size_t)n) != n) {
    free(*image);
    *image = NULL;
  }
  H5Fclose(f);
  return *image ? (size_t)n : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nhgd_data *d = NULL;
  void *image = NULL;
  size_t n = size;
  const void *bytes = data;
  if (!raw) {
    reader r = {data, size, 0};
    n = build(&r, &image);
    bytes = image;
  }
  if (bytes && n && nhgd_data_load_image(MPI_COMM_SELF, "fuzz input", bytes, n, &d) == NHGD_OK)
    nhgd_data_destroy(&d);
  free(image);
  nhgd_error_clear();
  return 0;
}
