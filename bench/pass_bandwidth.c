/* How close hyperclean's full cross pass (one GEMM of [W U] per block of training rows, each
 * block of X read once) comes to the memory bandwidth, every rank at once: (a) a STREAM-style
 * copy c[i] = a[i] of two large arrays per rank, best of the repeats, rate = bytes read and
 * written / time; (b) pb->ops.cross of a hyperclean problem on synthetic data (784 features,
 * 10 classes, ROWS training rows split over the ranks like the data layer), median of the
 * repeats, rate = bytes of X read / time. Times are the slowest rank's, bytes summed over the
 * ranks.
 * usage: mpirun -n P pass_bandwidth ROWS [repeats] [copy MiB per array and rank]
 * (defaults 5 repeats, 1024 MiB); prints one "name value" line per field on rank 0. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nhgd/nhgd.h"

enum { FEATURES = 784, CLASSES = 10 };

/* The copy's target escapes through it, so that the compiler keeps every store. */
static double *volatile copy_sink;

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Every rank's seconds of one repetition: the slowest rank's, on every rank. */
static double slowest(double t) {
  double s;
  MPI_Allreduce(&t, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return s;
}

/* Values in [-1, 1) from a xorshift generator: the pass's speed does not depend on them. */
static double next_value(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return (double)(*x >> 11) * 0x1.0p-52 - 1.0;
}

static void die(int rank, const char *what) {
  if (rank == 0) fprintf(stderr, "pass_bandwidth: %s: %s\n", what, nhgd_error_message());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const long long rows = argc > 1 ? atoll(argv[1]) : 0;
  const int reps = argc > 2 ? atoi(argv[2]) : 5;
  const double copy_mib = argc > 3 ? atof(argv[3]) : 1024.0;
  if (rows < P || reps < 1 || !(copy_mib > 0)) {
    if (rank == 0)
      fprintf(stderr, "usage: pass_bandwidth ROWS [repeats] [copy MiB per array and rank]\n"
                      "(ROWS >= ranks, repeats >= 1, MiB > 0)\n");
    MPI_Finalize();
    return 2;
  }
  double *t = malloc(sizeof(double) * (size_t)reps);

  /* (a) copy */
  const size_t nc = (size_t)(copy_mib * 1048576.0 / sizeof(double));
  double *a = malloc(nc * sizeof(double)), *c = malloc(nc * sizeof(double));
  if (!t || !a || !c) die(rank, "out of memory for the copy arrays");
  for (size_t i = 0; i < nc; ++i)
    a[i] = 1.0 + (double)(i & 1023), c[i] = 0.0; /* touched before any timing */
  double copy_best = 0.0;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (size_t i = 0; i < nc; ++i)
      c[i] = a[i];
    t[r] = slowest(MPI_Wtime() - t0);
    copy_best = r == 0 || t[r] < copy_best ? t[r] : copy_best;
  }
  copy_sink = c;
  free(a), free(c);
  const double copy_rate = 2.0 * sizeof(double) * (double)nc * P / copy_best;

  /* (b) the cross pass of hyperclean on this rank's share of the rows */
  nhgd_data data;
  memset(&data, 0, sizeof data);
  data.comm = MPI_COMM_WORLD;
  data.rank = rank, data.size = P;
  data.task = NHGD_TASK_CLASSIFICATION;
  data.n_classes = CLASSES, data.m = FEATURES;
  int64_t lo, n;
  nhgd_partition(rows, P, rank, &lo, &n);
  nhgd_split *tr = &data.train;
  tr->n_global = rows, tr->lo = lo, tr->n_local = (int)n, tr->m = FEATURES;
  tr->X = malloc(sizeof(double) * (size_t)n * FEATURES);
  tr->y_class = malloc(sizeof(int32_t) * (size_t)n);
  data.val.m = data.test.m = FEATURES;
  const int64_t d = (int64_t)FEATURES * CLASSES;
  double *theta = malloc(sizeof(double) * (size_t)d), *u = malloc(sizeof(double) * (size_t)d);
  double *v = calloc((size_t)n, sizeof(double)), *out = malloc(sizeof(double) * (size_t)n);
  if (!tr->X || !tr->y_class || !theta || !u || !v || !out) die(rank, "out of memory for the data");
  uint64_t x = 0x9e3779b97f4a7c15ULL + (uint64_t)lo;
  for (size_t i = 0; i < (size_t)n * FEATURES; ++i)
    tr->X[i] = next_value(&x);
  for (int64_t i = 0; i < n; ++i)
    tr->y_class[i] = (int32_t)((lo + i) % CLASSES);
  for (int64_t j = 0; j < d; ++j)
    theta[j] = 0.05 * next_value(&x), u[j] = next_value(&x);
  nhgd_problem *pb = NULL;
  if (nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create("hyperclean", &data, NULL, &pb)))
    die(rank, "problem");
  /* A first call sizes the problem's scratch; then the timed ones. */
  if (nhgd_error_agree(MPI_COMM_WORLD, pb->ops.cross(pb, theta, v, u, out))) die(rank, "cross");
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    int rc = pb->ops.cross(pb, theta, v, u, out);
    t[r] = slowest(MPI_Wtime() - t0);
    if (nhgd_error_agree(MPI_COMM_WORLD, rc)) die(rank, "cross");
  }
  qsort(t, (size_t)reps, sizeof(double), cmp);
  const double pass = t[reps / 2];
  const double x_bytes = sizeof(double) * (double)rows * FEATURES;
  const double pass_rate = x_bytes / pass;
  const double flops = 2.0 * (double)rows * FEATURES * 2 * CLASSES; /* the fused GEMM */

  if (rank == 0) {
    printf("ranks %d\n", P);
    printf("rows %lld\n", rows);
    printf("features %d\n", FEATURES);
    printf("classes %d\n", CLASSES);
    printf("repeats %d\n", reps);
    printf("x_mib_per_rank %.1f\n", x_bytes / P / 1048576.0);
    printf("copy_mib_per_array %.1f\n", sizeof(double) * (double)nc / 1048576.0);
    printf("copy_gb_per_s %.3f\n", copy_rate / 1e9);
    printf("pass_seconds %.6f\n", pass);
    printf("pass_gb_per_s %.3f\n", pass_rate / 1e9);
    printf("pass_gflop_per_s %.3f\n", flops / pass / 1e9);
    printf("fraction_of_copy %.3f\n", pass_rate / copy_rate);
  }
  nhgd_problem_destroy(&pb);
  free(tr->X), free(tr->y_class), free(theta), free(u), free(v), free(out), free(t);
  MPI_Finalize();
  return 0;
}
