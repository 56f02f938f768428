/* MPI round trip: every rank loads exactly its rows of files made by the writers. */
/* Rows are compared bit for bit with a serial read of the whole file on rank 0. */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mpi_check.h"
#include "data/testutil.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"

static int rank, size;

/* Rank 0 reads /name/X and /name/y whole and broadcasts them; every rank compares its rows. */
static void check_split(const char *path, const char *name, const nhgd_split *s,
                        int classification) {
  char xp[32], yp[32];
  snprintf(xp, sizeof xp, "/%s/X", name);
  snprintf(yp, sizeof yp, "/%s/y", name);
  int64_t shape[2] = {0, 0}, yn = 0;
  double *X = NULL, *y = NULL;
  if (rank == 0) {
    X = tu_read_doubles(path, xp, &shape[0], &shape[1]);
    y = tu_read_doubles(path, yp, &yn, NULL);
    MC_REQUIRE(X && y && yn == shape[0], "serial read of %s failed", path);
  }
  MPI_Bcast(shape, 2, MPI_INT64_T, 0, MPI_COMM_WORLD);
  const int64_t n = shape[0], m = shape[1];
  if (rank != 0) {
    X = malloc(sizeof(double) * (size_t)(n * m));
    y = malloc(sizeof(double) * (size_t)n);
    MC_REQUIRE(X && y, "out of memory");
  }
  MPI_Bcast(X, (int)(n * m), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MPI_Bcast(y, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD);

  int64_t lo, cnt;
  nhgd_partition(n, size, rank, &lo, &cnt);
  MC_REQUIRE(s->n_global == n, "%s: n_global %lld, file has %lld", name, (long long)s->n_global,
             (long long)n);
  MC_REQUIRE(s->m == m, "%s: m %d, file has %lld", name, s->m, (long long)m);
  MC_REQUIRE(s->lo == lo && s->n_local == cnt, "%s: rows [%lld, +%d), expected [%lld, +%lld)", name,
             (long long)s->lo, s->n_local, (long long)lo, (long long)cnt);
  MC_REQUIRE(s->n_local > 0, "%s: rank owns no rows", name);
  /* Bitwise: the reader converts float32 to double exactly as the serial read does. */
  MC_REQUIRE(memcmp(s->X, X + lo * m, sizeof(double) * (size_t)(cnt * m)) == 0,
             "%s: X rows differ from the file", name);
  if (classification) {
    MC_REQUIRE(s->y_class && !s->y_real, "%s: classification needs y_class only", name);
    for (int64_t i = 0; i < cnt; ++i)
      MC_REQUIRE(s->y_class[i] == (int32_t)y[lo + i], "%s: label of row %lld is %d, file has %g",
                 name, (long long)(lo + i), s->y_class[i], y[lo + i]);
  } else {
    MC_REQUIRE(s->y_real && !s->y_class, "%s: regression needs y_real only", name);
    MC_REQUIRE(memcmp(s->y_real, y + lo, sizeof(double) * (size_t)cnt) == 0,
               "%s: targets differ from the file", name);
  }
  /* The blocks of all ranks tile the rows in rank order. */
  int64_t mine[2] = {s->lo, s->n_local}, *all = malloc(sizeof(int64_t) * 2 * (size_t)size);
  MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
  int64_t next = 0;
  for (int r = 0; r < size; ++r) {
    MC_REQUIRE(all[2 * r] == next, "%s: rank %d starts at %lld, expected %lld", name, r,
               (long long)all[2 * r], (long long)next);
    next += all[2 * r + 1];
  }
  MC_REQUIRE(next == n, "%s: ranks own %lld rows of %lld", name, (long long)next, (long long)n);
  free(all);
  free(X);
  free(y);
}

static void check_file(const char *path, int classification, int n_classes, int has_test) {
  nhgd_data *d = NULL;
  nhgd_error_clear();
  const int rc = nhgd_data_load(MPI_COMM_WORLD, path, &d);
  MC_REQUIRE(rc == 0 && d, "loading %s failed: %s", path, nhgd_error_message());
  MC_REQUIRE(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "HDF5 objects left open by the load");
  int cmp;
  MPI_Comm_compare(d->comm, MPI_COMM_WORLD, &cmp);
  MC_REQUIRE(cmp == MPI_CONGRUENT, "data->comm must be a duplicate of the caller's communicator");
  MC_REQUIRE(d->rank == rank && d->size == size, "rank/size");
  MC_REQUIRE(strcmp(d->path, path) == 0, "path %s", d->path);
  MC_REQUIRE(d->task == (classification ? NHGD_TASK_CLASSIFICATION : NHGD_TASK_REGRESSION), "task");
  MC_REQUIRE(d->n_classes == n_classes, "n_classes %d, expected %d", d->n_classes, n_classes);
  MC_REQUIRE(d->has_test == has_test, "has_test %d", d->has_test);
  MC_REQUIRE(d->m == d->train.m && d->m == d->val.m, "m");
  check_split(path, "train", &d->train, classification);
  check_split(path, "val", &d->val, classification);
  if (has_test)
    check_split(path, "test", &d->test, classification);
  else
    MC_REQUIRE(d->test.n_global == 0 && d->test.n_local == 0 && !d->test.X, "absent test split");
  nhgd_data_destroy(&d);
  MC_REQUIRE(d == NULL, "destroy must NULL the pointer");
  nhgd_data_destroy(&d); /* NULL-safe */
}

/* Rank 0 runs a writer; the status is shared so that a failed writer stops every rank. */
static void shared_status(int rc, const char *what) {
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MC_REQUIRE(rc == 0, "%s failed on rank 0: %s", what, rank == 0 ? nhgd_error_message() : "");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int np = mc_expected_np();
  char ridge[64], logistic[64], big[64], idx[64], img[64], lab[64], timg[64], tlab[64];
  snprintf(ridge, sizeof ridge, "data_rt_np%d_ridge.h5", np);
  snprintf(logistic, sizeof logistic, "data_rt_np%d_logistic.h5", np);
  snprintf(big, sizeof big, "data_rt_np%d_big.h5", np);
  snprintf(idx, sizeof idx, "data_rt_np%d_idx.h5", np);
  snprintf(img, sizeof img, "data_rt_np%d_img.idx", np);
  snprintf(lab, sizeof lab, "data_rt_np%d_lab.idx", np);
  snprintf(timg, sizeof timg, "data_rt_np%d_timg.idx", np);
  snprintf(tlab, sizeof tlab, "data_rt_np%d_tlab.idx", np);

  /* Ridge with uneven split sizes (37, 11, 5 do not divide by 2 or 4) and a test split. */
  nhgd_synth_options so;
  nhgd_synth_options_default(&so);
  snprintf(so.output, sizeof so.output, "%s", ridge);
  so.n_train = 37;
  so.n_val = 11;
  so.n_test = 5;
  so.features = 7;
  so.noise = 0.3;
  so.seed = 3;
  shared_status(rank == 0 ? nhgd_data_synth(&so) : 0, "synth ridge");
  check_file(ridge, 0, 0, 1);

  /* Logistic without a test split. */
  snprintf(so.kind, sizeof so.kind, "logistic");
  snprintf(so.output, sizeof so.output, "%s", logistic);
  so.n_train = 50;
  so.n_val = 9;
  so.n_test = 0;
  so.features = 6;
  so.classes = 4;
  shared_status(rank == 0 ? nhgd_data_synth(&so) : 0, "synth logistic");
  check_file(logistic, 1, 4, 0);

  /* Larger: several chunks per rank. */
  nhgd_synth_options_default(&so);
  snprintf(so.output, sizeof so.output, "%s", big);
  so.n_train = 20003;
  so.n_val = 1001;
  so.n_test = 999;
  so.features = 33;
  shared_status(rank == 0 ? nhgd_data_synth(&so) : 0, "synth big");
  check_file(big, 0, 0, 1);

  /* float32 features (IDX import): 21 images of 3 x 2 pixels in 3 classes plus 6 test images. */
  int rc = 0;
  if (rank == 0) {
    uint8_t pix[21 * 6], labels[21], tpix[6 * 6], tlabels[6];
    for (int i = 0; i < 21 * 6; ++i)
      pix[i] = (uint8_t)(i * 7 % 256);
    for (int i = 0; i < 21; ++i)
      labels[i] = (uint8_t)(i % 3);
    for (int i = 0; i < 6 * 6; ++i)
      tpix[i] = (uint8_t)(i * 11 % 256);
    for (int i = 0; i < 6; ++i)
      tlabels[i] = (uint8_t)(i % 3);
    const uint32_t d3[3] = {21, 3, 2}, d1[1] = {21}, t3[3] = {6, 3, 2}, t1[1] = {6};
    rc |= tu_write_idx(img, 0, 0x803, 3, d3, pix, sizeof pix);
    rc |= tu_write_idx(lab, 1, 0x801, 1, d1, labels, sizeof labels);
    rc |= tu_write_idx(timg, 1, 0x803, 3, t3, tpix, sizeof tpix);
    rc |= tu_write_idx(tlab, 0, 0x801, 1, t1, tlabels, sizeof tlabels);
    nhgd_import_idx_options io;
    nhgd_import_idx_options_default(&io);
    snprintf(io.images, sizeof io.images, "%s", img);
    snprintf(io.labels, sizeof io.labels, "%s", lab);
    snprintf(io.test_images, sizeof io.test_images, "%s", timg);
    snprintf(io.test_labels, sizeof io.test_labels, "%s", tlab);
    snprintf(io.output, sizeof io.output, "%s", idx);
    io.val_fraction = 0.3;
    if (!rc) rc = nhgd_data_import_idx(&io);
  }
  shared_status(rc, "import-idx");
  check_file(idx, 1, 3, 1);

  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const char *files[] = {ridge, logistic, big, idx, img, lab, timg, tlab};
    for (size_t i = 0; i < sizeof files / sizeof *files; ++i)
      remove(files[i]);
    printf("round trip at %d rank(s): OK\n", size);
  }
  MPI_Finalize();
  return 0;
}
