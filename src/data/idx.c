/* IDX files (gzip or plain): a strict reader and the `nhgd data import-idx` importer. */
#include "nhgd/data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/rng.h"
#include "core/util.h"
#include "data/data_internal.h"
#include "nhgd/output.h"

/* Read up to len bytes. Returns the number read; *zerr is set to 1 on a zlib error
 * (damaged or truncated gzip stream), in which case the bytes read so far are returned. */
static int64_t read_bytes(gzFile g, uint8_t *buf, int64_t len, int *zerr) {
  int64_t got = 0;
  *zerr = 0;
  while (got < len) {
    const int64_t left = len - got;
    const unsigned chunk = (unsigned)(left > (1 << 30) ? (1 << 30) : left);
    const int r = gzread(g, buf + got, chunk);
    if (r < 0) {
      *zerr = 1;
      break;
    }
    if (r == 0) break;
    got += r;
  }
  return got;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *gz_message(gzFile g) {
  int errnum = 0;
  const char *msg = gzerror(g, &errnum);
  return errnum == Z_ERRNO ? strerror(errno) : msg;
}

int nhgd_idx_read(const char *path, int ndim, nhgd_idx *out) {
  int rc = NHGD_OK, zerr = 0;
  memset(out, 0, sizeof *out);
  if (ndim < 1 || ndim > 3) NHGD_FAIL(NHGD_ERR_INTERNAL, "IDX files with %d dimensions", ndim);
  NHGD_CHECK(nhgd_check_regular(path));
  errno = 0;
  gzFile g = gzopen(path, "rb");
  if (!g)
    NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
  gzbuffer(g, 1 << 20);

  uint8_t head[16];
  const int64_t head_len = 4 + 4 * (int64_t)ndim;
  int64_t got = read_bytes(g, head, 4, &zerr);
  if (zerr) NHGD_RAISE(rc, done, NHGD_ERR_IO, "%s: cannot read: %s", path, gz_message(g));
  if (got < 4)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: not an IDX file (only %lld bytes)", path,
               (long long)got);
  const uint32_t magic = be32(head), want = 0x00000800u | (uint32_t)ndim;
  if (magic != want)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: bad IDX magic number 0x%08x: expected 0x%08x (unsigned bytes, %d dimension%s: "
               "%s)",
               path, magic, want, ndim, ndim == 1 ? "" : "s", ndim == 1 ? "labels" : "images");
  got = read_bytes(g, head + 4, head_len - 4, &zerr);
  if (zerr || got < head_len - 4)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: truncated: the IDX header needs %lld bytes, found %lld", path,
               (long long)head_len, (long long)(4 + got));

  char shape[96] = "";
  int64_t total = 1;
  out->ndim = ndim;
  for (int i = 0; i < ndim; ++i) {
    out->dims[i] = be32(head + 4 + 4 * i);
    const size_t used = strlen(shape);
    snprintf(shape + used, sizeof shape - used, "%s%lld", i ? " x " : "", (long long)out->dims[i]);
    if (out->dims[i] == 0)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: dimension %d of the IDX header is 0", path, i + 1);
    /* Each dimension is below 2^32; refuse products beyond 2^62 before they overflow. */
    if (total > ((int64_t)1 << 62) / out->dims[i])
      NHGD_RAISE(rc, done, NHGD_ERR_DATA, "%s: IDX dimensions %s are too large", path, shape);
    total *= out->dims[i];
  }
  /* The header is not trusted for the allocation: the buffer grows with what is actually
   * read, so a header claiming more than the file holds costs no more than the file. */
  int64_t cap = total < ((int64_t)1 << 20) ? total : ((int64_t)1 << 20);
  NHGD_TRY(rc, nhgd_calloc(&out->data, (size_t)cap, 1, path), done);
  got = 0;
  for (;;) {
    const int64_t r = read_bytes(g, out->data + got, cap - got, &zerr);
    got += r > 0 ? r : 0;
    if (zerr || got < cap || cap == total) break;
    const int64_t grown = cap > total / 2 ? total : 2 * cap;
    uint8_t *more = realloc(out->data, (size_t)grown);
    if (!more)
      NHGD_RAISE(rc, done, NHGD_ERR_MEM, "%s: out of memory reading %lld bytes (header %s)", path,
                 (long long)grown, shape);
    out->data = more;
    cap = grown;
  }
  /* Sizes of a gzip file are counted after decompression: say so, or "holds 66 bytes" of a
   * 5 kB file would puzzle. */
  const char *unit = gzdirect(g) ? "" : " uncompressed";
  if (zerr)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: truncated or damaged: expected %lld%s bytes (header %s) but could read only "
               "%lld: %s",
               path, (long long)(head_len + total), unit, shape, (long long)(head_len + got),
               gz_message(g));
  if (got < total)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: truncated: expected %lld%s bytes (header %s) but the file holds %lld", path,
               (long long)(head_len + total), unit, shape, (long long)(head_len + got));
  /* A longer file than promised usually means a wrong header: refuse it too. */
  int64_t extra = 0;
  for (;;) {
    uint8_t tail[4096];
    const int64_t r = read_bytes(g, tail, sizeof tail, &zerr);
    extra += r;
    if (zerr || r < (int64_t)sizeof tail) break;
  }
  if (extra > 0)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: expected %lld%s bytes (header %s) but the file holds %lld (trailing data)",
               path, (long long)(head_len + total), unit, shape,
               (long long)(head_len + total + extra));
done:
  gzclose(g);
  if (rc) nhgd_idx_free(out);
  return rc;
}

void nhgd_idx_free(nhgd_idx *a) {
  if (a) nhgd_free(&a->data);
}

int nhgd_idx_read_pair(const char *images, const char *labels, nhgd_idx *img, nhgd_idx *lab) {
  memset(lab, 0, sizeof *lab);
  NHGD_CHECK(nhgd_idx_read(images, 3, img));
  int rc = nhgd_idx_read(labels, 1, lab);
  if (!rc && img->dims[1] * img->dims[2] > INT32_MAX)
    rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__,
                        "%s: images of %lld x %lld pixels are too large", images,
                        (long long)img->dims[1], (long long)img->dims[2]);
  if (!rc && img->dims[0] != lab->dims[0])
    rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__,
                        "%s has %lld images but %s has %lld labels", images,
                        (long long)img->dims[0], labels, (long long)lab->dims[0]);
  if (rc) {
    nhgd_idx_free(img);
    nhgd_idx_free(lab);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  return NHGD_OK;
}

int nhgd_idx_classes(const nhgd_idx *lab, const char *path, int *n_classes) {
  int max = 0;
  for (int64_t i = 0; i < lab->dims[0]; ++i)
    if (lab->data[i] > max) max = lab->data[i];
  if (max < 1)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: every label is %d; classification needs at least 2 classes", path,
              max);
  *n_classes = max + 1;
  return NHGD_OK;
}

void nhgd_idx_gather(const nhgd_idx *img, const nhgd_idx *lab, const int64_t *rows, int64_t n,
                     nhgd_wsplit *out) {
  const int64_t m = img->dims[1] * img->dims[2];
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t *src = img->data + rows[i] * m;
    double *dst = out->X + i * m;
    for (int64_t j = 0; j < m; ++j)
      dst[j] = src[j] / 255.0;
    out->y_class[i] = lab->data[rows[i]];
  }
}

int nhgd_idx_writer_end(nhgd_idx_writer *iw, int status) {
  status = nhgd_h5w_finish(&iw->w, status);
  nhgd_free(&iw->perm);
  nhgd_wsplit_free(&iw->train);
  nhgd_wsplit_free(&iw->val);
  nhgd_wsplit_free(&iw->test);
  nhgd_idx_free(&iw->img);
  nhgd_idx_free(&iw->lab);
  nhgd_idx_free(&iw->timg);
  nhgd_idx_free(&iw->tlab);
  return status;
}

void nhgd_import_idx_options_default(nhgd_import_idx_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->output, sizeof o->output, NHGD_IMPORT_DEFAULT_OUTPUT);
  o->val_fraction = NHGD_IMPORT_DEFAULT_VAL_FRACTION;
  o->seed = NHGD_IMPORT_DEFAULT_SEED;
  o->standardize = NHGD_IMPORT_DEFAULT_STANDARDIZE;
}

/* Test labels must be among the classes seen in training. */
static int check_test_labels(const nhgd_idx *lab, const char *path, int n_classes) {
  for (int64_t i = 0; i < lab->dims[0]; ++i)
    if (lab->data[i] >= n_classes)
      NHGD_FAIL(NHGD_ERR_DATA, "%s: label %d of item %lld is not among the training classes 0..%d",
                path, lab->data[i], (long long)i, n_classes - 1);
  return NHGD_OK;
}

int nhgd_data_import_idx(const nhgd_import_idx_options *o) {
  if (!o->images[0] || !o->labels[0])
    NHGD_FAIL(NHGD_ERR_ARG, "import-idx: both an images file and a labels file are required");
  if (!o->test_images[0] != !o->test_labels[0])
    NHGD_FAIL(NHGD_ERR_ARG, "import-idx: %s given without %s: give both test files or neither",
              o->test_images[0] ? "test images" : "test labels",
              o->test_images[0] ? "test labels" : "test images");
  if (!(o->val_fraction > 0 && o->val_fraction < 1))
    NHGD_FAIL(NHGD_ERR_ARG, "import-idx: val_fraction = %g must be in (0, 1)", o->val_fraction);
  if (!o->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "import-idx: no output file given");
  const nhgd_path paths[] = {{"--images", o->images, NHGD_PATH_READ},
                             {"--labels", o->labels, NHGD_PATH_READ},
                             {"--test-images", o->test_images, NHGD_PATH_READ},
                             {"--test-labels", o->test_labels, NHGD_PATH_READ},
                             {"--output", o->output, NHGD_PATH_WRITE}};
  NHGD_CHECK(nhgd_paths_check(paths, (int)(sizeof paths / sizeof paths[0])));

  int rc = NHGD_OK, n_classes = 0;
  const int has_test = o->test_images[0] != '\0';
  nhgd_idx_writer iw = {.w = {.file = H5I_INVALID_HID}};

  NHGD_TRY(rc, nhgd_idx_read_pair(o->images, o->labels, &iw.img, &iw.lab), done);
  NHGD_TRY(rc, nhgd_idx_classes(&iw.lab, o->labels, &n_classes), done);
  if (has_test) {
    NHGD_TRY(rc, nhgd_idx_read_pair(o->test_images, o->test_labels, &iw.timg, &iw.tlab), done);
    if (iw.timg.dims[1] != iw.img.dims[1] || iw.timg.dims[2] != iw.img.dims[2])
      NHGD_RAISE(rc, done, NHGD_ERR_DATA,
                 "%s: images are %lld x %lld but those of %s are %lld x %lld", o->test_images,
                 (long long)iw.timg.dims[1], (long long)iw.timg.dims[2], o->images,
                 (long long)iw.img.dims[1], (long long)iw.img.dims[2]);
    NHGD_TRY(rc, check_test_labels(&iw.tlab, o->test_labels, n_classes), done);
  }
  const int64_t N = iw.img.dims[0], n_val = llround(o->val_fraction * (double)N),
                n_train = N - n_val;
  if (n_val < 1 || n_train < 1)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: %lld images are too few to split with val_fraction %g (need at least one "
               "training and one validation row)",
               o->images, (long long)N, o->val_fraction);
  const int m = (int)(iw.img.dims[1] * iw.img.dims[2]);

  NHGD_TRY(rc, nhgd_calloc(&iw.perm, (size_t)N, sizeof *iw.perm, "row permutation"), done);
  nhgd_rng_permutation(o->seed, NHGD_STREAM_SPLIT, 0, N, iw.perm);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.train, n_train, m, 1, "training rows"), done);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.val, n_val, m, 1, "validation rows"), done);
  nhgd_idx_gather(&iw.img, &iw.lab, iw.perm, n_train, &iw.train);
  nhgd_idx_gather(&iw.img, &iw.lab, iw.perm + n_train, n_val, &iw.val);
  if (has_test) {
    nhgd_free(&iw.perm);
    NHGD_TRY(rc, nhgd_calloc(&iw.perm, (size_t)iw.timg.dims[0], sizeof *iw.perm, "test rows"),
             done);
    for (int64_t i = 0; i < iw.timg.dims[0]; ++i)
      iw.perm[i] = i;
    NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.test, iw.timg.dims[0], m, 1, "test rows"), done);
    nhgd_idx_gather(&iw.timg, &iw.tlab, iw.perm, iw.timg.dims[0], &iw.test);
  }
  if (o->standardize)
    NHGD_TRY(rc, nhgd_data_standardize(&iw.train, &iw.val, has_test ? &iw.test : NULL), done);

  NHGD_TRY(rc, nhgd_h5w_create(&iw.w, o->output), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_classes", n_classes), done);
  NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "train", &iw.train, 1), done);
  NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "val", &iw.val, 1), done);
  if (has_test) NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "test", &iw.test, 1), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "generator", "import-idx"), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "images", o->images), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "labels", o->labels), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "test_images", o->test_images), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "test_labels", o->test_labels), done);
  NHGD_TRY(rc, nhgd_h5w_attr_double(&iw.w, "val_fraction", o->val_fraction), done);
  NHGD_TRY(rc, nhgd_h5w_attr_u64(&iw.w, "seed", o->seed), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "standardize", o->standardize ? 1 : 0), done);
done:
  return nhgd_idx_writer_end(&iw, rc);
}
