/* Time of the collectives the solver uses, every rank at once, for message sizes from 8 bytes
 * to 32 MiB: the measurements the communication part of the scaling model is fitted to.
 * usage: mpirun -n P comm_rate [repeats]; prints CSV lines "op,ranks,bytes,seconds" (the
 * slowest rank's median), bytes = the payload one rank receives:
 *   allreduce  n doubles summed in place (what inner SGD and the online route do)
 *   allgather  n doubles in all from P equal parts (what the per-sample gradients do) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median over reps of one collective on n doubles, the slowest rank's. */
static double time_op(int op, double *buf, double *out, int n, int P, int reps, double *t) {
  const int part = n / P > 0 ? n / P : 1;
  for (int r = 0; r <= reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    if (op == 0)
      MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    else
      MPI_Allgather(buf, part, MPI_DOUBLE, out, part, MPI_DOUBLE, MPI_COMM_WORLD);
    if (r > 0) t[r - 1] = MPI_Wtime() - t0; /* the first call is a warm-up */
  }
  qsort(t, (size_t)reps, sizeof(double), cmp);
  double med = t[reps / 2], worst;
  MPI_Allreduce(&med, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const int reps = argc > 1 ? atoi(argv[1]) : 9;
  const int nmax = 1 << 22;
  double *buf = calloc((size_t)nmax, sizeof(double)),
         *out = calloc((size_t)nmax + P, sizeof(double));
  double *t = malloc(sizeof(double) * (size_t)(reps > 0 ? reps : 1));
  if (!buf || !out || !t || reps < 1) {
    if (rank == 0) fprintf(stderr, "comm_rate: out of memory or repeats < 1\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0) printf("op,ranks,bytes,seconds\n");
  for (int n = 1; n <= nmax; n *= 4) {
    for (int op = 0; op < 2; ++op) {
      const int r = n >= (1 << 20) ? (reps + 2) / 3 : reps; /* fewer repeats of big messages */
      double s = time_op(op, buf, out, n, P, r, t);
      const int part = n / P > 0 ? n / P : 1;
      const double bytes = 8.0 * (op == 0 ? n : (double)part * P);
      if (rank == 0) printf("%s,%d,%.0f,%.9f\n", op == 0 ? "allreduce" : "allgather", P, bytes, s);
    }
  }
  free(buf), free(out), free(t);
  MPI_Finalize();
  return 0;
}
