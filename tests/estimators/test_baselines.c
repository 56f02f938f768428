/* The baseline estimators cg, neumann and soba against `exact` and dense references, at any
 * rank count:
 *   ridge   deterministic cg (Q >= d) = exact to 1e-8; deterministic neumann with small eta and
 *           large Q = exact to 1e-4; stochastic neumann and cg (--hvp-batch) = a dense replay
 *           of the same minibatch draws to 1e-9 (so the draws do not depend on the rank count);
 *           soba = a dense replay of its whole run to 1e-9; soba with --inner-steps 1 at
 *           --outer-lr 0: z -> H^{-1} grad_theta f at the final theta (1e-6 full batch, 5 %
 *           with minibatches)
 *   logreg  deterministic cg = exact to 1e-6
 *   options --neumann-eta <= 0, --soba-rho 0 refused when parsed; --hvp-steps 0 (cg without
 *           --precond nhgd, neumann), soba with --inner-steps 0 and cg on a problem without
 *           hvp refused on every rank alike. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "common/ridge_oracle.h"
#include "common/synth_data.h"
#include "common/run_opts.h"
#include "common/small_solve.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

static int P, rank_;

typedef small_result result;

/* One hypergrad (full_run 0) or run (1); drop_hvp removes the problem's hvp callback. */
static int solve(const nhgd_data *data, const test_opts *o, int full_run, int drop_hvp, result *r) {
  return small_solve(data, o, NULL, full_run, drop_hvp, r);
}

static void ridge_options(test_opts *o, const char *path, const char *estimator) {
  small_options(o, path, "ridge", estimator, 40);
}

/* Dense ridge on rank 0: H = X^T X / (n sigma^2) + e^v I, and g = grad_theta f at theta. */
typedef struct dense {
  ridge_full r;
  int m;
  double sigma, ev;
  double H[64 * 64], g[64];
} dense;

static void dense_init(dense *D, const char *path, const test_opts *o, const double *theta) {
  ridge_full_read(path, &D->r);
  D->m = (int)D->r.m;
  D->sigma = o->noise_sigma;
  D->ev = exp(o->v_init);
  ridge_hessian_nll(&D->r, D->sigma, D->H);
  for (int a = 0; a < D->m; ++a)
    D->H[a + a * D->m] += D->ev;
  ridge_val_grad(&D->r, theta, D->g);
}

/* out = H_S x over the global minibatch (k, j) of B rows (B = 0: the full H). */
static void dense_hvp(const dense *D, int64_t B, uint64_t seed, int64_t k, int64_t j,
                      const double *x, double *out) {
  const int m = D->m;
  if (B == 0) {
    for (int a = 0; a < m; ++a) {
      out[a] = 0;
      for (int b = 0; b < m; ++b)
        out[a] += D->H[a + b * m] * x[b];
    }
    return;
  }
  memset(out, 0, sizeof(double) * m);
  for (int64_t slot = 0; slot < B; ++slot) {
    uint64_t i =
        nhgd_rng_below(seed, NHGD_STREAM_HVP, (uint64_t)k, (uint64_t)j, (uint64_t)slot, D->r.n);
    const double *xi = D->r.X + i * m;
    double dot = 0;
    for (int a = 0; a < m; ++a)
      dot += xi[a] * x[a];
    for (int a = 0; a < m; ++a)
      out[a] += xi[a] * dot;
  }
  for (int a = 0; a < m; ++a)
    out[a] = out[a] / ((double)B * D->sigma * D->sigma) + D->ev * x[a];
}

static void dense_neumann(const dense *D, int64_t B, uint64_t seed, int Q, double eta, double *u) {
  double p[64], Hp[64];
  memcpy(p, D->g, sizeof(double) * D->m);
  for (int a = 0; a < D->m; ++a)
    u[a] = eta * p[a];
  for (int q = 1; q < Q; ++q) {
    dense_hvp(D, B, seed, 0, q - 1, p, Hp);
    for (int a = 0; a < D->m; ++a) {
      p[a] -= eta * Hp[a];
      u[a] += eta * p[a];
    }
  }
}

static void dense_cg(const dense *D, int64_t B, uint64_t seed, int Q, double *x) {
  const int m = D->m;
  double r[64], p[64], Ap[64], rr = 0, gg = 0;
  for (int a = 0; a < m; ++a) {
    x[a] = 0, r[a] = p[a] = D->g[a];
    rr += r[a] * r[a];
  }
  gg = rr;
  for (int q = 0; q < Q && rr > 1e-24 * gg; ++q) {
    dense_hvp(D, B, seed, 0, 0, p, Ap); /* one minibatch per solve */
    double pAp = 0, rn = 0;
    for (int a = 0; a < m; ++a)
      pAp += p[a] * Ap[a];
    for (int a = 0; a < m; ++a) {
      x[a] += rr / pAp * p[a];
      r[a] -= rr / pAp * Ap[a];
      rn += r[a] * r[a];
    }
    for (int a = 0; a < m; ++a)
      p[a] = r[a] + rn / rr * p[a];
    rr = rn;
  }
}

/* The whole soba run at fixed v replayed densely: per outer step k, g_val at the theta the
 * inner loop starts from, then per inner step t the minibatch (k, t) of the inner loop,
 * z -= rho (H_B z - g_val) and theta -= lr grad g_B, at the same theta; z carried over. */
static void dense_soba(dense *D, const test_opts *o, double *theta, double *z) {
  const int m = D->m;
  const double is2 = 1.0 / (D->sigma * D->sigma), B = (double)o->batch;
  memset(theta, 0, sizeof(double) * m);
  memset(z, 0, sizeof(double) * m);
  for (int64_t k = 0; k < o->outer_steps; ++k) {
    ridge_val_grad(&D->r, theta, D->g);
    for (int64_t t = 0; t < o->inner_steps; ++t) {
      double Hz[64] = {0}, gr[64] = {0};
      for (int64_t slot = 0; slot < o->batch; ++slot) {
        uint64_t i = nhgd_rng_below(o->seed, NHGD_STREAM_BATCH, (uint64_t)k, (uint64_t)t,
                                    (uint64_t)slot, D->r.n);
        const double *xi = D->r.X + i * m;
        double xz = 0, res = -D->r.y[i];
        for (int a = 0; a < m; ++a)
          xz += xi[a] * z[a], res += xi[a] * theta[a];
        for (int a = 0; a < m; ++a)
          Hz[a] += xi[a] * xz * is2, gr[a] += xi[a] * res * is2;
      }
      for (int a = 0; a < m; ++a) {
        z[a] -= o->soba_rho * (Hz[a] / B + D->ev * z[a] - D->g[a]);
        theta[a] -= o->inner_lr * (gr[a] / B + D->ev * theta[a]);
      }
    }
  }
}

static void ridge_cases(const char *path, nhgd_data *data) {
  test_opts o;
  result ex, r;
  ridge_options(&o, path, "exact");
  if (solve(data, &o, 0, 0, &ex)) {
    mc_check(0, "ridge exact: %s", nhgd_error_message());
    return;
  }
  dense D;
  if (rank_ == 0) dense_init(&D, path, &o, ex.theta);
  const int m = (int)ex.d;

  /* Deterministic CG with Q >= d reaches H^{-1} g. */
  ridge_options(&o, path, "cg");
  o.hvp_steps = 2 * m;
  if (solve(data, &o, 0, 0, &r)) {
    mc_check(0, "ridge cg: %s", nhgd_error_message());
  } else {
    double eu = mc_rel(r.u, ex.u, m), eh = mc_rel(r.h, ex.h, r.p);
    mc_check(eu < 1e-8 && eh < 1e-8,
             "ridge: deterministic cg (Q = %d, d = %d) vs exact on %d ranks: u %.2e, h %.2e "
             "(tolerance 1e-8)",
             o.hvp_steps, m, P, eu, eh);
  }

  /* Deterministic Neumann: truncation (1 - eta lambda_min)^Q. */
  ridge_options(&o, path, "neumann");
  o.neumann_eta = 0.05;
  o.hvp_steps = 150;
  if (solve(data, &o, 0, 0, &r)) {
    mc_check(0, "ridge neumann: %s", nhgd_error_message());
  } else if (rank_ == 0) {
    double bound = pow(1.0 - o.neumann_eta * ridge_lambda_min(D.H, m), o.hvp_steps);
    double eu = mc_rel(r.u, ex.u, m), eh = mc_rel(r.h, ex.h, r.p);
    mc_check(eu < 1e-4 && eh < 1e-4,
             "ridge: deterministic neumann (eta %g, Q %d) vs exact on %d ranks: u %.2e, h %.2e "
             "(tolerance 1e-4; truncation bound %.1e)",
             o.neumann_eta, o.hvp_steps, P, eu, eh, bound);
  }

  /* Stochastic Neumann and CG: the same minibatches as a dense replay of the draws. */
  ridge_options(&o, path, "neumann");
  o.neumann_eta = 0.05;
  o.hvp_steps = 30;
  o.hvp_batch = 16;
  if (solve(data, &o, 0, 0, &r)) {
    mc_check(0, "ridge stochastic neumann: %s", nhgd_error_message());
  } else if (rank_ == 0) {
    double want[64];
    dense_neumann(&D, o.hvp_batch, o.seed, o.hvp_steps, o.neumann_eta, want);
    double e = mc_rel(r.u, want, m);
    mc_check(e < 1e-9,
             "ridge: stochastic neumann (--hvp-batch %lld) vs dense replay of the draws on %d "
             "ranks: u %.2e (tolerance 1e-9; vs exact %.2e)",
             (long long)o.hvp_batch, P, e, mc_rel(r.u, ex.u, m));
  }
  ridge_options(&o, path, "cg");
  o.hvp_steps = 12;
  o.hvp_batch = 64;
  if (solve(data, &o, 0, 0, &r)) {
    mc_check(0, "ridge stochastic cg: %s", nhgd_error_message());
  } else if (rank_ == 0) {
    double want[64];
    dense_cg(&D, o.hvp_batch, o.seed, o.hvp_steps, want);
    double e = mc_rel(r.u, want, m);
    mc_check(e < 1e-9,
             "ridge: stochastic cg (--hvp-batch %lld) vs dense replay of the draws on %d ranks: "
             "u %.2e (tolerance 1e-9; vs exact %.2e)",
             (long long)o.hvp_batch, P, e, mc_rel(r.u, ex.u, m));
  }

  /* SOBA at fixed v, replayed densely: minibatches of the inner loop, g_val at the start of
   * each inner loop, z carried across outer steps. */
  ridge_options(&o, path, "soba");
  snprintf(o.outer_opt, sizeof o.outer_opt, "sgd");
  o.outer_lr = 0;
  o.inner_steps = 3;
  o.outer_steps = 20;
  o.batch = 16;
  o.inner_lr = 0.1;
  o.soba_rho = 0.1;
  if (solve(data, &o, 1, 0, &r)) {
    mc_check(0, "ridge soba replay: %s", nhgd_error_message());
  } else if (rank_ == 0) {
    double theta[64], z[64];
    dense_soba(&D, &o, theta, z);
    double ez = mc_rel(r.u, z, m), et = mc_rel(r.theta, theta, m);
    mc_check(ez < 1e-9 && et < 1e-9,
             "ridge: soba (--inner-steps %lld, --batch %lld, %lld outer steps) vs dense replay on "
             "%d ranks: z %.2e, theta %.2e (tolerance 1e-9)",
             (long long)o.inner_steps, (long long)o.batch, (long long)o.outer_steps, P, ez, et);
  }

  /* Single-loop SOBA at fixed v: z -> H^{-1} grad_theta f(theta_final); with minibatches up
   * to the noise of theta and of H_B (deterministic here: the draws do not depend on P). */
  for (int mini = 0; mini <= 1; ++mini) {
    ridge_options(&o, path, "soba");
    snprintf(o.outer_opt, sizeof o.outer_opt, "sgd");
    o.outer_lr = 0;
    o.inner_steps = 1;
    o.outer_steps = mini ? 1000 : 100;
    o.batch = mini ? 128 : 0;
    o.inner_lr = mini ? 0.02 : 0.3;
    o.soba_rho = mini ? 0.02 : 0.2;
    const double tol = mini ? 0.05 : 1e-6;
    if (solve(data, &o, 1, 0, &r)) {
      mc_check(0, "ridge soba: %s", nhgd_error_message());
    } else if (rank_ == 0) {
      dense F;
      double want[64];
      dense_init(&F, path, &o, r.theta);
      ridge_spd_solve(F.H, F.g, want, m);
      double e = mc_rel(r.u, want, m);
      mc_check(e < tol,
               "ridge: soba (--inner-steps 1, --batch %lld, %lld outer steps at --outer-lr 0) vs "
               "H^-1 grad f at the final theta on %d ranks: u %.2e (tolerance %g)",
               (long long)o.batch, (long long)o.outer_steps, P, e, tol);
      ridge_full_free(&F.r);
    }
  }
  if (rank_ == 0) ridge_full_free(&D.r);
}

static void logreg_cases(const char *path, nhgd_data *data) {
  test_opts o;
  test_opts_default(&o);
  snprintf(o.data, sizeof o.data, "%s", path);
  snprintf(o.problem, sizeof o.problem, "logreg");
  snprintf(o.estimator, sizeof o.estimator, "exact");
  o.batch = 32;
  o.inner_steps = 30;
  o.inner_lr = 0.5;
  o.v_init = -1.0;
  o.outer_steps = 1;
  o.eval_every = 0;
  o.seed = 3;
  o.log_level = 1;
  result ex, r;
  if (solve(data, &o, 0, 0, &ex)) {
    mc_check(0, "logreg exact: %s", nhgd_error_message());
    return;
  }
  snprintf(o.estimator, sizeof o.estimator, "cg");
  o.hvp_steps = 3 * (int)ex.d;
  if (solve(data, &o, 0, 0, &r)) {
    mc_check(0, "logreg cg: %s", nhgd_error_message());
    return;
  }
  double eu = mc_rel(r.u, ex.u, ex.d), eh = mc_rel(r.h, ex.h, r.p);
  mc_check(eu < 1e-6 && eh < 1e-6,
           "logreg: deterministic cg (Q = %d, d = %lld) vs exact on %d ranks: u %.2e, h %.2e "
           "(tolerance 1e-6)",
           o.hvp_steps, (long long)ex.d, P, eu, eh);
}

/* A bad value is refused when parsed, with a message that names the option. */
static void parse_refused(const char *name, const char *value) {
  small_parse_refused(name, value, "outside the range");
}

/* Refused by the estimator on every rank alike, with the message of the lowest failing rank. */
static void create_refused(const nhgd_data *data, const test_opts *o, int drop_hvp,
                           const char *phrase, const char *what) {
  small_refused(data, o, NULL, drop_hvp, phrase, what);
}

static void option_cases(const char *path, nhgd_data *data) {
  parse_refused("--neumann-eta", "0");
  parse_refused("--neumann-eta", "-0.5");
  parse_refused("--soba-rho", "0");
  parse_refused("--hvp-batch", "-1");
  test_opts o;
  ridge_options(&o, path, "soba");
  o.inner_steps = 0;
  create_refused(data, &o, 0, "--inner-steps 0", "soba with --inner-steps 0");
  ridge_options(&o, path, "cg");
  o.hvp_steps = 0;
  create_refused(data, &o, 0, "option --hvp-steps 0: estimator cg needs at least one",
                 "cg with --hvp-steps 0 and no preconditioner");
  ridge_options(&o, path, "neumann");
  o.hvp_steps = 0;
  create_refused(data, &o, 0, "option --hvp-steps 0: estimator neumann needs at least one",
                 "neumann with --hvp-steps 0");
  ridge_options(&o, path, "cg");
  create_refused(data, &o, 1, "has no hvp callback", "cg on a problem without hvp");
  ridge_options(&o, path, "neumann");
  create_refused(data, &o, 1, "has no hvp callback", "neumann on a problem without hvp");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  char ridge_path[128], cls_path[128];
  nhgd_data *ridge = NULL, *cls = NULL;
  synth_data_pair("baselines", ridge_path, cls_path, &ridge, &cls);
  ridge_cases(ridge_path, ridge);
  logreg_cases(cls_path, cls);
  option_cases(ridge_path, ridge);
  const int status = mc_finish("baselines");
  nhgd_data_destroy(&ridge);
  nhgd_data_destroy(&cls);
  MPI_Finalize();
  return status;
}
