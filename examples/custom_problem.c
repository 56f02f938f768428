/* Example: a user-defined bilevel problem written against the public interface only, with a
 * self-check of every derivative by finite differences, then solved by the library: one
 * hypergradient by the exact estimator against the closed form, and a short NHGD run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nhgd/nhgd.h"

/* The problem: least squares with fixed per-feature penalty weights a_j and one tuned scale,
 *
 *   l_i(theta) = (y_i - x_i^T theta)^2 / 2,   w_i = 1,
 *   R(v, theta) = (1/2) exp(v) sum_j a_j theta_j^2          (p = 1, v replicated),
 *   f(v, theta) = (1/n_val) sum_j (y_j - x_j^T theta)^2 / 2 + (mu/2) v^2,
 *
 * where the (mu/2) v^2 hyperprior keeps the scale from running away; eval reports only the
 * per-row part, outer_grad_v the derivative of the prior. */
typedef struct custom_ctx {
  double *a; /* per-feature penalty weights (d entries) */
  double mu; /* strength of the prior on v */
} custom_ctx;

static double residual(const nhgd_split *s, int i, const double *theta) {
  const double *x = s->X + (size_t)i * s->m;
  double r = s->y_real[i];
  for (int j = 0; j < s->m; j++)
    r -= x[j] * theta[j];
  return r;
}

static int c_init(const nhgd_problem *pb, double *theta, double *v) {
  memset(theta, 0, (size_t)pb->d * sizeof(double));
  v[0] = 0.0;
  return 0;
}

static int c_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                        const int *rows, double *g, double *loss) {
  const nhgd_split *s = &pb->data->train;
  memset(g, 0, (size_t)pb->d * sizeof(double));
  *loss = 0.0;
  for (int k = 0; k < nb; k++) {
    double r = residual(s, rows[k], theta);
    const double *x = s->X + (size_t)rows[k] * s->m;
    *loss += 0.5 * r * r;
    for (int j = 0; j < s->m; j++)
      g[j] -= r * x[j];
  }
  return 0;
}

static int c_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                          const int *rows, double *S, double *c) {
  const nhgd_split *s = &pb->data->train;
  for (int k = 0; k < nb; k++) {
    double r = residual(s, rows[k], theta);
    const double *x = s->X + (size_t)rows[k] * s->m;
    for (int j = 0; j < s->m; j++)
      S[(size_t)k * pb->d + j] = -r * x[j];
    c[k] = 1.0;
  }
  return 0;
}

/* Hess l_i = x_i x_i^T: one factor column per row (hess_rank 1). */
static int c_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                          const int *rows, double *Z) {
  const nhgd_split *s = &pb->data->train;
  for (int k = 0; k < nb; k++)
    memcpy(Z + (size_t)k * pb->d, s->X + (size_t)rows[k] * s->m, (size_t)s->m * sizeof(double));
  return 0;
}

static int c_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                 const int *rows, const double *V, double *HV) {
  const nhgd_split *s = &pb->data->train;
  memset(HV, 0, (size_t)pb->d * sizeof(double));
  for (int k = 0; k < nb; k++) {
    const double *x = s->X + (size_t)rows[k] * s->m;
    double xv = 0.0;
    for (int j = 0; j < s->m; j++)
      xv += x[j] * V[j];
    for (int j = 0; j < s->m; j++)
      HV[j] += xv * x[j];
  }
  return 0;
}

static int c_reg(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                 double *grad, double *hdiag) {
  const custom_ctx *ctx = pb->ctx;
  double ev = exp(v[0]), total = 0.0;
  for (int64_t j = 0; j < pb->d; j++) {
    total += 0.5 * ev * ctx->a[j] * theta[j] * theta[j];
    if (grad) grad[j] += ev * ctx->a[j] * theta[j];
    if (hdiag) hdiag[j] = ev * ctx->a[j];
  }
  if (value) *value = total;
  return 0;
}

static int c_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                  const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  if (gtheta) memset(gtheta, 0, (size_t)pb->d * sizeof(double));
  *loss_sum = 0.0;
  for (int i = 0; i < split->n_local; i++) {
    double r = residual(split, i, theta);
    *loss_sum += 0.5 * r * r;
    if (gtheta)
      for (int j = 0; j < split->m; j++)
        gtheta[j] -= r * split->X[(size_t)i * split->m + j];
  }
  if (correct) *correct = 0;
  return 0;
}

static double prior_value(const custom_ctx *ctx, double v) {
  return 0.5 * ctx->mu * v * v;
}

static int c_outer_grad_v(const nhgd_problem *pb, const double *theta, const double *v,
                          double *gv) {
  gv[0] = ((const custom_ctx *)pb->ctx)->mu * v[0];
  return 0;
}

/* J = d(grad_theta R)/dv = exp(v) a .* theta, a single column. */
static int c_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                   double *out) {
  const custom_ctx *ctx = pb->ctx;
  double s = 0.0;
  for (int64_t j = 0; j < pb->d; j++)
    s += ctx->a[j] * theta[j] * u[j];
  out[0] = exp(v[0]) * s;
  return 0;
}

static void c_destroy(nhgd_problem *pb) {
  custom_ctx *ctx = pb->ctx;
  if (ctx) free(ctx->a);
  free(ctx);
  pb->ctx = NULL;
}

/* The callbacks, filled once; the library copies the table with the size this program was
 * compiled with, so a later library with more callbacks still reads it right. */
static const nhgd_problem_ops custom_ops = {
    .init = c_init,
    .inner_grad = c_inner_grad,
    .sample_grads = c_sample_grads,
    .hess_factors = c_hess_factors,
    .hvp = c_hvp,
    .reg = c_reg,
    .eval = c_eval,
    .outer_grad_v = c_outer_grad_v,
    .cross = c_cross,
    .destroy = c_destroy,
};

/* The library allocates the problem; c_destroy frees the state when nhgd_problem_destroy is
 * called. The shape is set on the problem it returns. */
static nhgd_problem *custom_problem_create(const nhgd_data *data, double mu) {
  custom_ctx *ctx = calloc(1, sizeof *ctx);
  double *a = calloc((size_t)data->m, sizeof(double));
  nhgd_problem *pb = NULL;
  if (!ctx || !a ||
      nhgd_problem_create_custom("weighted-ls", data, &custom_ops, sizeof custom_ops, ctx, &pb)) {
    free(ctx);
    free(a);
    return NULL;
  }
  for (int j = 0; j < data->m; j++)
    a[j] = 1.0 + 0.5 * j; /* later features cost more */
  ctx->a = a;
  ctx->mu = mu;
  pb->d = data->m;
  pb->p = 1;
  pb->v_per_sample = 0;
  pb->hess_rank = 1;
  pb->is_classifier = 0;
  return pb;
}

/* ---- a tiny data set built by hand, partitioned over ranks like the data layer does ---- */

#define M 4
#define NTRAIN 12
#define NVAL 6

static void make_split(nhgd_split *s, int64_t n, int rank, int size, double shift) {
  int64_t q = n / size, rem = n % size;
  s->n_global = n;
  s->lo = rank * q + (rank < rem ? rank : rem);
  s->n_local = (int)(q + (rank < rem ? 1 : 0));
  s->m = M;
  s->X = calloc((size_t)s->n_local * M + 1, sizeof(double));
  s->y_real = calloc((size_t)s->n_local + 1, sizeof(double));
  s->y_class = NULL;
  for (int i = 0; i < s->n_local; i++) {
    double gi = (double)(s->lo + i) + shift;
    double y = 0.1 * cos(3.0 * gi);
    for (int j = 0; j < M; j++) {
      double x = sin(1.3 * gi + 0.7 * j + 0.1);
      s->X[(size_t)i * M + j] = x;
      y += (j + 1) * 0.4 * x;
    }
    s->y_real[i] = y;
  }
}

/* ---- finite-difference checks ---- */

#define H 1e-6
static int failures;

static void expect(const char *what, const double *a, const double *b, int n) {
  double err = 0.0, scale = 1e-2;
  for (int i = 0; i < n; i++) {
    err = fmax(err, fabs(a[i] - b[i]));
    scale = fmax(scale, fmax(fabs(a[i]), fabs(b[i])));
  }
  if (!(err <= 1e-6 * scale)) {
    fprintf(stderr, "custom problem: %s: relative error %.3e\n", what, err / scale);
    failures++;
  }
}

static double loss_at(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows) {
  double g[M], loss;
  pb->ops.inner_grad(pb, theta, v, nb, rows, g, &loss);
  return loss;
}

/* <(1/n) sum_i grad l_i + grad R, u> over this rank's rows: the data part does not depend on
 * v, so its difference quotient in v is the cross term. */
static double phi(const nhgd_problem *pb, const double *theta, double v, const double *u, int nb,
                  const int *rows) {
  double g[M], loss, s = 0.0;
  pb->ops.inner_grad(pb, theta, &v, nb, rows, g, &loss);
  for (int j = 0; j < M; j++)
    g[j] /= (double)pb->data->train.n_global;
  pb->ops.reg(pb, theta, &v, NULL, g, NULL);
  for (int j = 0; j < M; j++)
    s += g[j] * u[j];
  return s;
}

/* ---- solving it with the library ---- */

/* theta*(v) of the inner problem, from the normal equations (X^T X / n + e^v diag(a)) theta =
 * X^T y / n, summed over every rank's rows and solved by Gaussian elimination (M x M). */
static void theta_star(const nhgd_problem *pb, double v, double *theta) {
  const nhgd_split *s = &pb->data->train;
  const custom_ctx *ctx = pb->ctx;
  double A[M * (M + 1)] = {0};
  for (int i = 0; i < s->n_local; i++) {
    const double *x = s->X + (size_t)i * M;
    for (int r = 0; r < M; r++) {
      for (int c = 0; c < M; c++)
        A[r * (M + 1) + c] += x[r] * x[c];
      A[r * (M + 1) + M] += x[r] * s->y_real[i];
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, A, M * (M + 1), MPI_DOUBLE, MPI_SUM, pb->data->comm);
  for (int r = 0; r < M; r++) {
    for (int c = 0; c <= M; c++)
      A[r * (M + 1) + c] /= (double)s->n_global;
    A[r * (M + 1) + r] += exp(v) * ctx->a[r];
  }
  for (int k = 0; k < M; k++) /* the matrix is SPD: no pivoting needed */
    for (int r = k + 1; r < M; r++) {
      double f = A[r * (M + 1) + k] / A[k * (M + 1) + k];
      for (int c = k; c <= M; c++)
        A[r * (M + 1) + c] -= f * A[k * (M + 1) + c];
    }
  for (int r = M - 1; r >= 0; r--) {
    double x = A[r * (M + 1) + M];
    for (int c = r + 1; c < M; c++)
      x -= A[r * (M + 1) + c] * theta[c];
    theta[r] = x / A[r * (M + 1) + r];
  }
}

/* Phi(v) = f(v, theta*(v)): the mean validation loss (over all ranks) plus the prior. */
static double outer_value(const nhgd_problem *pb, double v) {
  double theta[M], loss = 0.0;
  theta_star(pb, v, theta);
  pb->ops.eval(pb, &pb->data->val, theta, &v, &loss, NULL, NULL);
  MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, pb->data->comm);
  return loss / (double)pb->data->val.n_global + prior_value(pb->ctx, v);
}

/* Run options with the settings both solves share; NULL on a refused value. */
static nhgd_options *solve_options(const char *estimator, int64_t outer_steps) {
  nhgd_options *o = NULL;
  int rc = nhgd_options_create_run(&o);
  if (!rc) rc = nhgd_options_set_string(o, "estimator", estimator);
  if (!rc) rc = nhgd_options_set_int(o, "batch", 0); /* full batch: converges to theta* */
  if (!rc) rc = nhgd_options_set_int(o, "inner-steps", 3000);
  if (!rc) rc = nhgd_options_set_real(o, "inner-lr", 0.2);
  if (!rc) rc = nhgd_options_set_int(o, "outer-steps", outer_steps);
  if (!rc) rc = nhgd_options_set_string(o, "outer-opt", "sgd");
  if (!rc) rc = nhgd_options_set_int(o, "log-level", NHGD_LOG_WARN);
  if (rc) {
    fprintf(stderr, "custom problem: %s\n", nhgd_error_message());
    nhgd_options_destroy(&o);
  }
  return o;
}

/* The exact estimator's hypergradient at v = 0 against a central difference of the closed
 * form Phi, then five NHGD outer steps that must lower Phi. */
static void solve_checks(nhgd_data *data, nhgd_problem *pb) {
  nhgd_options *o = solve_options("exact", 1);
  nhgd_solver *s = NULL;
  int rc = o ? nhgd_solver_create(MPI_COMM_WORLD, o, data, pb, &s) : NHGD_ERR_ARG;
  if (!rc) rc = nhgd_solver_hypergrad(s);
  double h = rc ? NAN : nhgd_solver_hypergradient(s)[0];
  double want = (outer_value(pb, 1e-5) - outer_value(pb, -1e-5)) / 2e-5;
  if (rc || !(fabs(h - want) <= 1e-6 * (fabs(want) + 1e-12))) {
    fprintf(stderr, "custom problem: exact hypergradient %.12g, closed form %.12g (%s)\n", h, want,
            rc ? nhgd_error_message() : "mismatch");
    failures++;
  }
  nhgd_solver_destroy(&s);
  nhgd_options_destroy(&o);

  o = solve_options("nhgd", 5);
  rc = o ? nhgd_solver_create(MPI_COMM_WORLD, o, data, pb, &s) : NHGD_ERR_ARG;
  if (!rc) rc = nhgd_solver_run(s);
  double v = rc ? NAN : nhgd_solver_v(s)[0];
  double before = outer_value(pb, 0.0), after = rc ? NAN : outer_value(pb, v);
  if (rc || !(after < before)) {
    fprintf(stderr, "custom problem: NHGD did not lower Phi: %.12g -> %.12g (%s)\n", before, after,
            rc ? nhgd_error_message() : "no progress");
    failures++;
  }
  if (data->rank == 0)
    printf("custom problem: solved: exact hypergradient %.6e (closed form %.6e); NHGD took v "
           "from 0 to %.4f, Phi %.6f -> %.6f\n",
           h, want, v, before, after);
  nhgd_solver_destroy(&s);
  nhgd_options_destroy(&o);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  nhgd_data data;
  memset(&data, 0, sizeof data);
  data.comm = MPI_COMM_WORLD;
  MPI_Comm_rank(data.comm, &data.rank);
  MPI_Comm_size(data.comm, &data.size);
  data.task = NHGD_TASK_REGRESSION;
  data.m = M;
  make_split(&data.train, NTRAIN, data.rank, data.size, 0.0);
  make_split(&data.val, NVAL, data.rank, data.size, 100.0);

  nhgd_problem *pb = custom_problem_create(&data, 0.3);
  if (!pb) {
    fprintf(stderr, "custom problem: out of memory\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const int n = data.train.n_local;
  int rows[NTRAIN];
  for (int i = 0; i < n; i++)
    rows[i] = i;
  double theta[M], v = 0.4, t[M], g[M], fd[M], loss;
  for (int j = 0; j < M; j++)
    theta[j] = 0.3 * j - 0.5;

  /* inner gradient, per-sample gradients */
  pb->ops.inner_grad(pb, theta, &v, n, rows, g, &loss);
  for (int j = 0; j < M; j++) {
    memcpy(t, theta, sizeof t);
    t[j] += H;
    double lp = loss_at(pb, t, &v, n, rows);
    t[j] -= 2 * H;
    fd[j] = (lp - loss_at(pb, t, &v, n, rows)) / (2 * H);
  }
  expect("inner_grad", g, fd, M);
  double S[M * NTRAIN], c[NTRAIN], sum[M] = {0};
  pb->ops.sample_grads(pb, theta, &v, n, rows, S, c);
  for (int k = 0; k < n; k++)
    for (int j = 0; j < M; j++)
      sum[j] += c[k] * S[k * M + j];
  expect("sample_grads", sum, g, M);

  /* Hessian-vector product, Hessian factors */
  double V[M] = {0.3, -1.0, 0.5, 2.0}, HV[M], gp[M], gm[M], ZZV[M] = {0}, Z[M * NTRAIN];
  pb->ops.hvp(pb, theta, &v, n, rows, V, HV);
  for (int j = 0; j < M; j++)
    t[j] = theta[j] + H * V[j];
  pb->ops.inner_grad(pb, t, &v, n, rows, gp, &loss);
  for (int j = 0; j < M; j++)
    t[j] = theta[j] - H * V[j];
  pb->ops.inner_grad(pb, t, &v, n, rows, gm, &loss);
  for (int j = 0; j < M; j++)
    fd[j] = (gp[j] - gm[j]) / (2 * H);
  expect("hvp", HV, fd, M);
  pb->ops.hess_factors(pb, theta, &v, n, rows, Z);
  for (int k = 0; k < n * pb->hess_rank; k++) {
    double zv = 0.0;
    for (int j = 0; j < M; j++)
      zv += Z[k * M + j] * V[j];
    for (int j = 0; j < M; j++)
      ZZV[j] += Z[k * M + j] * zv;
  }
  expect("hess_factors", ZZV, HV, M);

  /* regulariser: gradient and diagonal Hessian */
  double rg[M] = {0}, hd[M], rv, rp, rm, rgp[M], rgm[M];
  pb->ops.reg(pb, theta, &v, &rv, rg, hd);
  for (int j = 0; j < M; j++) {
    memcpy(t, theta, sizeof t);
    memset(rgp, 0, sizeof rgp);
    memset(rgm, 0, sizeof rgm);
    t[j] += H;
    pb->ops.reg(pb, t, &v, &rp, rgp, NULL);
    t[j] -= 2 * H;
    pb->ops.reg(pb, t, &v, &rm, rgm, NULL);
    fd[j] = (rp - rm) / (2 * H);
    gp[j] = (rgp[j] - rgm[j]) / (2 * H);
  }
  expect("reg grad", rg, fd, M);
  expect("reg hdiag", hd, gp, M);

  /* outer terms: gradient in theta, gradient in v */
  double ge[M], lp, lm;
  pb->ops.eval(pb, &data.val, theta, &v, &loss, ge, NULL);
  for (int j = 0; j < M; j++) {
    memcpy(t, theta, sizeof t);
    t[j] += H;
    pb->ops.eval(pb, &data.val, t, &v, &lp, NULL, NULL);
    t[j] -= 2 * H;
    pb->ops.eval(pb, &data.val, t, &v, &lm, NULL, NULL);
    fd[j] = (lp - lm) / (2 * H);
  }
  expect("eval gtheta", ge, fd, M);
  double gv, fdv;
  const custom_ctx *ctx = pb->ctx;
  pb->ops.outer_grad_v(pb, theta, &v, &gv);
  fdv = (prior_value(ctx, v + H) - prior_value(ctx, v - H)) / (2 * H);
  expect("outer_grad_v", &gv, &fdv, 1);

  /* cross term J^T u */
  double u[M] = {1.0, -0.5, 0.25, 2.0}, out;
  pb->ops.cross(pb, theta, &v, u, &out);
  fdv = (phi(pb, theta, v + H, u, n, rows) - phi(pb, theta, v - H, u, n, rows)) / (2 * H);
  expect("cross", &out, &fdv, 1);

  /* init */
  pb->ops.init(pb, t, &v);
  for (int j = 0; j < M; j++)
    if (t[j] != 0.0) failures++;

  solve_checks(&data, pb);

  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (data.rank == 0) {
    if (total)
      printf("custom problem: %d derivative check(s) FAILED\n", total);
    else
      printf("custom problem: derivative checks and solves passed\n");
  }
  nhgd_problem_destroy(&pb);
  free(data.train.X);
  free(data.train.y_real);
  free(data.val.X);
  free(data.val.y_real);
  MPI_Finalize();
  return total ? 1 : 0;
}
