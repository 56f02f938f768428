/* K-FAC factors of the nhgd estimator and the exact solve of the damped Kronecker system
 * (docs/algorithm.md 4.4; what is exact and what is approximate: see kfac.h). */
#include "estimators/nhgd/kfac.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "nhgd/errors.h"

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t ljobz, size_t luplo);

static size_t lower_len(int n) {
  return (size_t)n * (size_t)(n + 1) / 2;
}

void nhgd_kfac_pack_lower(int n, const double *a, double *p) {
  for (int j = 0; j < n; ++j) {
    memcpy(p, a + (size_t)j * n + j, (size_t)(n - j) * sizeof(double));
    p += n - j;
  }
}

void nhgd_kfac_unpack_lower(int n, const double *p, double *a) {
  for (int j = 0; j < n; ++j) {
    memcpy(a + (size_t)j * n + j, p, (size_t)(n - j) * sizeof(double));
    p += n - j;
  }
}

void nhgd_kfac_not_pd(double amax, double delta, char *buf, size_t len) {
  if (!NHGD_KFAC_USABLE(amax))
    snprintf(buf, len, "%s", NHGD_KFAC_OVERFLOW);
  else if (amax >= NHGD_KFAC_GROWN)
    snprintf(buf, len,
             "the system is not positive definite and its entries reach %.3g (per-sample "
             "gradients of 1e20 and more: theta has grown too large), which damping only hides: "
             "lower --inner-lr",
             amax);
  else
    snprintf(buf, len,
             "the system is not positive definite (entries up to %.3g, damping %g): raise "
             "--efim-damping",
             amax, delta);
}

static int owned_slots(int C, int P) {
  return (C + P - 1) / P;
}

double nhgd_kfac_bytes(int m, int C, int bmax, int distributed, double matrix_bytes, int refresh,
                       int keep, int P) {
  const double mm = (double)m * m, mc = (double)m * C;
  double b = 8.0 * ((double)(m + C) * bmax + 4.0 * mc + 3.0 * (double)C * C + 2.0 * m);
  if (refresh > 1) b += 8.0 * ((double)C * C + m); /* kept G, the damping of the factors */
  if (distributed) return b + 2.0 * matrix_bytes + 8.0 * lower_len(C);
  if (refresh > 1) b += 8.0 * mm;                                               /* kept A */
  if (refresh > 1 || keep) b += 8.0 * (mm * owned_slots(C, P > 0 ? P : 1) + m); /* factors */
  return b + 8.0 * (3.0 * mm + (double)lower_len(m));
}

int nhgd_kfac_init(nhgd_kfac *k, MPI_Comm comm, int m, int C, int bmax, int model_g,
                   int distributed, int refresh, const nhgd_grid *grid, int nb) {
  memset(k, 0, sizeof *k);
  k->comm = comm;
  MPI_Comm_rank(comm, &k->rank);
  MPI_Comm_size(comm, &k->size);
  k->m = m;
  k->C = C;
  k->model_g = model_g;
  k->distributed = distributed;
  if (refresh < 1) NHGD_FAIL(NHGD_ERR_ARG, "nhgd kfac: refresh every %d outer steps", refresh);
  k->refresh = refresh;
  const size_t mm = (size_t)m * m, mc = (size_t)m * C, b = (size_t)(bmax > 0 ? bmax : 1);
  NHGD_CHECK(nhgd_calloc(&k->G, (size_t)C * C, sizeof(double), "K-FAC G"));
  NHGD_CHECK(nhgd_calloc(&k->Xs, (size_t)m * b, sizeof(double), "K-FAC scaled features"));
  NHGD_CHECK(nhgd_calloc(&k->Rs, (size_t)C * b, sizeof(double), "K-FAC scaled residuals"));
  NHGD_CHECK(nhgd_calloc(&k->Q, (size_t)C * C, sizeof(double), "K-FAC eigenvectors of G"));
  NHGD_CHECK(nhgd_calloc(&k->lam, (size_t)C, sizeof(double), "K-FAC eigenvalues of G"));
  NHGD_CHECK(nhgd_calloc(&k->sys, (size_t)C, sizeof(int), "K-FAC class systems"));
  NHGD_CHECK(nhgd_calloc(&k->Gt, mc, sizeof(double), "K-FAC rotated right-hand side"));
  NHGD_CHECK(nhgd_calloc(&k->Ut, mc + 1, sizeof(double), "K-FAC rotated solution"));
  NHGD_CHECK(nhgd_calloc(&k->col, (size_t)m, sizeof(double), "K-FAC column"));
  NHGD_CHECK(nhgd_calloc(&k->diagA, (size_t)m, sizeof(double), "K-FAC diagonal of A"));
  /* Workspace of the symmetric eigen-decomposition of G (a query first). */
  int lwork = -1, info = 0;
  double q = 0.0;
  dsyev_("V", "L", &C, k->Q, &C, k->lam, &q, &lwork, &info, 1, 1);
  k->lwork = info == 0 && q >= 1.0 ? (int)q : 3 * C;
  NHGD_CHECK(nhgd_calloc(&k->wk, (size_t)k->lwork, sizeof(double), "K-FAC eigen workspace"));
  if (distributed) {
    NHGD_CHECK(nhgd_calloc(&k->red, lower_len(C) + 2, sizeof(double), "K-FAC reduction"));
    NHGD_CHECK(nhgd_bcmat_create(grid, m, nb, &k->Abc));
    NHGD_CHECK(nhgd_bcmat_create(grid, m, nb, &k->Wbc));
  } else {
    NHGD_CHECK(nhgd_calloc(&k->A, mm, sizeof(double), "K-FAC A"));
    NHGD_CHECK(nhgd_calloc(&k->S, mm, sizeof(double), "K-FAC class system"));
    NHGD_CHECK(
        nhgd_calloc(&k->red, lower_len(m) + lower_len(C) + 2, sizeof(double), "K-FAC reduction"));
  }
  if (refresh > 1) {
    NHGD_CHECK(nhgd_calloc(&k->Gk, (size_t)C * C, sizeof(double), "K-FAC kept G"));
    NHGD_CHECK(nhgd_calloc(&k->Dk, (size_t)m, sizeof(double), "K-FAC damping of the factors"));
    if (!distributed) {
      NHGD_CHECK(nhgd_calloc(&k->Ak, mm, sizeof(double), "K-FAC kept A"));
      NHGD_CHECK(nhgd_calloc(&k->Lf, mm * (size_t)owned_slots(C, k->size), sizeof(double),
                             "K-FAC kept class factors"));
    }
  }
  if (!k->Ak) k->Ak = k->A; /* replicated, refresh 1: the sum overwrites the partial */
  return NHGD_OK;
}

int nhgd_kfac_keep_factors(nhgd_kfac *k) {
  if (k->distributed || k->Lf) return NHGD_OK;
  const size_t mm = (size_t)k->m * k->m;
  NHGD_CHECK(nhgd_calloc(&k->Dk, (size_t)k->m, sizeof(double), "K-FAC damping of the factors"));
  return nhgd_calloc(&k->Lf, mm * (size_t)owned_slots(k->C, k->size), sizeof(double),
                     "K-FAC kept class factors");
}

void nhgd_kfac_free(nhgd_kfac *k) {
  nhgd_kfac_cancel_reduce(k);
  if (k->Ak == k->A) k->Ak = NULL;
  double **bufs[] = {&k->A,  &k->G,  &k->Xs,  &k->Rs,    &k->red, &k->S,  &k->Q,  &k->lam, &k->wk,
                     &k->Gt, &k->Ut, &k->col, &k->diagA, &k->Ak,  &k->Gk, &k->Lf, &k->Dk};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_free(&k->sys);
  nhgd_bcmat_destroy(&k->Abc);
  nhgd_bcmat_destroy(&k->Wbc);
}

void nhgd_kfac_reset(nhgd_kfac *k, int fresh) {
  nhgd_kfac_cancel_reduce(k);
  k->failed = 0;
  /* A loop that reuses the kept sums adds nothing, and its partials are not read before the
   * next loop that sums (which zeroes them): no m x m memset in every outer step. */
  if (!fresh) return;
  if (k->A) memset(k->A, 0, (size_t)k->m * k->m * sizeof(double));
  if (k->Abc) nhgd_bcmat_zero(k->Abc);
  memset(k->G, 0, (size_t)k->C * k->C * sizeof(double));
  k->trF = 0.0;
}

void nhgd_kfac_add_local(nhgd_kfac *k, int nb, const double *X, const double *R, const double *Am,
                         const double *c, const double *w) {
  const int m = k->m, C = k->C;
  if (nb <= 0) return;
  for (int s = 0; s < nb; ++s) {
    const double *x = X + (size_t)s * m, *r = R + (size_t)s * C;
    const double sw = sqrt(w[s]);
    double xx = 0.0, rr = 0.0;
    for (int j = 0; j < m; ++j) {
      k->Xs[j + (size_t)s * m] = sw * x[j];
      xx += x[j] * x[j];
    }
    if (k->model_g) {
      /* Am holds c_s (diag p - p p^T): its trace is c_s (1 - |p|^2). */
      const double *a = Am + (size_t)s * C * C;
      if (!(c[s] > 0.0)) {
        if (w[s] > 0.0 && !k->failed)
          nhgd_error_set(NHGD_ERR_NUMERIC, __FILE__, __LINE__,
                         "nhgd kfac: --kfac-g model needs positive sample weights (got %g)", c[s]);
        k->failed |= w[s] > 0.0;
        continue;
      }
      const double f = w[s] / c[s];
      for (int i = 0; i < C; ++i)
        rr += a[i + (size_t)i * C];
      rr /= c[s];
      for (int j = 0; j < C; ++j)
        for (int i = j; i < C; ++i)
          k->G[i + (size_t)j * C] += f * a[i + (size_t)j * C];
    } else {
      for (int i = 0; i < C; ++i) {
        k->Rs[i + (size_t)s * C] = sw * r[i];
        rr += r[i] * r[i];
      }
    }
    k->trF += w[s] * xx * rr;
  }
  if (!k->model_g)
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, C, nb, 1.0, k->Rs, C, 1.0, k->G, C);
  if (!k->distributed)
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, m, nb, 1.0, k->Xs, m, 1.0, k->A, m);
}

int nhgd_kfac_add_gathered(nhgd_kfac *k, int nb, const double *P, int width) {
  const int m = k->m;
  for (int s = 0; s < nb; ++s) {
    const double *p = P + (size_t)s * width;
    for (int j = 0; j < m; ++j)
      k->Xs[j + (size_t)s * m] = p[0] * p[1 + j];
  }
  return nb > 0 ? nhgd_bcmat_add_gram(k->Abc, k->Xs, nb, 1.0, 1) : NHGD_OK;
}

/* The partials, packed: [A lower (replicated layout), G lower, trace(F), failure flag]. */
static size_t pack_partials(nhgd_kfac *k) {
  const int m = k->m, C = k->C;
  double *p = k->red;
  if (!k->distributed) {
    nhgd_kfac_pack_lower(m, k->A, p);
    p += lower_len(m);
  }
  nhgd_kfac_pack_lower(C, k->G, p);
  p[lower_len(C)] = k->trF;
  p[lower_len(C) + 1] = k->failed ? 1.0 : 0.0;
  return (size_t)(p - k->red) + lower_len(C) + 2;
}

int nhgd_kfac_start_reduce(nhgd_kfac *k) {
  if (k->pending) return NHGD_OK;
  const size_t n = pack_partials(k);
  NHGD_MPI_CHECK(
      MPI_Iallreduce(MPI_IN_PLACE, k->red, (int)n, MPI_DOUBLE, MPI_SUM, k->comm, &k->req));
  k->pending = 1;
  k->bytes += 8.0 * (double)n;
  return NHGD_OK;
}

void nhgd_kfac_cancel_reduce(nhgd_kfac *k) {
  if (k->pending) MPI_Wait(&k->req, MPI_STATUS_IGNORE);
  k->pending = 0;
}

/* Sum the partials over the ranks (completing a reduction started at the end of the inner
 * loop, or doing it now): G (full, symmetric, into Q) and trace(F) on every rank; in the
 * replicated layout the sum of A into S's lower triangle. Local failures are agreed on. */
static int reduce_partials(nhgd_kfac *k, double *trF) {
  const int m = k->m, C = k->C;
  if (k->pending) {
    k->pending = 0;
    NHGD_MPI_CHECK(MPI_Wait(&k->req, MPI_STATUS_IGNORE));
  } else {
    const size_t n = pack_partials(k);
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, k->red, (int)n, MPI_DOUBLE, MPI_SUM, k->comm));
    k->bytes += 8.0 * (double)n;
  }
  const double *p = k->red + (k->distributed ? 0 : lower_len(m));
  if (p[lower_len(C) + 1] > 0.0) NHGD_CHECK(nhgd_error_agree(k->comm, k->failed ? 1 : 0));
  if (!k->distributed) nhgd_kfac_unpack_lower(m, k->red, k->S);
  memset(k->Q, 0, (size_t)C * C * sizeof(double));
  nhgd_kfac_unpack_lower(C, p, k->Q);
  for (int j = 0; j < C; ++j)
    for (int i = j + 1; i < C; ++i)
      k->Q[j + (size_t)i * C] = k->Q[i + (size_t)j * C];
  *trF = p[lower_len(C)];
  return NHGD_OK;
}

/* tau and G = Q Lambda Q^T from the sums (G full in Q, trace F, A in Ak or Abc): identical
 * input on every rank, so identical output; the same code after a restart. */
static int decompose(nhgd_kfac *k, double trF) {
  const int m = k->m, C = k->C;
  double trA = 0.0, trG = 0.0;
  if (k->distributed) {
    NHGD_CHECK(nhgd_bcmat_diag(k->Abc, k->diagA));
    k->bytes += 8.0 * m;
    for (int j = 0; j < m; ++j)
      trA += k->diagA[j];
  } else {
    for (int j = 0; j < m; ++j)
      trA += k->Ak[j + (size_t)j * m];
  }
  for (int c = 0; c < C; ++c)
    trG += k->Q[c + (size_t)c * C];
  k->tau = trA > 0.0 && trG > 0.0 ? trF / (trA * trG) : 0.0;
  int info = 0;
  dsyev_("V", "L", &C, k->Q, &C, k->lam, k->wk, &k->lwork, &info, 1, 1);
  if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: eigen-decomposition of G failed (%d)", info);
  /* G is positive semi-definite, and singular: its rows sum to zero (sum_c r_c = 0, and
   * (diag p - p p^T) 1 = 0), so one eigenvalue is zero up to rounding. Eigenvalues within
   * rounding of zero are zero: their class systems are D_x alone and need no factorisation. */
  const double lmax = k->lam[C - 1] > 0.0 ? k->lam[C - 1] : 0.0;
  for (int c = 0; c < C; ++c)
    if (k->lam[c] <= 1e-13 * lmax) k->lam[c] = 0.0;
  k->decomposed = 1;
  k->factored = 0;
  return NHGD_OK;
}

/* The summed factors: this inner loop's (reduced now, and kept when refresh > 1), or the
 * kept ones, decomposed once. */
static int prepare(nhgd_kfac *k, int fresh) {
  const int m = k->m, C = k->C;
  if (!fresh && !k->have)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd kfac: a solve with kept factors, and none are kept");
  if (fresh) {
    double trF = 0.0;
    NHGD_CHECK(reduce_partials(k, &trF));
    if (!k->distributed) memcpy(k->Ak, k->S, (size_t)m * m * sizeof(double));
    if (k->refresh > 1) {
      memcpy(k->Gk, k->Q, (size_t)C * C * sizeof(double));
      k->trFk = trF;
      k->have = 1;
    }
    return decompose(k, trF);
  }
  if (k->decomposed) return NHGD_OK;
  memcpy(k->Q, k->Gk, (size_t)C * C * sizeof(double));
  return decompose(k, k->trFk);
}

/* S (lower) = a A + diag(Dx) from the kept sum of A. */
static void class_system(const nhgd_kfac *k, double a, const double *Dx, double *S) {
  const int m = k->m;
  for (int j = 0; j < m; ++j) {
    for (int r = j; r < m; ++r)
      S[r + (size_t)j * m] = a * k->Ak[r + (size_t)j * m];
    S[j + (size_t)j * m] += Dx[j];
  }
}

/* u = M^{-1} g from the prepared factors (decomposition of G, tau, A). */
static int solve_prepared(nhgd_kfac *k, const double *Dx, const double *g, double *u) {
  const int m = k->m, C = k->C, one = 1;
  const double tau = k->tau;
  if (k->distributed) k->bytes += 8.0 * m * C; /* each class's solution vector */
  /* Gamma~ = Gamma Q with Gamma the m x C reshape of g. */
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, C, C, 1.0, g, m, k->Q, C, 0.0, k->Gt,
              m);
  memset(k->Ut, 0, ((size_t)m * C + 1) * sizeof(double));
  int nsys = 0; /* sys[0..nsys): the class directions that need a factorisation */
  for (int c = 0; c < C; ++c) {
    if (tau * k->lam[c] > 0.0) {
      k->sys[nsys++] = c;
    } else if (k->distributed || k->rank == 0) { /* D_x u~_c = gamma~_c (replicated: the
                                                    allreduce below hands it to the others) */
      for (int j = 0; j < m; ++j)
        k->Ut[j + (size_t)c * m] = k->Gt[j + (size_t)c * m] / Dx[j];
    }
  }
  int info = 0;
  if (k->distributed) {
    for (int i = 0; i < nsys; ++i) {
      const int c = k->sys[i];
      nhgd_bcmat_copy_scaled(k->Wbc, k->Abc, tau * k->lam[c]);
      nhgd_bcmat_add_diag(k->Wbc, Dx);
      NHGD_CHECK(nhgd_bcmat_cholesky(k->Wbc));
      NHGD_CHECK(nhgd_bcmat_solve(k->Wbc, k->Gt + (size_t)c * m, k->Ut + (size_t)c * m));
    }
  } else {
    /* The i-th class system to factor is solved by rank i mod P; the others contribute
     * zeros (rank 0 also holds the diagonal ones). With refresh > 1 (or nhgd_kfac_keep_factors)
     * the factors are kept in slot i / P and reused while the damping stays the same. */
    const int keep = k->Lf != NULL;
    const int reuse = keep && k->factored && !memcmp(Dx, k->Dk, (size_t)m * sizeof(double));
    int bad = 0;
    for (int i = k->rank; i < nsys; i += k->size) {
      const int c = k->sys[i];
      double *L = keep ? k->Lf + (size_t)(i / k->size) * m * m : k->S;
      if (!reuse) {
        class_system(k, tau * k->lam[c], Dx, L);
        dpotrf_("L", &m, L, &m, &info, 1);
      }
      double *uc = k->Ut + (size_t)c * m;
      memcpy(uc, k->Gt + (size_t)c * m, (size_t)m * sizeof(double));
      if (!info) dpotrs_("L", &m, &one, L, &m, uc, &m, &info, 1);
      if (info && !bad) {
        /* Damping lifts a system that is merely singular, never one that overflowed. */
        double amax = 0.0, dmin = INFINITY;
        for (size_t e = 0; e < (size_t)m * m; ++e)
          amax = nhgd_kfac_absmax(amax, tau * k->lam[c] * k->Ak[e]);
        for (int j = 0; j < m; ++j)
          dmin = fmin(dmin, Dx[j]);
        char why[300];
        nhgd_kfac_not_pd(amax, dmin, why, sizeof why);
        nhgd_error_set(NHGD_ERR_NUMERIC, __FILE__, __LINE__,
                       "nhgd kfac: the system of class direction %d (minor %d): %s", c, info, why);
        bad = 1;
      }
      info = 0;
    }
    k->Ut[(size_t)m * C] = bad ? 1.0 : 0.0;
    const int n = m * C + 1;
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, k->Ut, n, MPI_DOUBLE, MPI_SUM, k->comm));
    k->bytes += 8.0 * n;
    if (k->Ut[(size_t)m * C] > 0.0) {
      k->factored = 0;
      NHGD_CHECK(nhgd_error_agree(k->comm, bad));
    }
    if (keep && !reuse) {
      memcpy(k->Dk, Dx, (size_t)m * sizeof(double));
      k->factored = 1;
    }
  }
  /* U = U~ Q^T. */
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, m, C, C, 1.0, k->Ut, m, k->Q, C, 0.0, u, m);
  return NHGD_OK;
}

int nhgd_kfac_solve(nhgd_kfac *k, const double *Dx, const double *g, double *u, int fresh) {
  NHGD_CHECK(prepare(k, fresh));
  return solve_prepared(k, Dx, g, u);
}

int nhgd_kfac_reapply(nhgd_kfac *k, const double *Dx, const double *g, double *u) {
  if (!k->decomposed)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd kfac: a repeated solve before the first one");
  return solve_prepared(k, Dx, g, u);
}

/* ---- checkpoint ---- */

int nhgd_kfac_put_partial(int rank, int size, nhgd_section *sec, const char *name, int64_t n,
                          const double *x) {
  return nhgd_section_put_slice(sec, name, n * size, n * rank, n, x);
}

int nhgd_kfac_get_partial(int rank, int size, nhgd_section *sec, const char *name, int64_t n,
                          int saved, double *x) {
  if (saved == size) return nhgd_section_get_slice(sec, name, n * saved, n * rank, n, x);
  double *all = NULL;
  const int64_t cnt = rank == 0 ? n * saved : 0;
  NHGD_CHECK(nhgd_calloc(&all, (size_t)(cnt > 0 ? cnt : 1), sizeof(double), "K-FAC partials"));
  int rc = nhgd_section_get_slice(sec, name, n * saved, 0, cnt, all);
  memset(x, 0, (size_t)n * sizeof(double));
  if (!rc && rank == 0)
    for (int q = 0; q < saved; ++q)
      for (int64_t i = 0; i < n; ++i)
        x[i] += all[(size_t)q * n + i];
  nhgd_free(&all);
  return rc;
}

static int put_partial(nhgd_kfac *k, nhgd_section *sec, const char *name, int64_t n,
                       const double *x) {
  return nhgd_kfac_put_partial(k->rank, k->size, sec, name, n, x);
}

static int get_partial(nhgd_kfac *k, nhgd_section *sec, const char *name, int64_t n, int saved,
                       double *x) {
  return nhgd_kfac_get_partial(k->rank, k->size, sec, name, n, saved, x);
}

int nhgd_kfac_save(nhgd_kfac *k, nhgd_section *sec) {
  int failed = k->failed;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, k->comm));
  if (failed) NHGD_CHECK(nhgd_error_agree(k->comm, k->failed ? 1 : 0));
  const int64_t CC = (int64_t)k->C * k->C;
  NHGD_CHECK(nhgd_section_put_int(sec, "kfac_ranks", k->size));
  NHGD_CHECK(
      nhgd_section_put_string(sec, "kfac_layout", k->distributed ? "distributed" : "replicated"));
  NHGD_CHECK(put_partial(k, sec, "kfac_G", CC, k->G));
  NHGD_CHECK(put_partial(k, sec, "kfac_trF", 1, &k->trF));
  if (k->distributed)
    NHGD_CHECK(nhgd_section_put_matrix(sec, "kfac_A", k->Abc));
  else
    NHGD_CHECK(put_partial(k, sec, "kfac_A", (int64_t)k->m * k->m, k->A));
  if (k->refresh == 1) return NHGD_OK;
  /* The kept sums, the same on every rank (written once); the block-cyclic A keeps its
   * kept sum in kfac_A while it serves. Their decomposition is recomputed at a restart. */
  NHGD_CHECK(nhgd_section_put_int(sec, "kfac_have", k->have));
  if (!k->have) return NHGD_OK;
  NHGD_CHECK(nhgd_section_put_vector(sec, "kfac_keptG", CC, k->Gk));
  NHGD_CHECK(nhgd_section_put_real(sec, "kfac_keptTrF", k->trFk));
  if (k->distributed) return NHGD_OK;
  const int64_t mm = (int64_t)k->m * k->m;
  return nhgd_section_put_vector(sec, "kfac_keptA", mm, k->Ak);
}

static int load_kept(nhgd_kfac *k, nhgd_section *sec, int read_abc);

int nhgd_kfac_load(nhgd_kfac *k, nhgd_section *sec) {
  int64_t saved;
  char layout[32];
  NHGD_CHECK(nhgd_section_get_int(sec, "kfac_ranks", &saved));
  NHGD_CHECK(nhgd_section_get_string(sec, "kfac_layout", layout, sizeof layout));
  const char *mine = k->distributed ? "distributed" : "replicated";
  if (strcmp(layout, mine))
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint holds K-FAC factors in the %s layout, this run uses the %s one: "
              "continue with --kfac-layout %s",
              layout, mine, layout);
  if (saved < 1 || saved > 1 << 24)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's K-FAC state names %lld ranks", (long long)saved);
  const int64_t CC = (int64_t)k->C * k->C;
  k->failed = 0;
  NHGD_CHECK(get_partial(k, sec, "kfac_G", CC, (int)saved, k->G));
  NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_G", CC, k->G));
  NHGD_CHECK(get_partial(k, sec, "kfac_trF", 1, (int)saved, &k->trF));
  NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_trF", 1, &k->trF));
  if (k->distributed) {
    NHGD_CHECK(nhgd_section_get_matrix(sec, "kfac_A", k->Abc));
    NHGD_CHECK(nhgd_section_check_finite_matrix(sec, "kfac_A", k->Abc));
  } else {
    const int64_t mm = (int64_t)k->m * k->m;
    NHGD_CHECK(get_partial(k, sec, "kfac_A", mm, (int)saved, k->A));
    NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_A", mm, k->A));
  }
  return load_kept(k, sec, 0);
}

/* The kept sums; read_abc 0 when the block-cyclic A (which holds the kept sum while it
 * serves) has just been read with the running state. */
static int load_kept(nhgd_kfac *k, nhgd_section *sec, int read_abc) {
  k->have = 0;
  k->decomposed = 0;
  k->factored = 0;
  if (k->refresh == 1 || !nhgd_section_has(sec, "kfac_have")) return NHGD_OK;
  int64_t have;
  char layout[32];
  NHGD_CHECK(nhgd_section_get_int(sec, "kfac_have", &have));
  if (have != 0 && have != 1)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's K-FAC state has flag kfac_have = %lld",
              (long long)have);
  if (!have) return NHGD_OK;
  NHGD_CHECK(nhgd_section_get_string(sec, "kfac_layout", layout, sizeof layout));
  if (strcmp(layout, k->distributed ? "distributed" : "replicated")) return NHGD_OK;
  const int64_t CC = (int64_t)k->C * k->C, mm = (int64_t)k->m * k->m;
  NHGD_CHECK(nhgd_section_get_vector(sec, "kfac_keptG", CC, k->Gk));
  NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_keptG", CC, k->Gk));
  NHGD_CHECK(nhgd_section_get_real(sec, "kfac_keptTrF", &k->trFk));
  NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_keptTrF", 1, &k->trFk));
  if (k->distributed && read_abc) {
    NHGD_CHECK(nhgd_section_get_matrix(sec, "kfac_A", k->Abc));
    NHGD_CHECK(nhgd_section_check_finite_matrix(sec, "kfac_A", k->Abc));
  } else if (!k->distributed) {
    NHGD_CHECK(nhgd_section_get_vector(sec, "kfac_keptA", mm, k->Ak));
    NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_keptA", mm, k->Ak));
  }
  k->have = 1;
  return NHGD_OK;
}

int nhgd_kfac_load_kept(nhgd_kfac *k, nhgd_section *sec) {
  return load_kept(k, sec, 1);
}
