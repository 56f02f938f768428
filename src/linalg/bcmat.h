/* The one module that knows the block-cyclic layout: BLACS grid, descriptors, index maps
 * between global and local entries, and the ScaLAPACK factorisation and solve. */
#ifndef NHGD_LINALG_BCMAT_H
#define NHGD_LINALG_BCMAT_H

#include <mpi.h>
#include <stdint.h>

/* A 2-D BLACS process grid over all ranks of comm (row-major rank order). */
typedef struct nhgd_grid {
  MPI_Comm comm; /* the communicator the grid was made from (not owned) */
  int ctxt, blacs_handle;
  int nprow, npcol, myrow, mycol;
} nhgd_grid;

/* Collective. nprow = 0 chooses the largest divisor of P not above sqrt(P); otherwise
 * nprow must divide P. */
int nhgd_grid_create(MPI_Comm comm, int nprow, nhgd_grid **out);
/* Collective; NULL-safe. */
void nhgd_grid_destroy(nhgd_grid **g);

/* A square n x n matrix distributed block-cyclically with square nb x nb blocks. */
typedef struct nhgd_bcmat {
  const nhgd_grid *grid;
  int n, nb;
  int mloc, nloc, lld; /* local rows, columns, leading dimension */
  int desc[9];
  double *a;     /* column-major mloc x nloc, a[il + jl*lld] */
  int64_t *grow; /* global row of each local row (increasing) */
  int64_t *gcol; /* global column of each local column (increasing) */
} nhgd_bcmat;

/* Block size used when the user gives 0: 64, smaller for small n so that every rank gets
 * some blocks. */
int nhgd_bcmat_auto_block(int n, const nhgd_grid *g);

/* Collective over the grid. Allocates the local part (zeroed). */
int nhgd_bcmat_create(const nhgd_grid *g, int n, int nb, nhgd_bcmat **out);
void nhgd_bcmat_destroy(nhgd_bcmat **A);
/* Bytes of the local part on the busiest rank for (n, nb) on grid g. */
int64_t nhgd_bcmat_local_bytes(int n, int nb, int nprow, int npcol);

void nhgd_bcmat_zero(nhgd_bcmat *A);
/* A += diag(dg) with dg replicated (n entries). Not collective. */
void nhgd_bcmat_add_diag(nhgd_bcmat *A, const double *dg);
/* A += alpha Z Z^T for Z (n x k, ld n) replicated on every rank: each rank updates its own
 * entries with one DGEMM (BLAS-3). Only the lower triangle's blocks are touched when
 * lower_only is set (what a Cholesky with uplo = 'L' reads). Not collective. */
int nhgd_bcmat_add_gram(nhgd_bcmat *A, const double *Z, int k, double alpha, int lower_only);
/* A += alpha sum_s (x_s x_s^T) (x) A_s for n = m*C with global index j + c*m (a column-major
 * m x C matrix flattened): X (m x k) and Acc (C*C x k, each column a column-major C x C
 * matrix) replicated. Each rank forms only its own entries, class block by class block, with
 * one DGEMM each: 2 n^2 k flops in all instead of the 2 n^2 k C of the factored form.
 * lower_only skips the class blocks above the diagonal. Not collective. */
int nhgd_bcmat_add_kron(nhgd_bcmat *A, int m, int C, const double *X, const double *Acc, int k,
                        double alpha, int lower_only);
/* Collective: Y = A X for X (n x k, ld n) replicated on every rank; Y (n x k, ld n) comes
 * out replicated (one MPI_Allreduce of n k doubles). work holds at least
 * (local rows + local columns) * k doubles: nhgd_bcmat_apply_work(A, k). */
int nhgd_bcmat_apply(const nhgd_bcmat *A, const double *X, int k, double *Y, double *work);
size_t nhgd_bcmat_apply_work(const nhgd_bcmat *A, int k);
/* The same for one vector (k = 1, by a matrix-vector product). */
int nhgd_bcmat_apply_vector(const nhgd_bcmat *A, const double *x, double *y, double *work);

/* Not collective: fill this rank's entries. fill receives the global indices of the local
 * rows (mloc of them) and columns (nloc) and writes entry (i, j) at a[i + j * lld]. */
typedef int (*nhgd_bcmat_fill_fn)(void *arg, int mloc, const int64_t *rows, int nloc,
                                  const int64_t *cols, double *a, int lld);
int nhgd_bcmat_fill(nhgd_bcmat *A, nhgd_bcmat_fill_fn fill, void *arg);

/* dst = alpha src for two matrices of the same size, block size and grid. Not collective. */
void nhgd_bcmat_copy_scaled(nhgd_bcmat *dst, const nhgd_bcmat *src, double alpha);
/* Collective: the diagonal of A (n entries, replicated). */
int nhgd_bcmat_diag(const nhgd_bcmat *A, double *diag);

/* Collective: Cholesky A = L L^T in place (lower). A non-positive-definite matrix is an
 * NHGD_ERR_NUMERIC error naming the failing leading minor. */
int nhgd_bcmat_cholesky(nhgd_bcmat *A);
/* Collective: solve A x = b with the Cholesky factor; b and x replicated (n entries, may
 * alias). */
int nhgd_bcmat_solve(nhgd_bcmat *A, const double *b, double *x);
/* Collective: the eigen-decomposition A = V diag(w) V^T of a symmetric A (lower triangle
 * read, A destroyed) by pdsyevd: V the same size, block size and grid, w (n, ascending)
 * replicated. */
int nhgd_bcmat_eigen(nhgd_bcmat *A, nhgd_bcmat *V, double *w);
/* Collective: Y = V^T X for X (n x k, ld n) replicated; Y (n x k, ld n) comes out replicated
 * (one MPI_Allreduce of n k doubles). work: nhgd_bcmat_apply_work(V, k) doubles. */
int nhgd_bcmat_tmul(const nhgd_bcmat *V, const double *X, int k, double *Y, double *work);
/* Not collective: Y += this rank's part of V W for W (n x k, ld n) replicated: the rows of
 * its blocks times W's rows of its columns. The sum over the ranks of Y is V W. */
void nhgd_bcmat_mul_part(const nhgd_bcmat *V, const double *W, int k, double *Y, double *work);

/* Collective: gather the whole matrix to rank 0 of the grid (for tests and small n).
 * full (n x n column-major) is written on rank 0 only; others may pass NULL. */
int nhgd_bcmat_gather(const nhgd_bcmat *A, double *full);

/* This rank's blocks as at most two regular patterns per dimension (full blocks, then a
 * trailing partial one): the slabs are the global rows and columns it owns, first index
 * start, then count blocks of size block, stride apart. What a file writer needs to read or
 * write the local part in one selection, without knowing the layout. Returns nrows * ncols
 * (0 on a rank that owns nothing). Not collective. */
typedef struct nhgd_bcmat_slab {
  int64_t start, stride, count, block;
} nhgd_bcmat_slab;
int nhgd_bcmat_local_slabs(const nhgd_bcmat *A, nhgd_bcmat_slab rows[2], int *nrows,
                           nhgd_bcmat_slab cols[2], int *ncols);

#endif
