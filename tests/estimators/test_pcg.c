/* The PCG kernel (estimators/pcg.h) on small dense SPD matrices, one process:
 *   with the exact inverse as preconditioner it converges in one iteration;
 *   the error in the A-norm (the residual in the A^{-1}-norm) falls at every iteration, plain
 *   and preconditioned, and Q = n iterations reach A^{-1} b;
 *   two columns in lockstep equal two single-column runs bit for bit, also when one column
 *   stops early, and the products and applications are counted per column;
 *   start 0 and start 1 from x = 0 give the same iterates (start 1 costs one product more);
 *   start 1 from the solution takes no iteration; Q = 0 returns the start untouched without
 *   calling either operator; a matrix that is not positive definite is an error naming the
 *   caller. */
#include <cblas.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "estimators/pcg.h"
#include "nhgd/errors.h"

#include "common/mpi_check.h"

void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info, size_t len);
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t ljobz, size_t luplo);

enum { N = 12 };

/* A dense operator, applied column by column (so one column multiplies the same way alone or
 * beside another), counting its calls and columns. */
typedef struct dense_op {
  double a[N * N];
  int calls, columns;
} dense_op;

static int apply_dense(void *arg, int n, const double *X, double *out) {
  dense_op *op = arg;
  ++op->calls;
  op->columns += n;
  for (int c = 0; c < n; ++c)
    cblas_dgemv(CblasColMajor, CblasNoTrans, N, N, 1.0, op->a, N, X + (size_t)c * N, 1, 0.0,
                out + (size_t)c * N, 1);
  return 0;
}

/* SPD with eigenvalues spread over [1, cond]: Q diag Q^T, Q from a Gram-Schmidt of normals. */
static void make_spd(dense_op *op, uint64_t seed, double cond) {
  double q[N * N];
  for (int j = 0; j < N; ++j) {
    double *v = q + (size_t)j * N;
    for (int i = 0; i < N; ++i)
      v[i] = nhgd_rng_normal(seed, 1, (uint64_t)i, (uint64_t)j, 0);
    for (int p = 0; p < j; ++p) {
      const double h = cblas_ddot(N, q + (size_t)p * N, 1, v, 1);
      cblas_daxpy(N, -h, q + (size_t)p * N, 1, v, 1);
    }
    cblas_dscal(N, 1.0 / cblas_dnrm2(N, v, 1), v, 1);
  }
  memset(op->a, 0, sizeof op->a);
  for (int k = 0; k < N; ++k) {
    const double lam = pow(cond, (double)k / (N - 1));
    cblas_dger(CblasColMajor, N, N, lam, q + (size_t)k * N, 1, q + (size_t)k * N, 1, op->a, N);
  }
  op->calls = op->columns = 0;
}

/* inv = A^{-1} (dense). */
static void invert(const dense_op *op, dense_op *inv) {
  double a[N * N];
  memcpy(a, op->a, sizeof a);
  memset(inv->a, 0, sizeof inv->a);
  for (int i = 0; i < N; ++i)
    inv->a[i + i * N] = 1.0;
  int n = N, info = 0;
  dposv_("L", &n, &n, a, &n, inv->a, &n, &info, 1);
  MC_REQUIRE(info == 0, "dposv: %d", info);
  inv->calls = inv->columns = 0;
}

static void rhs(double *b, uint64_t seed) {
  for (int i = 0; i < N; ++i)
    b[i] = nhgd_rng_normal(seed, 2, (uint64_t)i, 0, 0);
}

/* e^T A e for e = x - xs. */
static double a_norm2(const dense_op *op, const double *x, const double *xs) {
  double e[N], ae[N];
  for (int i = 0; i < N; ++i)
    e[i] = x[i] - xs[i];
  cblas_dgemv(CblasColMajor, CblasNoTrans, N, N, 1.0, op->a, N, e, 1, 0.0, ae, 1);
  return cblas_ddot(N, e, 1, ae, 1);
}

static double work[6 * N * 2];

static void exact_inverse_case(void) {
  dense_op A, Ainv;
  make_spd(&A, 3, 1e3);
  invert(&A, &Ainv);
  double b[N], x[N] = {0}, xs[N];
  rhs(b, 4);
  cblas_dgemv(CblasColMajor, CblasNoTrans, N, N, 1.0, Ainv.a, N, b, 1, 0.0, xs, 1);
  nhgd_pcg_stats st;
  int rc =
      nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Ainv, b, x, 0, 20, 1e-10, "test", work, &st);
  mc_check(!rc && st.iters == 1 && mc_rel(x, xs, N) < 1e-12,
           "exact inverse as preconditioner (condition 1e3): %d iteration(s) (want 1), error "
           "%.2e < 1e-12",
           st.iters, mc_rel(x, xs, N));
}

/* The iterate after q iterations from 0, for q = 0..3n: its A-norm error never grows, and it
 * reaches A^{-1} b (in exact arithmetic in n iterations; in floating point, with eigenvalues
 * spread over four decades, CG loses orthogonality and needs a few more). */
static void monotone_case(int preconditioned) {
  dense_op A, Minv;
  make_spd(&A, 5, 1e4);
  /* A rough preconditioner: the inverse of a nearby SPD matrix (A's condition is 1e4, this
   * one's 1e4 with other eigenvectors). */
  dense_op near;
  make_spd(&near, 6, 1e4);
  for (int i = 0; i < N * N; ++i)
    near.a[i] = A.a[i] + 0.5 * near.a[i];
  invert(&near, &Minv);
  double b[N], xs[N], x[N];
  rhs(b, 7);
  {
    dense_op Ainv;
    invert(&A, &Ainv);
    cblas_dgemv(CblasColMajor, CblasNoTrans, N, N, 1.0, Ainv.a, N, b, 1, 0.0, xs, 1);
  }
  const double e0 = a_norm2(&A, (double[N]){0}, xs);
  double prev = e0, worst = 0.0;
  int ok = 1, rc = 0;
  for (int q = 1; q <= 3 * N && !rc; ++q) {
    memset(x, 0, sizeof x);
    rc = nhgd_pcg(N, 1, apply_dense, &A, preconditioned ? apply_dense : NULL, &Minv, b, x, 0, q,
                  0.0, "test", work, NULL);
    const double e = a_norm2(&A, x, xs);
    if (prev > 1e-20 * e0) { /* above rounding (a relative A-norm error of 1e-10) */
      ok &= e <= prev * (1.0 + 1e-12);
      worst = e / prev > worst ? e / prev : worst;
    }
    prev = e;
  }
  mc_check(!rc && ok && mc_rel(x, xs, N) < 1e-8,
           "%s CG: the A-norm error falls at every iteration (largest ratio %.3f <= 1) and Q = "
           "3n reaches A^-1 b (error %.2e < 1e-8)",
           preconditioned ? "preconditioned" : "plain", worst, mc_rel(x, xs, N));
}

static void lockstep_case(int preconditioned) {
  dense_op A, Minv, near;
  make_spd(&A, 8, 1e3);
  make_spd(&near, 9, 1e2);
  invert(&near, &Minv);
  double B[2 * N], X[2 * N] = {0}, x0[N] = {0}, x1[N] = {0};
  rhs(B, 10);
  rhs(B + N, 11);
  const double tol = 1e-6;
  const int Q = 9;
  nhgd_pcg_stats both, one, two;
  int rc = nhgd_pcg(N, 2, apply_dense, &A, preconditioned ? apply_dense : NULL, &Minv, B, X, 0, Q,
                    tol, "test", work, &both);
  if (!rc)
    rc = nhgd_pcg(N, 1, apply_dense, &A, preconditioned ? apply_dense : NULL, &Minv, B, x0, 0, Q,
                  tol, "test", work, &one);
  if (!rc)
    rc = nhgd_pcg(N, 1, apply_dense, &A, preconditioned ? apply_dense : NULL, &Minv, B + N, x1, 0,
                  Q, tol, "test", work, &two);
  const int same = !rc && !memcmp(X, x0, sizeof x0) && !memcmp(X + N, x1, sizeof x1) &&
                   both.rel[0] == one.rel[0] && both.rel[1] == two.rel[0];
  mc_check(same && both.products == one.products + two.products &&
               both.precs == one.precs + two.precs &&
               both.iters == (one.iters > two.iters ? one.iters : two.iters),
           "%s: two columns in lockstep = two single-column runs bit for bit (iterations %d and "
           "%d, products %lld = %lld + %lld, applications %lld = %lld + %lld)",
           preconditioned ? "preconditioned" : "plain", one.iters, two.iters,
           (long long)both.products, (long long)one.products, (long long)two.products,
           (long long)both.precs, (long long)one.precs, (long long)two.precs);
}

/* Columns that stop at different iterations: the second is an eigenvector of A (a Krylov
 * space of dimension one: plain CG stops after one iteration), the first runs on; packing the
 * active column keeps them apart. */
static void lockstep_early_stop_case(void) {
  dense_op A;
  make_spd(&A, 12, 1e3);
  double B[2 * N], X[2 * N] = {0}, x0[N] = {0}, x1[N] = {0};
  rhs(B, 14);
  rhs(B + N, 15);
  double lam[N], V[N * N], wk[10 * N];
  memcpy(V, A.a, sizeof V);
  int n = N, lwork = 10 * N, info = 0;
  dsyev_("V", "L", &n, V, &n, lam, wk, &lwork, &info, 1, 1);
  MC_REQUIRE(info == 0, "dsyev: %d", info);
  memcpy(B + N, V + 3 * N, sizeof(double) * N);
  nhgd_pcg_stats both, one, two;
  int rc = nhgd_pcg(N, 2, apply_dense, &A, NULL, NULL, B, X, 0, N, 1e-10, "test", work, &both);
  if (!rc) rc = nhgd_pcg(N, 1, apply_dense, &A, NULL, NULL, B, x0, 0, N, 1e-10, "test", work, &one);
  if (!rc)
    rc = nhgd_pcg(N, 1, apply_dense, &A, NULL, NULL, B + N, x1, 0, N, 1e-10, "test", work, &two);
  mc_check(!rc && two.iters == 1 && one.iters > 1 && !memcmp(X, x0, sizeof x0) &&
               !memcmp(X + N, x1, sizeof x1) && both.products == one.products + two.products,
           "columns that stop at different iterations (%d and %d): lockstep = single runs bit for "
           "bit, products %lld = %lld + %lld",
           one.iters, two.iters, (long long)both.products, (long long)one.products,
           (long long)two.products);
}

static void start_cases(void) {
  dense_op A, Minv, near, Ainv;
  make_spd(&A, 16, 1e3);
  make_spd(&near, 17, 10);
  invert(&near, &Minv);
  invert(&A, &Ainv);
  double b[N], xa[N] = {0}, xb[N] = {0}, xs[N];
  rhs(b, 18);
  nhgd_pcg_stats sa, sb;
  int rc = nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Minv, b, xa, 0, 5, 0.0, "test", work, &sa);
  if (!rc)
    rc = nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Minv, b, xb, 1, 5, 0.0, "test", work, &sb);
  mc_check(!rc && mc_rel(xb, xa, N) < 1e-14 && sb.products == sa.products + 1 && sa.products == 5 &&
               sa.precs == 5,
           "start 1 from x = 0 = start 0 (difference %.2e), one product more (%lld = %lld + 1); "
           "Q = 5 costs 5 products and 5 applications of M^-1 from 0 (%lld, %lld)",
           mc_rel(xb, xa, N), (long long)sb.products, (long long)sa.products,
           (long long)sa.products, (long long)sa.precs);
  /* From the solution: the first residual is (rounding) zero, no iteration. */
  cblas_dgemv(CblasColMajor, CblasNoTrans, N, N, 1.0, Ainv.a, N, b, 1, 0.0, xs, 1);
  double x[N];
  memcpy(x, xs, sizeof x);
  rc = nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Minv, b, x, 1, 5, 1e-10, "test", work, &sa);
  mc_check(!rc && sa.iters == 0 && sa.products == 1 && sa.precs == 0 && !memcmp(x, xs, sizeof x),
           "start 1 from A^-1 b: %d iterations, %lld product (the residual), x unchanged", sa.iters,
           (long long)sa.products);
  /* From a general start: Q = 3n reaches the solution (as above), Q + 1 products. */
  for (int i = 0; i < N; ++i)
    x[i] = nhgd_rng_normal(19, 3, (uint64_t)i, 0, 0);
  rc = nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Minv, b, x, 1, 3 * N, 0.0, "test", work, &sa);
  mc_check(!rc && mc_rel(x, xs, N) < 1e-8 && sa.products == 3 * N + 1 && sa.precs == 3 * N,
           "start 1 from a general x: Q = 3n reaches A^-1 b (error %.2e), Q + 1 products and Q "
           "applications of M^-1 (%lld, %lld)",
           mc_rel(x, xs, N), (long long)sa.products, (long long)sa.precs);
  /* Q = 0: the start comes back untouched, neither operator called. */
  double keep[N];
  for (int i = 0; i < N; ++i)
    x[i] += 1.0;
  memcpy(keep, x, sizeof keep);
  A.calls = Minv.calls = 0;
  rc = nhgd_pcg(N, 1, apply_dense, &A, apply_dense, &Minv, b, x, 1, 0, 1e-10, "test", work, &sa);
  mc_check(!rc && !memcmp(x, keep, sizeof x) && A.calls == 0 && Minv.calls == 0 && sa.iters == 0 &&
               sa.products == 0 && sa.precs == 0,
           "Q = 0 returns the start untouched, no product and no application of M^-1");
}

static void indefinite_case(void) {
  dense_op A;
  make_spd(&A, 20, 10);
  for (int i = 0; i < N; ++i)
    A.a[i + i * N] -= 20.0; /* every eigenvalue negative */
  double b[N], x[N] = {0};
  rhs(b, 21);
  nhgd_error_clear();
  int rc = nhgd_pcg(N, 1, apply_dense, &A, NULL, NULL, b, x, 0, 5, 1e-10, "cg at outer step 7",
                    work, NULL);
  mc_check(rc == NHGD_ERR_NUMERIC && strstr(nhgd_error_message(), "cg at outer step 7: no positive "
                                                                  "curvature"),
           "a negative definite matrix is refused: \"%s\"", nhgd_error_message());
  nhgd_error_clear();
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  exact_inverse_case();
  monotone_case(0);
  monotone_case(1);
  lockstep_case(0);
  lockstep_case(1);
  lockstep_early_stop_case();
  start_cases();
  indefinite_case();
  const int status = mc_finish("pcg");
  MPI_Finalize();
  return status;
}
