/* Block-cyclic matrices on a BLACS grid: layout, BLAS-3 updates, ScaLAPACK Cholesky. */
#include "linalg/bcmat.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "linalg/scalapack.h"

int nhgd_grid_create(MPI_Comm comm, int nprow, nhgd_grid **out) {
  *out = NULL;
  int P;
  MPI_Comm_size(comm, &P);
  if (nprow <= 0) {
    nprow = 1;
    for (int r = 1; r * r <= P; ++r)
      if (P % r == 0) nprow = r;
  } else if (P % nprow != 0) {
    NHGD_FAIL(NHGD_ERR_ARG, "option --grid-rows: %d does not divide the number of ranks %d", nprow,
              P);
  }
  nhgd_grid *g;
  NHGD_CHECK(nhgd_calloc(&g, 1, sizeof *g, "process grid"));
  g->comm = comm;
  g->nprow = nprow;
  g->npcol = P / nprow;
  g->blacs_handle = Csys2blacs_handle(comm);
  g->ctxt = g->blacs_handle;
  Cblacs_gridinit(&g->ctxt, "Row", g->nprow, g->npcol);
  int pr, pc;
  Cblacs_gridinfo(g->ctxt, &pr, &pc, &g->myrow, &g->mycol);
  if (pr != g->nprow || pc != g->npcol) {
    nhgd_free(&g);
    NHGD_FAIL(NHGD_ERR_SCALAPACK, "BLACS could not create a %d x %d grid", nprow, P / nprow);
  }
  *out = g;
  return NHGD_OK;
}

void nhgd_grid_destroy(nhgd_grid **g) {
  if (!g || !*g) return;
  Cblacs_gridexit((*g)->ctxt);
  Cfree_blacs_system_handle((*g)->blacs_handle);
  nhgd_free(g);
}

int nhgd_bcmat_auto_block(int n, const nhgd_grid *g) {
  int pmax = g->nprow > g->npcol ? g->nprow : g->npcol;
  int nb = (n + 2 * pmax - 1) / (2 * pmax); /* at least two blocks per process row/column */
  if (nb > 64) nb = 64;
  if (nb < 8) nb = 8;
  return nb;
}

static int numroc(int n, int nb, int iproc, int nprocs) {
  int zero = 0;
  return numroc_(&n, &nb, &iproc, &zero, &nprocs);
}

int64_t nhgd_bcmat_local_bytes(int n, int nb, int nprow, int npcol) {
  /* Process (0, 0) always holds the most blocks. */
  return (int64_t)numroc(n, nb, 0, nprow) * numroc(n, nb, 0, npcol) * (int64_t)sizeof(double);
}

int nhgd_bcmat_create(const nhgd_grid *g, int n, int nb, nhgd_bcmat **out) {
  *out = NULL;
  if (n < 1 || nb < 1) NHGD_FAIL(NHGD_ERR_ARG, "block-cyclic matrix: n = %d, nb = %d", n, nb);
  nhgd_bcmat *A;
  int rc;
  NHGD_CHECK(nhgd_calloc(&A, 1, sizeof *A, "block-cyclic matrix"));
  A->grid = g;
  A->n = n;
  A->nb = nb;
  A->mloc = numroc(n, nb, g->myrow, g->nprow);
  A->nloc = numroc(n, nb, g->mycol, g->npcol);
  A->lld = A->mloc > 1 ? A->mloc : 1;
  int zero = 0, info = 0;
  descinit_(A->desc, &n, &n, &nb, &nb, &zero, &zero, &g->ctxt, &A->lld, &info);
  if (info) NHGD_RAISE(rc, fail, NHGD_ERR_SCALAPACK, "descinit failed with INFO = %d", info);
  NHGD_TRY(rc,
           nhgd_calloc(&A->a, (size_t)A->lld * (size_t)(A->nloc > 0 ? A->nloc : 1), sizeof(double),
                       "local part of the block-cyclic matrix"),
           fail);
  NHGD_TRY(rc, nhgd_calloc(&A->grow, (size_t)A->mloc, sizeof(int64_t), "row map"), fail);
  NHGD_TRY(rc, nhgd_calloc(&A->gcol, (size_t)A->nloc, sizeof(int64_t), "column map"), fail);
  for (int il = 0; il < A->mloc; ++il)
    A->grow[il] = ((int64_t)(il / nb) * g->nprow + g->myrow) * nb + il % nb;
  for (int jl = 0; jl < A->nloc; ++jl)
    A->gcol[jl] = ((int64_t)(jl / nb) * g->npcol + g->mycol) * nb + jl % nb;
  *out = A;
  return NHGD_OK;
fail:
  nhgd_bcmat_destroy(&A);
  return rc;
}

void nhgd_bcmat_destroy(nhgd_bcmat **A) {
  if (!A || !*A) return;
  nhgd_free(&(*A)->a);
  nhgd_free(&(*A)->grow);
  nhgd_free(&(*A)->gcol);
  nhgd_free(A);
}

void nhgd_bcmat_zero(nhgd_bcmat *A) {
  memset(A->a, 0, (size_t)A->lld * (size_t)A->nloc * sizeof(double));
}

size_t nhgd_bcmat_apply_work(const nhgd_bcmat *A, int k) {
  return (size_t)(A->mloc + A->nloc) * (size_t)(k > 0 ? k : 1);
}

static int apply(const nhgd_bcmat *A, const double *X, int k, double *Y, double *work, int gemv) {
  const size_t n = (size_t)A->n;
  double *Xc = work, *Yr = work + (size_t)A->nloc * k; /* local columns of X, rows of Y */
  for (int c = 0; c < k; ++c)
    for (int jl = 0; jl < A->nloc; ++jl)
      Xc[jl + (size_t)c * A->nloc] = X[A->gcol[jl] + c * n];
  memset(Y, 0, n * (size_t)k * sizeof(double));
  if (A->mloc > 0 && A->nloc > 0) {
    /* This rank's share of its rows of A X, written straight into place: the sum over ranks
     * adds the column blocks of each process row. */
    if (gemv)
      cblas_dgemv(CblasColMajor, CblasNoTrans, A->mloc, A->nloc, 1.0, A->a, A->lld, Xc, 1, 0.0, Yr,
                  1);
    else
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, A->mloc, k, A->nloc, 1.0, A->a, A->lld,
                  Xc, A->nloc, 0.0, Yr, A->mloc);
    for (int c = 0; c < k; ++c)
      for (int il = 0; il < A->mloc; ++il)
        Y[A->grow[il] + c * n] = Yr[il + (size_t)c * A->mloc];
  }
  NHGD_MPI_CHECK(
      MPI_Allreduce(MPI_IN_PLACE, Y, (int)(n * (size_t)k), MPI_DOUBLE, MPI_SUM, A->grid->comm));
  return NHGD_OK;
}

int nhgd_bcmat_apply(const nhgd_bcmat *A, const double *X, int k, double *Y, double *work) {
  return apply(A, X, k, Y, work, 0);
}

int nhgd_bcmat_apply_vector(const nhgd_bcmat *A, const double *x, double *y, double *work) {
  return apply(A, x, 1, y, work, 1);
}

int nhgd_bcmat_fill(nhgd_bcmat *A, nhgd_bcmat_fill_fn fill, void *arg) {
  if (A->mloc == 0 || A->nloc == 0) return NHGD_OK;
  return fill(arg, A->mloc, A->grow, A->nloc, A->gcol, A->a, A->lld);
}

int nhgd_bcmat_eigen(nhgd_bcmat *A, nhgd_bcmat *V, double *w) {
  int one = 1, info = 0, lwork = -1, liwork = -1, iq = 0;
  double q = 0.0;
  pdsyevd_("V", "L", &A->n, A->a, &one, &one, A->desc, w, V->a, &one, &one, V->desc, &q, &lwork,
           &iq, &liwork, &info, 1, 1);
  if (info) NHGD_FAIL(NHGD_ERR_SCALAPACK, "pdsyevd (workspace query): INFO = %d", info);
  /* The documented minimum (PDSYEVD's LWORK and LIWORK) where the query returns less: it
   * does for small matrices, and pdormtr inside then stops on an illegal LWORK. */
  const nhgd_grid *g = A->grid;
  const int np = numroc(A->n, A->nb, g->myrow, g->nprow),
            nq = numroc(A->n, A->nb, g->mycol, g->npcol);
  const int tri = 3 * A->n + (A->nb * (np + 1) > 3 * A->nb ? A->nb * (np + 1) : 3 * A->nb);
  const int need = (1 + 6 * A->n + 2 * np * nq > tri ? 1 + 6 * A->n + 2 * np * nq : tri) + 2 * A->n;
  lwork = (int)q + 1 > need ? (int)q + 1 : need;
  liwork = iq > 7 * A->n + 8 * g->npcol + 2 ? iq : 7 * A->n + 8 * g->npcol + 2;
  double *work = NULL;
  int *iwork = NULL, rc = NHGD_OK;
  NHGD_TRY(rc, nhgd_calloc(&work, (size_t)lwork, sizeof(double), "pdsyevd workspace"), done_alloc);
  NHGD_TRY(rc, nhgd_calloc(&iwork, (size_t)liwork, sizeof(int), "pdsyevd workspace"), done_alloc);
done_alloc:;
  /* Every rank of the grid enters pdsyevd, or none does. */
  int bad = rc != NHGD_OK;
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, A->grid->comm);
  if (bad) {
    if (!rc)
      rc = nhgd_error_set(NHGD_ERR_MEM, __FILE__, __LINE__,
                          "pdsyevd: another rank could not allocate its workspace");
    goto done;
  }
  pdsyevd_("V", "L", &A->n, A->a, &one, &one, A->desc, w, V->a, &one, &one, V->desc, work, &lwork,
           iwork, &liwork, &info, 1, 1);
  if (info > 0)
    NHGD_RAISE(rc, done, NHGD_ERR_NUMERIC,
               "the eigen-decomposition of a %d x %d matrix did not converge (pdsyevd INFO = %d)",
               A->n, A->n, info);
  if (info < 0) NHGD_RAISE(rc, done, NHGD_ERR_SCALAPACK, "pdsyevd: argument error INFO = %d", info);
done:
  nhgd_free(&work);
  nhgd_free(&iwork);
  return rc;
}

int nhgd_bcmat_tmul(const nhgd_bcmat *V, const double *X, int k, double *Y, double *work) {
  /* The local rows of X (mloc x k), then V_loc^T times them (nloc x k), scattered to the
   * global rows of the local columns. */
  double *xl = work, *yl = work + (size_t)V->mloc * k;
  for (int c = 0; c < k; ++c)
    for (int il = 0; il < V->mloc; ++il)
      xl[il + (size_t)c * V->mloc] = X[V->grow[il] + (size_t)c * V->n];
  memset(Y, 0, (size_t)V->n * k * sizeof(double));
  if (V->mloc > 0 && V->nloc > 0) {
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, V->nloc, k, V->mloc, 1.0, V->a, V->lld, xl,
                V->mloc, 0.0, yl, V->nloc);
    for (int c = 0; c < k; ++c)
      for (int jl = 0; jl < V->nloc; ++jl)
        Y[V->gcol[jl] + (size_t)c * V->n] = yl[jl + (size_t)c * V->nloc];
  }
  NHGD_MPI_CHECK(
      MPI_Allreduce(MPI_IN_PLACE, Y, (int)((int64_t)V->n * k), MPI_DOUBLE, MPI_SUM, V->grid->comm));
  return NHGD_OK;
}

void nhgd_bcmat_mul_part(const nhgd_bcmat *V, const double *W, int k, double *Y, double *work) {
  if (V->mloc == 0 || V->nloc == 0) return;
  double *wl = work, *yl = work + (size_t)V->nloc * k;
  for (int c = 0; c < k; ++c)
    for (int jl = 0; jl < V->nloc; ++jl)
      wl[jl + (size_t)c * V->nloc] = W[V->gcol[jl] + (size_t)c * V->n];
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, V->mloc, k, V->nloc, 1.0, V->a, V->lld, wl,
              V->nloc, 0.0, yl, V->mloc);
  for (int c = 0; c < k; ++c)
    for (int il = 0; il < V->mloc; ++il)
      Y[V->grow[il] + (size_t)c * V->n] += yl[il + (size_t)c * V->mloc];
}

void nhgd_bcmat_copy_scaled(nhgd_bcmat *dst, const nhgd_bcmat *src, double alpha) {
  for (int jl = 0; jl < src->nloc; ++jl)
    for (int il = 0; il < src->mloc; ++il)
      dst->a[il + (size_t)jl * dst->lld] = alpha * src->a[il + (size_t)jl * src->lld];
}

int nhgd_bcmat_diag(const nhgd_bcmat *A, double *diag) {
  memset(diag, 0, (size_t)A->n * sizeof(double));
  /* Local rows and columns are increasing in their global index: merge the two lists. */
  for (int il = 0, jl = 0; il < A->mloc && jl < A->nloc;) {
    if (A->grow[il] < A->gcol[jl]) {
      ++il;
    } else if (A->grow[il] > A->gcol[jl]) {
      ++jl;
    } else {
      diag[A->grow[il]] = A->a[il + (size_t)jl * A->lld];
      ++il;
      ++jl;
    }
  }
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, diag, A->n, MPI_DOUBLE, MPI_SUM, A->grid->comm));
  return NHGD_OK;
}

void nhgd_bcmat_add_diag(nhgd_bcmat *A, const double *dg) {
  /* Local rows and columns are increasing in their global index: merge the two lists. */
  int il = 0, jl = 0;
  while (il < A->mloc && jl < A->nloc) {
    if (A->grow[il] < A->gcol[jl]) {
      ++il;
    } else if (A->grow[il] > A->gcol[jl]) {
      ++jl;
    } else {
      A->a[il + (size_t)jl * A->lld] += dg[A->grow[il]];
      ++il;
      ++jl;
    }
  }
}

/* Columns per DGEMM of the lower-only update. */
#define NHGD_GRAM_PANEL 256

int nhgd_bcmat_add_gram(nhgd_bcmat *A, const double *Z, int k, double alpha, int lower_only) {
  if (A->mloc == 0 || A->nloc == 0 || k == 0) return NHGD_OK;
  double *Zr, *Zc;
  int rc;
  NHGD_CHECK(nhgd_calloc(&Zr, (size_t)A->mloc * (size_t)k, sizeof(double), "gram rows"));
  NHGD_TRY(rc, nhgd_calloc(&Zc, (size_t)A->nloc * (size_t)k, sizeof(double), "gram columns"), done);
  for (int c = 0; c < k; ++c) {
    const double *z = Z + (size_t)c * A->n;
    double *zr = Zr + (size_t)c * A->mloc, *zc = Zc + (size_t)c * A->nloc;
    for (int il = 0; il < A->mloc; ++il)
      zr[il] = z[A->grow[il]];
    for (int jl = 0; jl < A->nloc; ++jl)
      zc[jl] = z[A->gcol[jl]];
  }
  if (!lower_only) {
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, A->mloc, A->nloc, k, alpha, Zr, A->mloc,
                Zc, A->nloc, 1.0, A->a, A->lld);
  } else {
    /* One DGEMM per panel of local columns, over the local rows at or below the panel's
     * first global column: about half the flops, and what a Cholesky with uplo = 'L' reads.
     * Panels of several blocks keep the DGEMMs wide; the few upper entries they also touch
     * cost a few per cent. */
    const int panel = A->nb * (NHGD_GRAM_PANEL / A->nb > 1 ? NHGD_GRAM_PANEL / A->nb : 1);
    int il0 = 0;
    for (int j0 = 0; j0 < A->nloc; j0 += panel) {
      int nj = A->nloc - j0 < panel ? A->nloc - j0 : panel;
      while (il0 < A->mloc && A->grow[il0] < A->gcol[j0])
        ++il0;
      if (il0 == A->mloc) break;
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, A->mloc - il0, nj, k, alpha, Zr + il0,
                  A->mloc, Zc + j0, A->nloc, 1.0, A->a + il0 + (size_t)j0 * A->lld, A->lld);
    }
  }
  nhgd_free(&Zc);
done:
  nhgd_free(&Zr);
  return rc;
}

/* Local index ranges of each class: global indices j + c*m are increasing in the local
 * order, so class c occupies the contiguous local range [first[c], first[c+1]). */
static void class_ranges(const int64_t *g, int nl, int m, int C, int *first) {
  int l = 0;
  for (int c = 0; c <= C; ++c) {
    while (l < nl && g[l] < (int64_t)c * m)
      ++l;
    first[c] = l;
  }
}

int nhgd_bcmat_add_kron(nhgd_bcmat *A, int m, int C, const double *X, const double *Acc, int k,
                        double alpha, int lower_only) {
  if ((int64_t)m * C != A->n)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "Kronecker update: m*C = %d*%d is not n = %d", m, C, A->n);
  if (A->mloc == 0 || A->nloc == 0 || k == 0) return NHGD_OK;
  int rc = NHGD_OK;
  int *rfirst = NULL, *cfirst = NULL;
  double *Xr = NULL, *Xc = NULL, *T = NULL;
  NHGD_TRY(rc, nhgd_calloc(&rfirst, (size_t)C + 1, sizeof(int), "class ranges"), done);
  NHGD_TRY(rc, nhgd_calloc(&cfirst, (size_t)C + 1, sizeof(int), "class ranges"), done);
  NHGD_TRY(rc, nhgd_calloc(&Xr, (size_t)A->mloc * k, sizeof(double), "Kronecker rows"), done);
  NHGD_TRY(rc, nhgd_calloc(&Xc, (size_t)A->nloc * k, sizeof(double), "Kronecker columns"), done);
  NHGD_TRY(rc, nhgd_calloc(&T, (size_t)A->nloc * k, sizeof(double), "Kronecker scaled"), done);
  class_ranges(A->grow, A->mloc, m, C, rfirst);
  class_ranges(A->gcol, A->nloc, m, C, cfirst);
  for (int s = 0; s < k; ++s) {
    const double *x = X + (size_t)s * m;
    for (int il = 0; il < A->mloc; ++il)
      Xr[il + (size_t)s * A->mloc] = x[A->grow[il] % m];
    for (int jl = 0; jl < A->nloc; ++jl)
      Xc[jl + (size_t)s * A->nloc] = x[A->gcol[jl] % m];
  }
  for (int c2 = 0; c2 < C; ++c2) {
    int q0 = cfirst[c2], nq = cfirst[c2 + 1] - q0;
    if (nq == 0) continue;
    for (int c1 = lower_only ? c2 : 0; c1 < C; ++c1) {
      int r0 = rfirst[c1], nr = rfirst[c1 + 1] - r0;
      if (nr == 0) continue;
      for (int s = 0; s < k; ++s) {
        const double a = Acc[c1 + (size_t)c2 * C + (size_t)s * C * C];
        const double *xc = Xc + q0 + (size_t)s * A->nloc;
        double *t = T + (size_t)s * nq;
        for (int jl = 0; jl < nq; ++jl)
          t[jl] = a * xc[jl];
      }
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, nr, nq, k, alpha, Xr + r0, A->mloc, T,
                  nq, 1.0, A->a + r0 + (size_t)q0 * A->lld, A->lld);
    }
  }
done:
  nhgd_free(&rfirst);
  nhgd_free(&cfirst);
  nhgd_free(&Xr);
  nhgd_free(&Xc);
  nhgd_free(&T);
  return rc;
}

int nhgd_bcmat_cholesky(nhgd_bcmat *A) {
  int one = 1, info = 0;
  pdpotrf_("L", &A->n, A->a, &one, &one, A->desc, &info, 1);
  if (info > 0)
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "Cholesky factorisation failed: the %d x %d matrix is not positive definite "
              "(leading minor %d)",
              A->n, A->n, info);
  if (info < 0) NHGD_FAIL(NHGD_ERR_SCALAPACK, "pdpotrf: argument error INFO = %d", info);
  return NHGD_OK;
}

int nhgd_bcmat_solve(nhgd_bcmat *A, const double *b, double *x) {
  const nhgd_grid *g = A->grid;
  int one = 1, zero = 0, info = 0, rc = NHGD_OK;
  int bl = numroc(1, A->nb, g->mycol, g->npcol); /* 1 on process column 0, else 0 */
  int descb[9];
  descinit_(descb, &A->n, &one, &A->nb, &A->nb, &zero, &zero, &g->ctxt, &A->lld, &info);
  if (info) NHGD_FAIL(NHGD_ERR_SCALAPACK, "descinit (right-hand side) INFO = %d", info);
  double *bloc;
  NHGD_CHECK(nhgd_calloc(&bloc, (size_t)A->lld, sizeof(double), "right-hand side"));
  if (bl)
    for (int il = 0; il < A->mloc; ++il)
      bloc[il] = b[A->grow[il]];
  pdpotrs_("L", &A->n, &one, A->a, &one, &one, A->desc, bloc, &one, &one, descb, &info, 1);
  if (info) NHGD_RAISE(rc, done, NHGD_ERR_SCALAPACK, "pdpotrs: INFO = %d", info);
  /* Each entry lives on exactly one process of column 0: a sum replicates it exactly. */
  memset(x, 0, (size_t)A->n * sizeof(double));
  if (bl)
    for (int il = 0; il < A->mloc; ++il)
      x[A->grow[il]] = bloc[il];
  if (MPI_Allreduce(MPI_IN_PLACE, x, A->n, MPI_DOUBLE, MPI_SUM, g->comm) != MPI_SUCCESS)
    NHGD_RAISE(rc, done, NHGD_ERR_MPI, "MPI_Allreduce of the solution failed");
done:
  nhgd_free(&bloc);
  return rc;
}

int nhgd_bcmat_gather(const nhgd_bcmat *A, double *full) {
  const nhgd_grid *g = A->grid;
  int rank, rc = NHGD_OK;
  MPI_Comm_rank(g->comm, &rank);
  size_t nn = (size_t)A->n * (size_t)A->n;
  double *buf;
  NHGD_CHECK(nhgd_calloc(&buf, nn, sizeof(double), "gathered matrix"));
  for (int jl = 0; jl < A->nloc; ++jl)
    for (int il = 0; il < A->mloc; ++il)
      buf[A->grow[il] + (size_t)A->gcol[jl] * A->n] = A->a[il + (size_t)jl * A->lld];
  if (MPI_Reduce(rank == 0 ? MPI_IN_PLACE : buf, buf, (int)nn, MPI_DOUBLE, MPI_SUM, 0, g->comm) !=
      MPI_SUCCESS)
    rc = nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__, "MPI_Reduce of the matrix failed");
  if (rank == 0 && !rc) memcpy(full, buf, nn * sizeof(double));
  nhgd_free(&buf);
  return rc;
}

int nhgd_bcmat_local_slabs(const nhgd_bcmat *A, nhgd_bcmat_slab rows[2], int *nrows,
                           nhgd_bcmat_slab cols[2], int *ncols) {
  const nhgd_grid *g = A->grid;
  const int64_t nb = A->nb;
  *nrows = *ncols = 0;
  if (A->mloc == 0 || A->nloc == 0) return 0;
  /* Per dimension: the full blocks, then the partial one. */
  if (A->mloc / nb)
    rows[(*nrows)++] =
        (nhgd_bcmat_slab){(int64_t)g->myrow * nb, (int64_t)g->nprow * nb, A->mloc / nb, nb};
  if (A->mloc % nb)
    rows[(*nrows)++] =
        (nhgd_bcmat_slab){((A->mloc / nb) * g->nprow + g->myrow) * nb, 1, 1, A->mloc % nb};
  if (A->nloc / nb)
    cols[(*ncols)++] =
        (nhgd_bcmat_slab){(int64_t)g->mycol * nb, (int64_t)g->npcol * nb, A->nloc / nb, nb};
  if (A->nloc % nb)
    cols[(*ncols)++] =
        (nhgd_bcmat_slab){((A->nloc / nb) * g->npcol + g->mycol) * nb, 1, 1, A->nloc % nb};
  return *nrows * *ncols;
}
