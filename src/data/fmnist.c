/* Fashion-MNIST hyper-cleaning data (docs/algorithm.md section 6) behind `nhgd data fashion-mnist`.
 */
#include "nhgd/data.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/util.h"
#include "data/data_internal.h"
#include "nhgd/output.h"

void nhgd_fmnist_options_default(nhgd_fmnist_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->dir, sizeof o->dir, "%s", NHGD_FMNIST_DEFAULT_DIR);
  snprintf(o->output, sizeof o->output, "%s", NHGD_FMNIST_DEFAULT_OUTPUT);
  o->n_train = NHGD_FMNIST_DEFAULT_N_TRAIN;
  o->n_val = NHGD_FMNIST_DEFAULT_N_VAL;
  o->corruption = NHGD_FMNIST_DEFAULT_CORRUPTION;
  o->seed = NHGD_FMNIST_DEFAULT_SEED;
  o->standardize = NHGD_FMNIST_DEFAULT_STANDARDIZE;
}

/* dir/base.gz if it exists (Debian ships the compressed files), else dir/base. */
static int find_file(const char *dir, const char *base, char *out, size_t len) {
  if ((size_t)snprintf(out, len, "%s/%s.gz", dir, base) >= len)
    NHGD_FAIL(NHGD_ERR_ARG, "%s: directory name too long", dir);
  if (access(out, R_OK) == 0) return NHGD_OK;
  snprintf(out, len, "%s/%s", dir, base);
  if (access(out, R_OK) == 0) return NHGD_OK;
  NHGD_FAIL(NHGD_ERR_IO, "%s: neither %s nor %s.gz is there (or readable)", dir, base, base);
}

int nhgd_data_fashion_mnist(const nhgd_fmnist_options *o) {
  if (!o->dir[0]) NHGD_FAIL(NHGD_ERR_ARG, "fashion-mnist: no directory of IDX files given");
  if (!o->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "fashion-mnist: no output file given");
  if (o->n_train < 1 || o->n_val < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "fashion-mnist: n_train = %lld and n_val = %lld must both be >= 1",
              (long long)o->n_train, (long long)o->n_val);
  if (!(o->corruption >= 0 && o->corruption <= 1))
    NHGD_FAIL(NHGD_ERR_ARG, "fashion-mnist: corruption = %g must be in [0, 1]", o->corruption);

  int rc = NHGD_OK, n_classes = 0;
  char paths[4][4200];
  static const char *const bases[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  nhgd_idx_writer iw = {.w = {.file = H5I_INVALID_HID}};
  int32_t *y_clean = NULL;
  int8_t *corrupted = NULL;

  for (int i = 0; i < 4; ++i)
    NHGD_TRY(rc, find_file(o->dir, bases[i], paths[i], sizeof paths[i]), done);
  const nhgd_path uses[] = {{"--dir", paths[0], NHGD_PATH_READ},
                            {"--dir", paths[1], NHGD_PATH_READ},
                            {"--dir", paths[2], NHGD_PATH_READ},
                            {"--dir", paths[3], NHGD_PATH_READ},
                            {"--output", o->output, NHGD_PATH_WRITE}};
  NHGD_TRY(rc, nhgd_paths_check(uses, (int)(sizeof uses / sizeof uses[0])), done);
  NHGD_TRY(rc, nhgd_idx_read_pair(paths[0], paths[1], &iw.img, &iw.lab), done);
  NHGD_TRY(rc, nhgd_idx_read_pair(paths[2], paths[3], &iw.timg, &iw.tlab), done);
  NHGD_TRY(rc, nhgd_idx_classes(&iw.lab, paths[1], &n_classes), done);
  if (iw.timg.dims[1] != iw.img.dims[1] || iw.timg.dims[2] != iw.img.dims[2])
    NHGD_RAISE(rc, done, NHGD_ERR_DATA,
               "%s: images are %lld x %lld but those of %s are %lld x %lld", paths[2],
               (long long)iw.timg.dims[1], (long long)iw.timg.dims[2], paths[0],
               (long long)iw.img.dims[1], (long long)iw.img.dims[2]);
  for (int64_t i = 0; i < iw.tlab.dims[0]; ++i)
    if (iw.tlab.data[i] >= n_classes)
      NHGD_RAISE(rc, done, NHGD_ERR_DATA,
                 "%s: label %d of item %lld is not among the classes 0..%d", paths[3],
                 iw.tlab.data[i], (long long)i, n_classes - 1);
  const int64_t N = iw.img.dims[0];
  if (o->n_train > N - o->n_val)
    NHGD_RAISE(rc, done, NHGD_ERR_ARG,
               "fashion-mnist: n_train + n_val = %lld exceeds the %lld training images in %s",
               (long long)(o->n_train + o->n_val), (long long)N, paths[0]);
  const int m = (int)(iw.img.dims[1] * iw.img.dims[2]);

  /* One permutation of all training images: its first n_train entries are the training
   * rows and the next n_val the validation rows, so the two never overlap. */
  NHGD_TRY(rc, nhgd_calloc(&iw.perm, (size_t)N, sizeof *iw.perm, "row permutation"), done);
  nhgd_rng_permutation(o->seed, NHGD_STREAM_SPLIT, 0, N, iw.perm);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.train, o->n_train, m, 1, "training rows"), done);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.val, o->n_val, m, 1, "validation rows"), done);
  NHGD_TRY(rc, nhgd_wsplit_alloc(&iw.test, iw.timg.dims[0], m, 1, "test rows"), done);
  nhgd_idx_gather(&iw.img, &iw.lab, iw.perm, o->n_train, &iw.train);
  nhgd_idx_gather(&iw.img, &iw.lab, iw.perm + o->n_train, o->n_val, &iw.val);
  for (int64_t i = 0; i < iw.timg.dims[0]; ++i)
    iw.perm[i] = i;
  nhgd_idx_gather(&iw.timg, &iw.tlab, iw.perm, iw.timg.dims[0], &iw.test);

  /* Hyper-cleaning corruption: a redrawn label is uniform over all classes, so it keeps its
   * true value with probability 1/n_classes; the mask records redraws, not changes. */
  NHGD_TRY(rc, nhgd_calloc(&y_clean, (size_t)o->n_train, sizeof *y_clean, "clean labels"), done);
  NHGD_TRY(rc, nhgd_calloc(&corrupted, (size_t)o->n_train, 1, "corruption mask"), done);
  int64_t n_corrupted = 0;
  for (int64_t i = 0; i < o->n_train; ++i) {
    y_clean[i] = iw.train.y_class[i];
    if (nhgd_rng_uniform(o->seed, NHGD_STREAM_CORRUPT, (uint64_t)i, 0, 0) < o->corruption) {
      iw.train.y_class[i] = (int32_t)nhgd_rng_below(o->seed, NHGD_STREAM_CORRUPT, (uint64_t)i, 1, 0,
                                                    (uint64_t)n_classes);
      corrupted[i] = 1;
      ++n_corrupted;
    }
  }
  if (o->standardize) NHGD_TRY(rc, nhgd_data_standardize(&iw.train, &iw.val, &iw.test), done);

  NHGD_TRY(rc, nhgd_h5w_create(&iw.w, o->output), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_classes", n_classes), done);
  NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "train", &iw.train, 1), done);
  NHGD_TRY(rc, nhgd_h5w_int32s(&iw.w, "/train/y_clean", o->n_train, y_clean), done);
  NHGD_TRY(rc, nhgd_h5w_int8s(&iw.w, "/train/corrupted", o->n_train, corrupted), done);
  NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "val", &iw.val, 1), done);
  NHGD_TRY(rc, nhgd_h5w_split(&iw.w, "test", &iw.test, 1), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "generator", "fashion-mnist"), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&iw.w, "source_dir", o->dir), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_train", o->n_train), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_val", o->n_val), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_test", iw.timg.dims[0]), done);
  NHGD_TRY(rc, nhgd_h5w_attr_double(&iw.w, "corruption", o->corruption), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "n_corrupted", n_corrupted), done);
  NHGD_TRY(rc, nhgd_h5w_attr_u64(&iw.w, "seed", o->seed), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&iw.w, "standardize", o->standardize ? 1 : 0), done);
done:
  rc = nhgd_idx_writer_end(&iw, rc);
  nhgd_free(&y_clean);
  nhgd_free(&corrupted);
  return rc;
}
