/* Conjugate gradients, optionally preconditioned, for one or two right-hand sides. The
 * recurrence of each column (Hestenes-Stiefel with z = M^{-1} r):
 *   r_0 = b - A x_0,  z_0 = M^{-1} r_0,  p_0 = z_0
 *   alpha = r^T z / p^T A p,  x += alpha p,  r -= alpha A p,  z = M^{-1} r,
 *   beta = r_new^T z_new / r^T z,  p = z + beta p.
 * The columns share the calls of A and M^{-1} (the active ones, packed side by side). */
#include "estimators/pcg.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nhgd/errors.h"

static double dot(int64_t d, const double *a, const double *b) {
  return cblas_ddot((int)d, a, 1, b, 1);
}

/* Apply op to the active columns of V (d x n) into OUT, packing them through T (d x n). */
static int apply_active(nhgd_linop_fn op, void *arg, int64_t d, int n, const int *act,
                        const double *V, double *OUT, double *T, double *TO) {
  int na = 0, idx[2];
  for (int c = 0; c < n; ++c)
    if (act[c]) idx[na++] = c;
  if (na == 0) return 0;
  if (na == n) return op(arg, n, V, OUT);
  for (int a = 0; a < na; ++a)
    memcpy(T + (size_t)a * d, V + (size_t)idx[a] * d, (size_t)d * sizeof(double));
  int rc = op(arg, na, T, TO);
  if (rc) return rc;
  for (int a = 0; a < na; ++a)
    memcpy(OUT + (size_t)idx[a] * d, TO + (size_t)a * d, (size_t)d * sizeof(double));
  return 0;
}

int nhgd_pcg(int64_t d, int n, nhgd_linop_fn A, void *Aarg, nhgd_linop_fn Minv, void *Marg,
             const double *B, double *X, int start, int Q, double tol, const char *who,
             double *work, nhgd_pcg_stats *st) {
  nhgd_pcg_stats local;
  if (!st) st = &local;
  memset(st, 0, sizeof *st);
  if (n < 1 || n > 2) NHGD_FAIL(NHGD_ERR_INTERNAL, "%s: pcg takes 1 or 2 columns, not %d", who, n);
  const size_t dn = (size_t)d * (size_t)n;
  double *R = work, *Z = R + dn, *P = Z + dn, *AP = P + dn, *T = AP + dn, *TO = T + dn;
  double bb[2] = {0, 0}, rz[2] = {0, 0}, rr[2] = {0, 0};
  int act[2] = {0, 0};
  for (int c = 0; c < n; ++c) {
    bb[c] = dot(d, B + (size_t)c * d, B + (size_t)c * d);
    act[c] = 1;
  }
  if (Q <= 0) {
    for (int c = 0; c < n; ++c)
      st->rel[c] = NAN; /* not measured: it would cost a product */
    return 0;
  }
  /* r_0 = b - A x_0 for the columns with a general start, b for the others */
  memcpy(R, B, dn * sizeof(double));
  int general[2] = {start & 1, (start >> 1) & 1};
  if (general[0] || general[1]) {
    NHGD_CHECK(apply_active(A, Aarg, d, n, general, X, AP, T, TO));
    for (int c = 0; c < n; ++c) {
      if (!general[c]) continue;
      st->products += 1;
      cblas_daxpy((int)d, -1.0, AP + (size_t)c * d, 1, R + (size_t)c * d, 1);
    }
  }
  for (int c = 0; c < n; ++c) {
    rr[c] = dot(d, R + (size_t)c * d, R + (size_t)c * d);
    act[c] = rr[c] > tol * tol * bb[c];
  }
  if (Minv) {
    NHGD_CHECK(apply_active(Minv, Marg, d, n, act, R, Z, T, TO));
    for (int c = 0; c < n; ++c)
      st->precs += act[c];
  } else {
    memcpy(Z, R, dn * sizeof(double));
  }
  /* Only the active columns have a z (an inactive one's is never written): p_0 = z_0 for them. */
  for (int c = 0; c < n; ++c) {
    if (!act[c]) continue;
    rz[c] = dot(d, R + (size_t)c * d, Z + (size_t)c * d);
    memcpy(P + (size_t)c * d, Z + (size_t)c * d, (size_t)d * sizeof(double));
  }
  int q = 0;
  for (; q < Q && (act[0] || act[1]); ++q) {
    NHGD_CHECK(apply_active(A, Aarg, d, n, act, P, AP, T, TO));
    for (int c = 0; c < n; ++c) {
      if (!act[c]) continue;
      ++st->products;
      double *x = X + (size_t)c * d, *r = R + (size_t)c * d, *p = P + (size_t)c * d;
      const double *ap = AP + (size_t)c * d;
      const double pAp = dot(d, p, ap);
      if (!(pAp > 0.0) || !isfinite(pAp))
        NHGD_FAIL(NHGD_ERR_NUMERIC,
                  "%s: no positive curvature along the search direction (p^T H p = %g) at "
                  "iteration %d: the Hessian is not positive definite here",
                  who, pAp, q);
      const double alpha = rz[c] / pAp;
      cblas_daxpy((int)d, alpha, p, 1, x, 1);
      cblas_daxpy((int)d, -alpha, ap, 1, r, 1);
      rr[c] = dot(d, r, r);
      if (!isfinite(rr[c]))
        NHGD_FAIL(NHGD_ERR_NUMERIC, "%s: the residual is not finite at iteration %d", who, q);
    }
    int next[2] = {0, 0};
    for (int c = 0; c < n; ++c)
      next[c] = act[c] && rr[c] > tol * tol * bb[c] && q + 1 < Q;
    if (Minv) {
      NHGD_CHECK(apply_active(Minv, Marg, d, n, next, R, Z, T, TO));
      for (int c = 0; c < n; ++c)
        st->precs += next[c];
    } else {
      for (int c = 0; c < n; ++c)
        if (next[c]) memcpy(Z + (size_t)c * d, R + (size_t)c * d, (size_t)d * sizeof(double));
    }
    for (int c = 0; c < n; ++c) {
      if (!next[c]) continue;
      double *p = P + (size_t)c * d;
      const double *z = Z + (size_t)c * d;
      const double rz_new = dot(d, R + (size_t)c * d, z);
      const double beta = rz_new / rz[c];
      for (int64_t i = 0; i < d; ++i)
        p[i] = z[i] + beta * p[i];
      rz[c] = rz_new;
    }
    act[0] = next[0];
    act[1] = next[1];
  }
  st->iters = q;
  for (int c = 0; c < n; ++c)
    st->rel[c] = bb[c] > 0.0 ? sqrt(rr[c] / bb[c]) : 0.0;
  return 0;
}
