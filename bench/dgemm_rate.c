/* DGEMM rate of every rank running at once: the reference the EFIM kernels are measured
 * against. usage: mpirun -n P dgemm_rate M N K [repeats]; prints the median GFLOP/s per rank
 * (the slowest rank's median). */
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc < 4) {
    if (rank == 0) fprintf(stderr, "usage: dgemm_rate M N K [repeats]\n");
    MPI_Finalize();
    return 2;
  }
  const int m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
  const int reps = argc > 4 ? atoi(argv[4]) : 5;
  double *a = malloc(sizeof(double) * m * k), *b = malloc(sizeof(double) * n * k);
  double *c = calloc((size_t)m * n, sizeof(double)), *t = malloc(sizeof(double) * reps);
  for (long i = 0; i < (long)m * k; ++i)
    a[i] = 1.0 / (1 + i % 13);
  for (long i = 0; i < (long)n * k; ++i)
    b[i] = 1.0 / (1 + i % 7);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, a, m, b, n, 1.0, c, m);
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, a, m, b, n, 1.0, c, m);
    t[r] = MPI_Wtime() - t0;
  }
  qsort(t, reps, sizeof(double), cmp);
  double rate = 2.0 * m * (double)n * k / t[reps / 2] / 1e9, slowest;
  MPI_Reduce(&rate, &slowest, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
  if (rank == 0) printf("%.3f\n", slowest);
  free(a), free(b), free(c), free(t);
  MPI_Finalize();
  return 0;
}
