/* MPI test of the collective loader on one bad (or unusual) input file named by argv[1]. */
/* Every rank must return the same nonzero status with the same message naming the file, the
 * dataset and the problem, and nothing may hang (ctest's timeout catches hangs). Rank 0 makes
 * the file with plain serial HDF5; then all ranks load it. */
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "common/mpi_check.h"
#include "data/testutil.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"

static int rank, size;

/* What rank 0 writes. The base file is a valid classification file with three splits. */
typedef struct spec {
  int64_t n[3];             /* rows of /train, /val, /test */
  int m[3];                 /* columns of X per split */
  int n_classes;            /* 0: regression (no n_classes attribute) */
  int n_classes_as_float;   /* write n_classes as float64 */
  long long format_version; /* < 0: no format attributes */
  hid_t xtype, ytype;       /* file types (ytype 0: int32 or float64 by task) */
  int x_rank, y_rank;       /* of /train/X and /train/y */
  int64_t y_rows_delta;     /* /train/y rows minus /train/X rows */
  int omit_group;           /* split whose group is left out, -1 for none */
  const char *omit;         /* dataset left out, e.g. "/train/X" */
  int bad_split;            /* split/row/column of a planted value (row < 0: none) */
  int64_t bad_row;
  int bad_col;
  double bad_x; /* planted in X (if bad_col >= 0) */
  double bad_y; /* planted in y (if bad_col < 0) */
} spec;

static void base_spec(spec *s) {
  memset(s, 0, sizeof *s);
  s->n[0] = 40;
  s->n[1] = 12;
  s->n[2] = 8;
  s->m[0] = s->m[1] = s->m[2] = 5;
  s->n_classes = 10;
  s->format_version = 1;
  s->xtype = H5T_IEEE_F64LE;
  s->x_rank = 2;
  s->y_rank = 1;
  s->omit_group = -1;
  s->bad_row = -1;
}

/* Values of the base file, recomputed by the checks of the valid cases. */
static double x_value(int split, int64_t i, int j) {
  return split * 1000.0 + (double)i + 0.125 * j;
}
static double y_value(int split, int64_t i, int n_classes) {
  return n_classes ? (double)((i * 3 + split) % n_classes) : 0.5 * (double)i - split;
}

static const char *const names[3] = {"train", "val", "test"};

static void put(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int nd, const hsize_t *dims,
                const void *buf) {
  hid_t space = H5Screate_simple(nd, dims, NULL);
  hid_t d = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  MC_REQUIRE(d >= 0, "cannot create %s", name);
  MC_REQUIRE(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "cannot write %s", name);
  H5Dclose(d);
  H5Sclose(space);
}

static void put_attr(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *v) {
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(f, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
  MC_REQUIRE(a >= 0 && H5Awrite(a, mtype, v) >= 0, "cannot write attribute %s", name);
  H5Aclose(a);
  H5Sclose(space);
}

static void write_spec(const char *path, const spec *s) {
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  MC_REQUIRE(f >= 0, "cannot create %s", path);
  if (s->format_version >= 0) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 10);
    put_attr(f, "format", st, st, "nhgd-data");
    H5Tclose(st);
    put_attr(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_LLONG, &s->format_version);
  }
  if (s->n_classes) {
    const double ncd = s->n_classes;
    const long long nci = s->n_classes;
    if (s->n_classes_as_float)
      put_attr(f, "n_classes", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &ncd);
    else
      put_attr(f, "n_classes", H5T_STD_I64LE, H5T_NATIVE_LLONG, &nci);
  }
  for (int sp = 0; sp < 3; ++sp) {
    if (sp == s->omit_group) continue;
    char path_x[32], path_y[32];
    snprintf(path_x, sizeof path_x, "/%s/X", names[sp]);
    snprintf(path_y, sizeof path_y, "/%s/y", names[sp]);
    hid_t g = H5Gcreate2(f, names[sp], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    MC_REQUIRE(g >= 0, "cannot create group %s", names[sp]);
    const int64_t n = s->n[sp];
    const int m = s->m[sp];
    double *X = calloc((size_t)(n * m) + 1, sizeof *X), *y = calloc((size_t)n + 2, sizeof *y);
    MC_REQUIRE(X && y, "out of memory");
    for (int64_t i = 0; i < n; ++i) {
      for (int j = 0; j < m; ++j)
        X[i * m + j] = x_value(sp, i, j);
      y[i] = y_value(sp, i, s->n_classes);
    }
    if (sp == s->bad_split && s->bad_row >= 0) {
      if (s->bad_col >= 0)
        X[s->bad_row * m + s->bad_col] = s->bad_x;
      else
        y[s->bad_row] = s->bad_y;
    }
    if (!s->omit || strcmp(s->omit, path_x) != 0) {
      const int nd = sp == 0 ? s->x_rank : 2;
      const hsize_t dims[2] = {nd == 2 ? (hsize_t)n : (hsize_t)(n * m), (hsize_t)m};
      if (H5Tget_class(s->xtype) == H5T_STRING) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, 4);
        char *txt = calloc((size_t)(n * m) * 4 + 1, 1);
        for (int64_t k = 0; k < n * m; ++k)
          memcpy(txt + 4 * k, "1.5", 4);
        put(g, "X", st, st, nd, dims, txt);
        free(txt);
        H5Tclose(st);
      } else {
        put(g, "X", s->xtype, H5T_NATIVE_DOUBLE, nd, dims, X);
      }
    }
    if (!s->omit || strcmp(s->omit, path_y) != 0) {
      const int nd = sp == 0 ? s->y_rank : 1;
      const hsize_t dims[2] = {(hsize_t)(n + (sp == 0 ? s->y_rows_delta : 0)), 1};
      hid_t yt = s->ytype ? s->ytype : s->n_classes ? H5T_STD_I32LE : H5T_IEEE_F64LE;
      put(g, "y", yt, H5T_NATIVE_DOUBLE, nd, dims, y);
    }
    free(X);
    free(y);
    H5Gclose(g);
  }
  MC_REQUIRE(H5Fclose(f) >= 0, "cannot close %s", path);
}

enum kind { SPEC, RANDOM_BYTES, EMPTY, TRUNCATED, NONEXISTENT, DIRECTORY };

/* Set up the case: the file to make and the expected phrase (after "<path>: "); returns 1 if
 * the load must fail at this rank count. */
static int setup_case(const char *name, spec *s, enum kind *kind, char *expect, size_t len) {
  base_spec(s);
  *kind = SPEC;
  if (!strcmp(name, "missing_group")) {
    s->omit_group = 1;
    snprintf(expect, len, "group /val is missing");
  } else if (!strcmp(name, "missing_test_y")) {
    s->omit = "/test/y";
    snprintf(expect, len, "/test/y is missing");
  } else if (!strcmp(name, "missing_x")) {
    s->omit = "/train/X";
    snprintf(expect, len, "/train/X is missing");
  } else if (!strcmp(name, "x_1d")) {
    s->x_rank = 1;
    snprintf(expect, len, "/train/X must be 2-D (rows x features) but has 1 dimension");
  } else if (!strcmp(name, "y_2d")) {
    s->y_rank = 2;
    snprintf(expect, len, "/train/y must be 1-D but has 2 dimensions");
  } else if (!strcmp(name, "row_mismatch")) {
    s->y_rows_delta = -1;
    snprintf(expect, len, "/train/y has 39 rows but /train/X has 40");
  } else if (!strcmp(name, "label_out_of_range")) {
    /* The last row belongs to the last rank only: the other ranks must learn of it. */
    MC_REQUIRE(nhgd_partition_owner(40, size, 39) == size - 1, "row 39 is not on the last rank");
    s->bad_split = 0;
    s->bad_row = 39;
    s->bad_col = -1;
    s->bad_y = 12;
    snprintf(expect, len, "/train/y: label 12 at row 39 is outside 0..9 (n_classes = 10)");
  } else if (!strcmp(name, "label_huge")) {
    /* A 64-bit label is reported with its true value, not one clipped to 32 bits. */
    s->ytype = H5T_STD_I64LE;
    s->bad_split = 0;
    s->bad_row = 20;
    s->bad_col = -1;
    s->bad_y = 1099511627776.0;
    snprintf(expect, len, "/train/y: label 1099511627776 at row 20 is outside 0..9");
  } else if (!strcmp(name, "label_negative")) {
    s->bad_split = 1;
    s->bad_row = 0;
    s->bad_col = -1;
    s->bad_y = -1;
    snprintf(expect, len, "/val/y: label -1 at row 0 is outside 0..9 (n_classes = 10)");
  } else if (!strcmp(name, "nan_x")) {
    /* Row 25 is on rank 0, 1 and 2 at 1, 2 and 4 ranks: never on rank 0 alone. */
    s->bad_split = 0;
    s->bad_row = 25;
    s->bad_col = 3;
    s->bad_x = NAN;
    snprintf(expect, len, "/train/X: NaN at row 25 column 3");
  } else if (!strcmp(name, "inf_x")) {
    s->bad_split = 2;
    s->bad_row = 7;
    s->bad_col = 4;
    s->bad_x = INFINITY;
    snprintf(expect, len, "/test/X: Inf at row 7 column 4");
  } else if (!strcmp(name, "huge_x")) {
    /* Finite, but the product of two overflows: the data's fault, named with the file. */
    s->bad_split = 0;
    s->bad_row = 5;
    s->bad_col = 2;
    s->bad_x = 1e308;
    snprintf(expect, len, "/train/X: 1e+308 at row 5 column 2 is too large to compute with");
  } else if (!strcmp(name, "nan_y_regression")) {
    s->n_classes = 0;
    s->bad_split = 0;
    s->bad_row = 7;
    s->bad_col = -1;
    s->bad_y = NAN;
    snprintf(expect, len, "/train/y: NaN at row 7");
  } else if (!strcmp(name, "float_y_classification")) {
    s->ytype = H5T_IEEE_F64LE;
    snprintf(expect, len,
             "/train/y has type float64 but classification (n_classes=10) needs integer labels");
  } else if (!strcmp(name, "int_y_regression")) {
    s->n_classes = 0;
    s->ytype = H5T_STD_I32LE;
    snprintf(expect, len,
             "/train/y has type int32 but regression (no n_classes attribute) needs "
             "floating-point targets");
  } else if (!strcmp(name, "int_x")) {
    s->xtype = H5T_STD_I32LE;
    snprintf(expect, len,
             "/train/X has type int32 but must be floating point (float32 or float64)");
  } else if (!strcmp(name, "string_x")) {
    s->xtype = H5T_C_S1;
    snprintf(expect, len, "/train/X has type string but must be floating point");
  } else if (!strcmp(name, "feature_mismatch")) {
    s->m[1] = 4;
    snprintf(expect, len, "/val/X has 4 columns but /train/X has 5");
  } else if (!strcmp(name, "test_feature_mismatch")) {
    s->m[2] = 6;
    snprintf(expect, len, "/test/X has 6 columns but /train/X has 5");
  } else if (!strcmp(name, "few_rows")) {
    s->n[0] = 3;
    snprintf(expect, len, "/train has 3 rows, fewer than the %d MPI ranks", size);
    return size > 3;
  } else if (!strcmp(name, "empty_split")) {
    s->n[1] = 0;
    snprintf(expect, len, "/val is empty (0 rows)");
  } else if (!strcmp(name, "n_classes_1")) {
    s->n_classes = 1;
    snprintf(expect, len,
             "root attribute n_classes = 1, but classification needs at least 2 classes");
  } else if (!strcmp(name, "n_classes_float")) {
    s->n_classes_as_float = 1;
    snprintf(expect, len, "root attribute n_classes has type float64 but must be an integer");
  } else if (!strcmp(name, "format_version")) {
    s->format_version = 2;
    snprintf(expect, len, "format_version 2 is newer than this program reads (1)");
  } else if (!strcmp(name, "not_hdf5")) {
    *kind = RANDOM_BYTES;
    snprintf(expect, len, "not an HDF5 file (or truncated)");
  } else if (!strcmp(name, "empty_file")) {
    *kind = EMPTY;
    snprintf(expect, len, "not an HDF5 file (or truncated)");
  } else if (!strcmp(name, "truncated")) {
    *kind = TRUNCATED;
    snprintf(expect, len, "not an HDF5 file (or truncated)");
  } else if (!strcmp(name, "nonexistent")) {
    *kind = NONEXISTENT;
    snprintf(expect, len, "cannot open: No such file or directory");
  } else if (!strcmp(name, "directory")) {
    *kind = DIRECTORY;
    snprintf(expect, len, "is a directory");
  } else if (!strcmp(name, "h5py_style")) {
    /* What a user typically writes with h5py: float32 X, int64 y, no format attributes. */
    s->format_version = -1;
    s->xtype = H5T_IEEE_F32LE;
    s->ytype = H5T_STD_I64LE;
    expect[0] = '\0';
    return 0;
  } else {
    MC_REQUIRE(0, "unknown case %s", name);
  }
  return 1;
}

static void make_file(const char *path, enum kind kind, const spec *s) {
  remove(path);
  rmdir(path);
  switch (kind) {
  case SPEC:
    write_spec(path, s);
    break;
  case RANDOM_BYTES: {
    uint8_t bytes[4096];
    for (size_t i = 0; i < sizeof bytes; i += 32) {
      uint64_t w[4];
      nhgd_rng4(42, 99, i, 0, 0, w);
      memcpy(bytes + i, w, 32);
    }
    MC_REQUIRE(tu_write_bytes(path, bytes, sizeof bytes, 0) == 0, "cannot write %s", path);
    break;
  }
  case EMPTY:
    MC_REQUIRE(tu_write_bytes(path, "", 0, 0) == 0, "cannot write %s", path);
    break;
  case TRUNCATED: {
    write_spec(path, s);
    const long long n = tu_file_size(path);
    MC_REQUIRE(n > 0 && truncate(path, n / 2) == 0, "cannot truncate %s", path);
    break;
  }
  case NONEXISTENT:
    break;
  case DIRECTORY:
    MC_REQUIRE(mkdir(path, 0755) == 0, "cannot make directory %s", path);
    break;
  }
}

/* A valid load: every rank holds exactly its rows of the base file. */
static void check_valid(const nhgd_data *d, const spec *s) {
  MC_REQUIRE(d->task == NHGD_TASK_CLASSIFICATION && d->n_classes == 10, "task");
  MC_REQUIRE(d->m == 5 && d->has_test, "shape");
  const nhgd_split *splits[3] = {&d->train, &d->val, &d->test};
  for (int sp = 0; sp < 3; ++sp) {
    const nhgd_split *x = splits[sp];
    int64_t lo, n;
    nhgd_partition(s->n[sp], size, rank, &lo, &n);
    MC_REQUIRE(x->n_global == s->n[sp] && x->lo == lo && x->n_local == n, "%s rows", names[sp]);
    for (int i = 0; i < x->n_local; ++i) {
      for (int j = 0; j < x->m; ++j)
        MC_REQUIRE(x->X[i * x->m + j] == x_value(sp, lo + i, j), "%s X[%lld][%d]", names[sp],
                   (long long)(lo + i), j);
      MC_REQUIRE(x->y_class[i] == (int32_t)y_value(sp, lo + i, 10), "%s y[%lld]", names[sp],
                 (long long)(lo + i));
    }
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MC_REQUIRE(argc == 2, "usage: %s CASE", argv[0]);
  const int np = mc_expected_np();
  const char *name = argv[1];
  char path[256], expect[512], full[1024];
  snprintf(path, sizeof path, "data_bad_%s_np%d.h5", name, np);

  spec s;
  enum kind kind;
  const int must_fail = setup_case(name, &s, &kind, expect, sizeof expect);
  if (rank == 0) make_file(path, kind, &s);
  MPI_Barrier(MPI_COMM_WORLD);

  nhgd_error_clear();
  nhgd_data *d = (nhgd_data *)&s; /* must be reset to NULL on failure */
  const double t0 = MPI_Wtime();
  const int rc = nhgd_data_load(MPI_COMM_WORLD, path, &d);
  const double elapsed = MPI_Wtime() - t0;
  MC_REQUIRE(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open");

  int *all = malloc(sizeof(int) * (size_t)size);
  MPI_Allgather(&rc, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 0; r < size; ++r)
    MC_REQUIRE(all[r] == rc, "rank %d returned %d but rank %d returned %d", r, all[r], rank, rc);
  free(all);

  if (must_fail) {
    MC_REQUIRE(rc != 0, "loading %s succeeded but should fail with \"%s\"", path, expect);
    MC_REQUIRE(d == NULL, "*out must be NULL on failure");
    snprintf(full, sizeof full, "%s: %s", path, expect);
    const char *msg = nhgd_error_message();
    MC_REQUIRE(tu_contains(msg, full), "wrong message on this rank");
    /* Every rank holds the same message. */
    char msg0[2048];
    snprintf(msg0, sizeof msg0, "%s", msg);
    MPI_Bcast(msg0, (int)sizeof msg0, MPI_CHAR, 0, MPI_COMM_WORLD);
    MC_REQUIRE(strcmp(msg0, msg) == 0, "message differs from rank 0's:\n  %s\n  %s", msg, msg0);
    if (rank == 0)
      printf("%s at %d rank(s): status %d (%s) in %.3f s, message: %s\n", name, size, rc,
             nhgd_strerror(rc), elapsed, msg);
  } else {
    MC_REQUIRE(rc == 0 && d, "loading %s failed: %s", path, nhgd_error_message());
    check_valid(d, &s);
    nhgd_data_destroy(&d);
    if (rank == 0) printf("%s at %d rank(s): loads correctly\n", name, size);
  }

  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    remove(path);
    rmdir(path);
  }
  MPI_Finalize();
  return 0;
}
