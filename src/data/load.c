/* Collective reader of nhgd data files: every rank reads only the rows it owns. */
/*
 * File format, format_version 1. One HDF5 file holding:
 *   /train, /val (required) and /test (optional): groups, each with two datasets
 *     X  2-D, rows x features, floating point (float32 or float64; read as double);
 *     y  1-D with as many rows as X: integer class labels 0..n_classes-1 (any integer type;
 *        our writers use int32) for classification, or floating-point targets (our writers
 *        use float64) for regression.
 *   Every split has the same number of features (columns of X) and at least as many rows
 *   as the communicator has ranks.
 *   Root attributes:
 *     n_classes       integer >= 2; present if and only if the task is classification.
 *     format          string "nhgd-data", written by nhgd's writers; optional.
 *     format_version  integer 1, written by nhgd's writers; optional (files made with h5py
 *                     need not carry it), but when present a value > 1 is rejected so that
 *                     a newer layout is never misread.
 *   Extras written by nhgd's writers and ignored here: /train/y_clean (int32 labels before
 *   corruption), /train/corrupted (int8 mask of redrawn labels), /truth/theta (float64 true
 *   parameters: m entries for ridge, shape (m, C) for logistic), root attributes
 *   noise_sigma (float64), seed, generator, label_values (original LIBSVM labels) and the
 *   generator's options.
 *
 * Collective discipline: metadata is identical on every rank, so all ranks take the same
 * path through the metadata checks. Whatever can differ between ranks (allocation, the
 * values in each rank's rows, a failed read) is followed by nhgd_error_agree before the next
 * collective HDF5 call, so every rank makes the same sequence of collective calls and
 * returns the same status and message. */
#include "nhgd/data.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "io/h5util.h"
#include "data/data_internal.h"

enum { N_SPLITS = 3 };
static const char *const split_name[N_SPLITS] = {"train", "val", "test"};

/* The open HDF5 objects of one split and its shape. */
typedef struct split_files {
  hid_t group, X, y;
  int present;
  int64_t n, m;
  long long *labels; /* classification labels as read, before the range check */
} split_files;

typedef struct loader {
  const char *path;
  nhgd_data *d;
  hid_t file;
  split_files s[N_SPLITS];
} loader;

static nhgd_split *split_of(nhgd_data *d, int s) {
  return s == 0 ? &d->train : s == 1 ? &d->val : &d->test;
}

/* A short name for an HDF5 type in messages ("float64", "uint8", "string", ...). */
static void type_name(hid_t type, char *buf, size_t len) {
  const size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
  case H5T_INTEGER:
    snprintf(buf, len, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    break;
  case H5T_FLOAT:
    snprintf(buf, len, "float%zu", bits);
    break;
  case H5T_STRING:
    snprintf(buf, len, "string");
    break;
  case H5T_BITFIELD:
    snprintf(buf, len, "bitfield");
    break;
  case H5T_OPAQUE:
    snprintf(buf, len, "opaque");
    break;
  case H5T_COMPOUND:
    snprintf(buf, len, "compound");
    break;
  case H5T_REFERENCE:
    snprintf(buf, len, "reference");
    break;
  case H5T_ENUM:
    snprintf(buf, len, "enum");
    break;
  case H5T_VLEN:
    snprintf(buf, len, "variable-length");
    break;
  case H5T_ARRAY:
    snprintf(buf, len, "array");
    break;
  default:
    snprintf(buf, len, "unknown");
    break;
  }
}

/* Rank 0 only, before the collective open: a missing file, a file that is not HDF5 and a
 * truncated one are found with a serial open, so the MPI-IO open below only ever sees files
 * that HDF5 can open and cannot fail on some ranks only. */
static int precheck(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) NHGD_FAIL(NHGD_ERR_IO, "%s: is a directory, not a data file", path);
  NHGD_CHECK(nhgd_check_regular(path));
  FILE *f = fopen(path, "rb");
  if (!f) NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  fclose(f);
  if (H5Fis_hdf5(path) <= 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: not an HDF5 file (or truncated)", path);
  int rc = NHGD_OK;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), file = H5I_INVALID_HID;
  if (fapl < 0 || H5Pset_fapl_sec2(fapl) < 0)
    NHGD_RAISE(rc, done, NHGD_ERR_HDF5, "%s: cannot create a file access list", path);
  file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  if (file < 0) {
    char detail[512];
    nhgd_data_h5_detail(detail, sizeof detail);
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: not an HDF5 file (or truncated)%s%s", path,
               detail[0] ? ": " : "", detail);
  }
done:
  if (file >= 0) H5Fclose(file);
  if (fapl >= 0) H5Pclose(fapl);
  return rc;
}

/* An optional scalar integer root attribute; *present = 0 when it is absent. */
static int int_attr(loader *L, const char *name, int *present, long long *v) {
  int rc = NHGD_OK;
  hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, space = H5I_INVALID_HID;
  *present = 0;
  const htri_t e = H5Aexists(L->file, name);
  if (e < 0) NHGD_FAIL(NHGD_ERR_HDF5, "%s: cannot read the root attributes", L->path);
  if (e == 0) return NHGD_OK;
  *present = 1;
  attr = H5Aopen(L->file, name, H5P_DEFAULT);
  if (attr < 0 || (type = H5Aget_type(attr)) < 0 || (space = H5Aget_space(attr)) < 0)
    NHGD_RAISE(rc, done, NHGD_ERR_HDF5, "%s: cannot read root attribute %s", L->path, name);
  if (H5Tget_class(type) != H5T_INTEGER) {
    char tn[32];
    type_name(type, tn, sizeof tn);
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: root attribute %s has type %s but must be an integer",
               L->path, name, tn);
  }
  if (H5Sget_simple_extent_npoints(space) != 1)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: root attribute %s must be a single integer", L->path,
               name);
  if (H5Aread(attr, H5T_NATIVE_LLONG, v) < 0)
    NHGD_RAISE(rc, done, NHGD_ERR_HDF5, "%s: cannot read root attribute %s", L->path, name);
done:
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  if (attr >= 0) H5Aclose(attr);
  return rc;
}

static int read_root_attributes(loader *L) {
  int present;
  long long v;
  NHGD_CHECK(int_attr(L, "format_version", &present, &v));
  if (present && v > NHGD_DATA_FORMAT_VERSION)
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: format_version %lld is newer than this program reads (%d); upgrade nhgd",
              L->path, v, NHGD_DATA_FORMAT_VERSION);
  if (present && v < 1)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: format_version %lld is not valid (must be 1)", L->path, v);
  NHGD_CHECK(int_attr(L, "n_classes", &present, &v));
  if (present) {
    if (v < 2)
      NHGD_FAIL(NHGD_ERR_DATA,
                "%s: root attribute n_classes = %lld, but classification needs at least 2 "
                "classes",
                L->path, v);
    if (v > INT32_MAX)
      NHGD_FAIL(NHGD_ERR_DATA, "%s: root attribute n_classes = %lld is too large", L->path, v);
    L->d->task = NHGD_TASK_CLASSIFICATION;
    L->d->n_classes = (int)v;
  } else {
    L->d->task = NHGD_TASK_REGRESSION;
    L->d->n_classes = 0;
  }
  return NHGD_OK;
}

/* Open dataset name ("X" or "y") of a split group; full is its path for messages. */
static int open_dataset(loader *L, hid_t group, const char *name, const char *full, hid_t *out) {
  const htri_t e = H5Lexists(group, name, H5P_DEFAULT);
  if (e < 0) NHGD_FAIL(NHGD_ERR_HDF5, "%s: cannot look up %s", L->path, full);
  if (e == 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: %s is missing", L->path, full);
  *out = H5Dopen2(group, name, H5P_DEFAULT);
  if (*out < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: %s is not a dataset", L->path, full);
  return NHGD_OK;
}

/* The stored bytes of a dataset must hold every value its shape claims: HDF5 1.10 reads past
 * its own buffers when a damaged file says otherwise. Compact and contiguous data: at least
 * the whole size (or nothing stored: fill values); chunked without filters: every stored chunk
 * of the full chunk size (with filters the pipeline checks the sizes itself). */
static int check_storage(loader *L, hid_t dset, hid_t space, hid_t type, const char *full) {
  hid_t dcpl = H5Dget_create_plist(dset);
  if (dcpl < 0) NHGD_FAIL(NHGD_ERR_HDF5, "%s: cannot read the layout of %s", L->path, full);
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  const int filters = H5Pget_nfilters(dcpl);
  hsize_t cdims[H5S_MAX_RANK];
  const int crank = layout == H5D_CHUNKED ? H5Pget_chunk(dcpl, H5S_MAX_RANK, cdims) : 0;
  H5Pclose(dcpl);
  const double tsize = (double)H5Tget_size(type);
  if (filters != 0) return NHGD_OK;
  if (layout == H5D_COMPACT || layout == H5D_CONTIGUOUS) {
    const double want = (double)H5Sget_simple_extent_npoints(space) * tsize;
    const double have = (double)H5Dget_storage_size(dset);
    if (have > 0 && have < want)
      NHGD_FAIL(NHGD_ERR_DATA, "%s: %s holds %.0f bytes but its shape needs %.0f (damaged file)",
                L->path, full, have, want);
    return NHGD_OK;
  }
  if (layout != H5D_CHUNKED) return NHGD_OK;
  double chunk = tsize;
  for (int i = 0; i < crank; ++i)
    chunk *= (double)cdims[i];
  hsize_t n = 0;
  if (crank <= 0 || H5Dget_num_chunks(dset, space, &n) < 0)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: cannot read the chunks of %s (damaged file)", L->path, full);
  for (hsize_t i = 0; i < n; ++i) {
    hsize_t size = 0;
    if (H5Dget_chunk_info(dset, space, i, NULL, NULL, NULL, &size) < 0 || (double)size != chunk)
      NHGD_FAIL(NHGD_ERR_DATA,
                "%s: %s: chunk %llu holds %llu bytes, not the %.0f of a chunk (damaged file)",
                L->path, full, (unsigned long long)i, (unsigned long long)size, chunk);
  }
  return NHGD_OK;
}

/* Rank, dimensions and type class of an open dataset; tname receives the type's name. */
static int dataset_shape(loader *L, hid_t dset, const char *full, int *ndims, hsize_t dims[2],
                         H5T_class_t *cls, char *tname, size_t tlen) {
  int rc = NHGD_OK;
  hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
  if (space < 0 || type < 0)
    NHGD_RAISE(rc, done, NHGD_ERR_HDF5, "%s: cannot read the shape of %s", L->path, full);
  *ndims = H5Sget_simple_extent_ndims(space);
  if (*ndims < 0)
    NHGD_RAISE(rc, done, NHGD_ERR_HDF5, "%s: cannot read the shape of %s", L->path, full);
  dims[0] = dims[1] = 0;
  if (*ndims >= 1 && *ndims <= 2) H5Sget_simple_extent_dims(space, dims, NULL);
  *cls = H5Tget_class(type);
  type_name(type, tname, tlen);
  rc = check_storage(L, dset, space, type, full);
done:
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  return rc;
}

/* Open /name/X and /name/y and check everything that the metadata tells. */
static int open_split(loader *L, int s) {
  split_files *sp = &L->s[s];
  nhgd_data *d = L->d;
  char gpath[16], xpath[24], ypath[24], tname[32];
  snprintf(gpath, sizeof gpath, "/%s", split_name[s]);
  snprintf(xpath, sizeof xpath, "/%s/X", split_name[s]);
  snprintf(ypath, sizeof ypath, "/%s/y", split_name[s]);
  const htri_t e = H5Lexists(L->file, split_name[s], H5P_DEFAULT);
  if (e < 0) NHGD_FAIL(NHGD_ERR_HDF5, "%s: cannot look up group %s", L->path, gpath);
  if (e == 0) {
    if (s == 2) return NHGD_OK; /* /test is optional */
    NHGD_FAIL(NHGD_ERR_DATA, "%s: group %s is missing", L->path, gpath);
  }
  sp->group = H5Gopen2(L->file, split_name[s], H5P_DEFAULT);
  if (sp->group < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: %s is not a group", L->path, gpath);
  sp->present = 1;
  NHGD_CHECK(open_dataset(L, sp->group, "X", xpath, &sp->X));
  NHGD_CHECK(open_dataset(L, sp->group, "y", ypath, &sp->y));

  int ndims;
  hsize_t dims[2];
  H5T_class_t cls;
  NHGD_CHECK(dataset_shape(L, sp->X, xpath, &ndims, dims, &cls, tname, sizeof tname));
  if (ndims != 2)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s must be 2-D (rows x features) but has %d dimension%s", L->path,
              xpath, ndims, ndims == 1 ? "" : "s");
  if (cls != H5T_FLOAT)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has type %s but must be floating point (float32 or float64)",
              L->path, xpath, tname);
  sp->n = (int64_t)dims[0];
  sp->m = (int64_t)dims[1];
  if (sp->m == 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has no columns (features)", L->path, xpath);
  if (sp->m > INT_MAX)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has %lld columns, more than supported (%d)", L->path, xpath,
              (long long)sp->m, INT_MAX);

  NHGD_CHECK(dataset_shape(L, sp->y, ypath, &ndims, dims, &cls, tname, sizeof tname));
  if (ndims != 1)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s must be 1-D but has %d dimension%s", L->path, ypath, ndims,
              ndims == 1 ? "" : "s");
  if ((int64_t)dims[0] != sp->n)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has %lld rows but %s has %lld", L->path, ypath,
              (long long)dims[0], xpath, (long long)sp->n);
  if (d->task == NHGD_TASK_CLASSIFICATION && cls != H5T_INTEGER)
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: %s has type %s but classification (n_classes=%d) needs integer "
              "labels",
              L->path, ypath, tname, d->n_classes);
  if (d->task == NHGD_TASK_REGRESSION && cls != H5T_FLOAT)
    NHGD_FAIL(NHGD_ERR_DATA,
              "%s: %s has type %s but regression (no n_classes attribute) needs "
              "floating-point targets (for classification set the root attribute n_classes)",
              L->path, ypath, tname);

  if (s > 0 && sp->m != L->s[0].m)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has %lld columns but /train/X has %lld", L->path, xpath,
              (long long)sp->m, (long long)L->s[0].m);
  if (sp->n == 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: %s is empty (0 rows)", L->path, gpath);
  if (sp->n < d->size)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has %lld rows, fewer than the %d MPI ranks", L->path, gpath,
              (long long)sp->n, d->size);
  if (sp->n / d->size >= INT_MAX)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %s has %lld rows, too many for %d MPI ranks (use more)", L->path,
              gpath, (long long)sp->n, d->size);
  return NHGD_OK;
}

static int read_metadata(loader *L) {
  NHGD_CHECK(read_root_attributes(L));
  for (int s = 0; s < N_SPLITS; ++s)
    NHGD_CHECK(open_split(L, s));
  L->d->m = (int)L->s[0].m;
  L->d->has_test = L->s[2].present;
  return NHGD_OK;
}

static int alloc_split(loader *L, int s) {
  nhgd_data *d = L->d;
  nhgd_split *sp = split_of(d, s);
  int64_t lo, n;
  nhgd_partition(L->s[s].n, d->size, d->rank, &lo, &n);
  sp->n_global = L->s[s].n;
  sp->lo = lo;
  sp->n_local = (int)n;
  sp->m = d->m;
  /* Dimensions come from the file: refuse what cannot be held before allocating it. */
  double limit;
  NHGD_CHECK(nhgd_data_dense_limit(&limit));
  const double need = 8.0 * (double)n * (double)d->m;
  if (need > limit)
    NHGD_FAIL(NHGD_ERR_MEM,
              "%s: /%s/X: this rank's %lld rows x %d features need %.1f GiB, more than the %.1f "
              "GiB available (use more ranks)",
              L->path, split_name[s], (long long)n, d->m, need / 1073741824.0,
              limit / 1073741824.0);
  NHGD_CHECK(nhgd_calloc(&sp->X, (size_t)n * (size_t)d->m, sizeof(double), "local rows of X"));
  if (d->task == NHGD_TASK_CLASSIFICATION) {
    NHGD_CHECK(nhgd_calloc(&sp->y_class, (size_t)n, sizeof(int32_t), "local labels"));
    NHGD_CHECK(nhgd_calloc(&L->s[s].labels, (size_t)n, sizeof(long long), "local labels"));
  } else {
    NHGD_CHECK(nhgd_calloc(&sp->y_real, (size_t)n, sizeof(double), "local targets"));
  }
  return NHGD_OK;
}

/* Collective: read rows [lo, lo + count[0]) of a dataset of rank nd into buf. */
static int read_rows(loader *L, hid_t dset, const char *full, int nd, const hsize_t *start,
                     const hsize_t *count, hid_t memtype, void *buf, hid_t dxpl) {
  int rc = NHGD_OK;
  hid_t fspace = H5Dget_space(dset), mspace = H5Screate_simple(nd, count, NULL);
  if (fspace < 0 || mspace < 0 ||
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
      H5Dread(dset, memtype, mspace, fspace, dxpl, buf) < 0) {
    char detail[512];
    nhgd_data_h5_detail(detail, sizeof detail);
    rc = nhgd_error_set(NHGD_ERR_HDF5, __FILE__, __LINE__, "%s: cannot read %s rows %llu..%llu%s%s",
                        L->path, full, (unsigned long long)start[0],
                        (unsigned long long)(start[0] + count[0] - 1), detail[0] ? ": " : "",
                        detail);
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return rc;
}

/* Collective: read this rank's rows of X and y with one hyperslab each. Both reads are made
 * even if the first fails, so that the collective calls stay matched across ranks. */
static int read_split(loader *L, int s, hid_t dxpl) {
  nhgd_split *sp = split_of(L->d, s);
  char xpath[24], ypath[24];
  snprintf(xpath, sizeof xpath, "/%s/X", split_name[s]);
  snprintf(ypath, sizeof ypath, "/%s/y", split_name[s]);
  const hsize_t start[2] = {(hsize_t)sp->lo, 0}, count[2] = {(hsize_t)sp->n_local, (hsize_t)sp->m};
  const int rx = read_rows(L, L->s[s].X, xpath, 2, start, count, H5T_NATIVE_DOUBLE, sp->X, dxpl);
  /* Labels are read as 64-bit integers so that a wide out-of-range label is reported with
   * its true value rather than one clipped by HDF5's conversion. */
  const int ry =
      sp->y_class
          ? read_rows(L, L->s[s].y, ypath, 1, start, count, H5T_NATIVE_LLONG, L->s[s].labels, dxpl)
          : read_rows(L, L->s[s].y, ypath, 1, start, count, H5T_NATIVE_DOUBLE, sp->y_real, dxpl);
  return rx ? rx : ry;
}

static const char *nonfinite_name(double v) {
  return isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
}

/* The largest magnitude a feature or target may have: the solver multiplies two of them
 * (squares, outer products, Gram and Fisher sums over up to 1e8 rows), and their product must
 * stay a double. Far beyond any data that means something; a value above it is the data's
 * fault, not a step size's. */
#define NHGD_DATA_MAX_ABS 1e150

/* Local: finite features of a sane size, labels in range, finite targets. Rows are reported
 * globally. */
static int validate_split(loader *L, int s) {
  nhgd_data *d = L->d;
  nhgd_split *sp = split_of(d, s);
  const char *name = split_name[s];
  for (int i = 0; i < sp->n_local; ++i)
    for (int j = 0; j < sp->m; ++j) {
      const double v = sp->X[(size_t)i * (size_t)sp->m + (size_t)j];
      if (!isfinite(v))
        NHGD_FAIL(NHGD_ERR_DATA, "%s: /%s/X: %s at row %lld column %d", L->path, name,
                  nonfinite_name(v), (long long)(sp->lo + i), j);
      if (fabs(v) > NHGD_DATA_MAX_ABS)
        NHGD_FAIL(NHGD_ERR_DATA,
                  "%s: /%s/X: %g at row %lld column %d is too large to compute with (the "
                  "product of two such values overflows; |x| must stay below %g): rescale the "
                  "features (the importers standardise them)",
                  L->path, name, v, (long long)(sp->lo + i), j, NHGD_DATA_MAX_ABS);
    }
  if (sp->y_class) {
    for (int i = 0; i < sp->n_local; ++i) {
      const long long l = L->s[s].labels[i];
      if (l < 0 || l >= d->n_classes)
        NHGD_FAIL(NHGD_ERR_DATA,
                  "%s: /%s/y: label %lld at row %lld is outside 0..%d (n_classes = %d)", L->path,
                  name, l, (long long)(sp->lo + i), d->n_classes - 1, d->n_classes);
      sp->y_class[i] = (int32_t)l;
    }
  } else {
    for (int i = 0; i < sp->n_local; ++i)
      if (!isfinite(sp->y_real[i]))
        NHGD_FAIL(NHGD_ERR_DATA, "%s: /%s/y: %s at row %lld", L->path, name,
                  nonfinite_name(sp->y_real[i]), (long long)(sp->lo + i));
      else if (fabs(sp->y_real[i]) > NHGD_DATA_MAX_ABS)
        NHGD_FAIL(NHGD_ERR_DATA,
                  "%s: /%s/y: %g at row %lld is too large to compute with (the square "
                  "overflows; |y| must stay below %g): rescale the targets",
                  L->path, name, sp->y_real[i], (long long)(sp->lo + i), NHGD_DATA_MAX_ABS);
  }
  return NHGD_OK;
}

static int present(const loader *L, int s) {
  return L->s[s].present;
}

/* Close every HDF5 object of the loader (the file last: with the MPI-IO driver the file
 * cannot close while objects in it are open). */
static void close_all(loader *L) {
  for (int s = 0; s < N_SPLITS; ++s) {
    split_files *sp = &L->s[s];
    if (sp->y >= 0) H5Dclose(sp->y);
    if (sp->X >= 0) H5Dclose(sp->X);
    if (sp->group >= 0) H5Gclose(sp->group);
    sp->X = sp->y = sp->group = H5I_INVALID_HID;
    nhgd_free(&sp->labels);
  }
}

/* The file access list of a load: MPI-IO on the file at path, or HDF5's core driver on the
 * bytes of an image (nothing written back). */
static int access_list(const loader *L, const void *image, size_t size, hid_t *fapl) {
  *fapl = H5Pcreate(H5P_FILE_ACCESS);
  int bad = *fapl < 0;
  if (!bad && image) {
    /* HDF5 copies the image and never writes to it, but declares it non-const. */
    void *bytes;
    memcpy(&bytes, &image, sizeof bytes);
    bad = H5Pset_fapl_core(*fapl, 1 << 16, 0) < 0 || H5Pset_file_image(*fapl, bytes, size) < 0;
  }
  /* Collective metadata reads: one rank reads each object header and broadcasts it, instead
   * of every rank hitting the file system for the same bytes. This is safe because every
   * rank makes the same metadata calls (see the top of this file). */
  else if (!bad)
    bad = H5Pset_fapl_mpio(*fapl, L->d->comm, MPI_INFO_NULL) < 0 ||
          H5Pset_all_coll_metadata_ops(*fapl, 1) < 0;
  if (bad)
    NHGD_FAIL(NHGD_ERR_HDF5, "%s: cannot set up %s access", L->path, image ? "core" : "MPI-IO");
  return NHGD_OK;
}

static int load(MPI_Comm comm, const char *path, const void *image, size_t size, nhgd_data **out) {
  if (!out) NHGD_FAIL(NHGD_ERR_ARG, "nhgd_data_load: out is NULL");
  *out = NULL;
  if (!path || !path[0]) NHGD_FAIL(NHGD_ERR_ARG, "no data file given");
  nhgd_h5_quiet();

  nhgd_data *d = NULL;
  int rc = nhgd_calloc(&d, 1, sizeof *d, "data");
  if (!rc && strlen(path) >= sizeof d->path)
    rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                        "%s: path too long (at most %zu characters)", path, sizeof d->path - 1);
  rc = nhgd_error_agree(comm, rc);
  if (rc) {
    nhgd_free(&d);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  d->comm = MPI_COMM_NULL;
  if (MPI_Comm_dup(comm, &d->comm) != MPI_SUCCESS) {
    nhgd_free(&d);
    NHGD_FAIL(NHGD_ERR_MPI, "%s: MPI_Comm_dup failed", path);
  }
  MPI_Comm_rank(d->comm, &d->rank);
  MPI_Comm_size(d->comm, &d->size);
  snprintf(d->path, sizeof d->path, "%s", path);

  loader L = {.path = path, .d = d, .file = H5I_INVALID_HID};
  for (int s = 0; s < N_SPLITS; ++s)
    L.s[s] = (split_files){.group = H5I_INVALID_HID, .X = H5I_INVALID_HID, .y = H5I_INVALID_HID};
  hid_t fapl = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;

  rc = d->rank == 0 && !image ? precheck(path) : NHGD_OK;
  NHGD_TRY(rc, nhgd_error_agree(d->comm, rc), done);

  rc = access_list(&L, image, size, &fapl);
  dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (!rc && (dxpl < 0 || (!image && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0))) {
    rc = nhgd_error_set(NHGD_ERR_HDF5, __FILE__, __LINE__, "%s: cannot set up MPI-IO access", path);
  } else if (!rc) {
    L.file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (L.file < 0) {
      char detail[512];
      nhgd_data_h5_detail(detail, sizeof detail);
      rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__,
                          "%s: not an HDF5 file (or truncated)%s%s", path, detail[0] ? ": " : "",
                          detail);
    }
  }
  NHGD_TRY(rc, nhgd_error_agree(d->comm, rc), done);

  /* Metadata is the same on every rank, so this agreement only guards against local
   * failures (e.g. memory) inside HDF5. */
  rc = read_metadata(&L);
  NHGD_TRY(rc, nhgd_error_agree(d->comm, rc), done);

  for (int s = 0; s < N_SPLITS && !rc; ++s)
    if (present(&L, s)) rc = alloc_split(&L, s);
  NHGD_TRY(rc, nhgd_error_agree(d->comm, rc), done);

  /* Every rank joins every collective read, even after a local read failure, so that the
   * calls stay matched; the failure is agreed on afterwards. */
  int read_rc = NHGD_OK;
  for (int s = 0; s < N_SPLITS; ++s)
    if (present(&L, s)) {
      rc = read_split(&L, s, dxpl);
      if (rc && !read_rc) read_rc = rc;
    }
  NHGD_TRY(rc, nhgd_error_agree(d->comm, read_rc), done);

  for (int s = 0; s < N_SPLITS && !rc; ++s)
    if (present(&L, s)) rc = validate_split(&L, s);
  NHGD_TRY(rc, nhgd_error_agree(d->comm, rc), done);

done:
  close_all(&L);
  if (L.file >= 0 && H5Fclose(L.file) < 0 && !rc)
    rc = nhgd_error_set(NHGD_ERR_HDF5, __FILE__, __LINE__, "%s: cannot close the file", path);
  if (dxpl >= 0) H5Pclose(dxpl);
  if (fapl >= 0) H5Pclose(fapl);
  if (rc) {
    nhgd_data_destroy(&d);
    return rc;
  }
  *out = d;
  return NHGD_OK;
}

int nhgd_data_load(MPI_Comm comm, const char *path, nhgd_data **out) {
  return load(comm, path, NULL, 0, out);
}

int nhgd_data_load_image(MPI_Comm comm, const char *name, const void *image, size_t size,
                         nhgd_data **out) {
  if (!image || !size) NHGD_FAIL(NHGD_ERR_DATA, "%s: an empty image is not an HDF5 file", name);
  return load(comm, name, image, size, out);
}

void nhgd_data_destroy(nhgd_data **data) {
  if (!data || !*data) return;
  nhgd_data *d = *data;
  nhgd_split *splits[N_SPLITS] = {&d->train, &d->val, &d->test};
  for (int s = 0; s < N_SPLITS; ++s) {
    nhgd_free(&splits[s]->X);
    nhgd_free(&splits[s]->y_class);
    nhgd_free(&splits[s]->y_real);
  }
  int finalized = 1;
  MPI_Finalized(&finalized);
  /* MPI_Comm_free only marks the communicator for release (Open MPI does it locally), so
   * freeing on one rank alone is safe. */
  if (!finalized && d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
  nhgd_free(data);
}
