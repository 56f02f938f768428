/* The nbo estimator (src/estimators/nbo.c) against exact references, at any rank count:
 *   exact solve  full batches, --nbo-solver cg with Q = 3d: u equals the `exact` estimator's u
 *                (the same inner loop, so the same theta_T and g_f) to 1e-10, and the Newton
 *                step d = theta_T - theta (theta_T from the exact run, which takes no step)
 *                solves H(theta_T) d = grad g(theta_T) to a relative residual of 1e-10, H and
 *                grad g taken here from the problem's own callbacks over every row; on ridge,
 *                whose inner problem is quadratic, theta is then the closed-form minimiser
 *                (1e-10). On ridge and logreg; --nbo-newton 0 leaves theta at theta_T.
 *   SOBA         --nbo-solver gd, one step (Q = 1) from d = 0 and u = u_prev, eta = rho, with
 *                --inner-steps 0 and full batches (--batch 0, --nbo-batch 0), gives
 *                  theta <- theta - rho grad g(theta),  u <- u_prev - rho (H u_prev - g_f),
 *                both at the theta the outer step starts from, then h at the new theta: SOBA's
 *                theta and z steps with --inner-steps 1, --inner-lr rho, --soba-rho rho (its
 *                one SGD step and its z step are taken at the same theta, g_val at the loop's
 *                start). Over 6 outer steps with v moving (outer SGD): theta, u, v and h agree
 *                to 1e-12. The correspondence needs full batches: SOBA's products use the inner
 *                minibatches, nbo's draws of its own.
 *   gd, sgd      many gd steps reach the exact u (1e-8); sgd with minibatches stays within 5 %
 *                of it and does not depend on the rank count (the draws are counter-based).
 *   precond      --precond nhgd with --nbo-steps 0 and --nbo-newton 0 gives --estimator nhgd's
 *                run bit for bit (u, h, theta and v after 3 outer steps: u_0 = M^{-1} g_f is
 *                NHGD's u); with the Newton step and Q = 0, theta moves by M^{-1} grad g while
 *                u stays NHGD's; preconditioned cg with Q = 3d reaches exact's u (1e-10) and
 *                the Newton step (1e-10).
 *   options      --nbo-lr 0, --nbo-batch -1 and --nbo-steps -1 refused when parsed; nbo on
 *                a problem without hvp refused on every rank alike (--nbo-steps 0 without a
 *                preconditioner: tests/system/cli/bad_input.sh). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ridge_oracle.h"
#include "common/run_opts.h"
#include "common/small_solve.h"
#include "common/synth_data.h"
#include "nhgd/nhgd.h"

#include "common/mpi_check.h"

static int P, rank_;

typedef small_result result;

static void base_options(test_opts *o, const char *path, const char *problem,
                         const char *estimator) {
  small_options(o, path, problem, estimator, 25);
}

/* Collective: out = H(theta) x and grad = grad g(theta), over every training row, from the
 * problem's callbacks at its initial v (what a hypergrad run uses). */
static int newton_residual(const nhgd_data *data, const test_opts *o, const double *theta,
                           const double *x, double *rel) {
  nhgd_problem_params pp;
  nhgd_problem_params_default(&pp);
  pp.noise_sigma = o->noise_sigma;
  pp.v_init = o->v_init;
  nhgd_problem *pb = NULL;
  int rc = nhgd_problem_create(o->problem, data, &pp, &pb);
  if (rc) return rc;
  const int64_t d = pb->d, n = data->train.n_local;
  double th0[64], v[64], hd[64], sum[129], loss = 0.0;
  int *rows = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; i < n; ++i)
    rows[i] = (int)i;
  rc = pb->ops.init(pb, th0, v);
  if (!rc) rc = pb->ops.hvp(pb, theta, v, (int)n, rows, x, sum);
  if (!rc) rc = pb->ops.inner_grad(pb, theta, v, (int)n, rows, sum + d, &loss);
  free(rows);
  if (!rc) {
    MPI_Allreduce(MPI_IN_PLACE, sum, (int)(2 * d), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double g[64] = {0};
    rc = pb->ops.reg(pb, theta, v, NULL, g, hd);
    const double invn = 1.0 / (double)data->train.n_global;
    double rr = 0.0, gg = 0.0;
    for (int64_t j = 0; j < d; ++j) {
      const double Hx = sum[j] * invn + hd[j] * x[j];
      const double gj = sum[d + j] * invn + g[j];
      rr += (Hx - gj) * (Hx - gj);
      gg += gj * gj;
    }
    *rel = sqrt(rr / gg);
  }
  nhgd_problem_destroy(&pb);
  return rc;
}

static void exact_cases(const char *problem, const char *path, const nhgd_data *data) {
  test_opts o;
  result ex, r;
  base_options(&o, path, problem, "exact");
  o.inner_steps = 4; /* theta_T far enough from the minimiser that grad g is not rounding */
  if (!strcmp(problem, "logreg")) o.inner_lr = 0.5, o.v_init = -1.0;
  if (small_solve(data, &o, NULL, 0, 0, &ex)) {
    mc_check(0, "%s exact: %s", problem, nhgd_error_message());
    return;
  }
  const int64_t d = ex.d;
  char q[16];
  snprintf(q, sizeof q, "%d", (int)(3 * d));
  const char *kv[] = {"nbo-solver", "cg", "nbo-steps", q, "nbo-batch", "0", NULL};
  snprintf(o.estimator, sizeof o.estimator, "nbo");
  if (small_solve(data, &o, kv, 0, 0, &r)) {
    mc_check(0, "%s nbo cg: %s", problem, nhgd_error_message());
    return;
  }
  double dstep[64], rel = NAN;
  for (int64_t j = 0; j < d; ++j)
    dstep[j] = ex.theta[j] - r.theta[j];
  int rc = nhgd_error_agree(MPI_COMM_WORLD, newton_residual(data, &o, ex.theta, dstep, &rel));
  const double eu = mc_rel(r.u, ex.u, d);
  mc_check(!rc && eu < 1e-10 && rel < 1e-10,
           "%s: nbo cg (Q = %s, full batch) on %d ranks: u vs exact %.2e, Newton residual "
           "|H d - grad g| / |grad g| %.2e (tolerance 1e-10)",
           problem, q, P, eu, rel);
  if (!strcmp(problem, "ridge") && rank_ == 0) {
    ridge_full R;
    ridge_full_read(path, &R);
    double star[64];
    ridge_theta_star(&R, o.noise_sigma, o.v_init, star);
    const double et = mc_rel(r.theta, star, d);
    mc_check(et < 1e-10, "ridge: theta after nbo's Newton step vs the closed-form minimiser: %.2e",
             et);
    ridge_full_free(&R);
  }
  const char *kv0[] = {"nbo-solver", "cg",        "nbo-steps", q,   "nbo-newton",
                       "0",          "nbo-batch", "0",         NULL};
  if (small_solve(data, &o, kv0, 0, 0, &r)) {
    mc_check(0, "%s nbo --nbo-newton 0: %s", problem, nhgd_error_message());
    return;
  }
  mc_check(mc_rel(r.theta, ex.theta, d) == 0.0 && mc_rel(r.u, ex.u, d) < 1e-10,
           "%s: nbo --nbo-newton 0 leaves theta at theta_T (%.2e) and u = exact's (%.2e)", problem,
           mc_rel(r.theta, ex.theta, d), mc_rel(r.u, ex.u, d));

  /* Many gd steps reach the same u; sgd on minibatches comes close. */
  const char *kvg[] = {"nbo-solver", "gd",        "nbo-steps", "400", "nbo-lr",
                       "0.5",        "nbo-batch", "0",         NULL};
  if (small_solve(data, &o, kvg, 0, 0, &r)) {
    mc_check(0, "%s nbo gd: %s", problem, nhgd_error_message());
  } else {
    mc_check(mc_rel(r.u, ex.u, d) < 1e-8, "%s: nbo gd (400 steps, eta 0.5) vs exact: u %.2e",
             problem, mc_rel(r.u, ex.u, d));
  }
  const char *kvs[] = {"nbo-solver", "sgd",       "nbo-steps", "8000", "nbo-lr",
                       "0.005",      "nbo-batch", "100",       NULL};
  if (small_solve(data, &o, kvs, 0, 0, &r)) {
    mc_check(0, "%s nbo sgd: %s", problem, nhgd_error_message());
  } else {
    mc_check(mc_rel(r.u, ex.u, d) < 0.05,
             "%s: nbo sgd (8000 steps of 100 rows, eta 0.005) vs exact: u %.2e (tolerance 0.05)",
             problem, mc_rel(r.u, ex.u, d));
  }
}

/* --precond nhgd: Q = 0 is NHGD; Q large is exact. */
static void precond_cases(const char *path, const nhgd_data *data) {
  test_opts o;
  result nh, r, ex;
  base_options(&o, path, "logreg", "nhgd");
  o.batch = 32;
  o.inner_steps = 6;
  o.inner_lr = 0.5;
  o.v_init = -1.0;
  o.outer_steps = 3;
  snprintf(o.efim_route, sizeof o.efim_route, "kfac");
  if (small_solve(data, &o, NULL, 1, 0, &nh)) {
    mc_check(0, "logreg nhgd: %s", nhgd_error_message());
    return;
  }
  snprintf(o.estimator, sizeof o.estimator, "nbo");
  const char *kv0[] = {"precond", "nhgd", "nbo-steps", "0", "nbo-newton", "0", NULL};
  if (small_solve(data, &o, kv0, 1, 0, &r)) {
    mc_check(0, "nbo --precond nhgd --nbo-steps 0: %s", nhgd_error_message());
  } else {
    const double e = mc_rel(r.u, nh.u, nh.d) + mc_rel(r.h, nh.h, nh.p) +
                     mc_rel(r.theta, nh.theta, nh.d) + mc_rel(r.v, nh.v, nh.p);
    mc_check(e == 0.0,
             "logreg (kfac): nbo --precond nhgd --nbo-steps 0 --nbo-newton 0 vs nhgd, 3 outer "
             "steps on %d ranks: summed relative differences of u, h, theta, v %.2e (want 0)",
             P, e);
  }
  o.outer_steps = 1;
  snprintf(o.estimator, sizeof o.estimator, "nhgd");
  if (small_solve(data, &o, NULL, 0, 0, &nh)) return;
  snprintf(o.estimator, sizeof o.estimator, "nbo");
  const char *kv1[] = {"precond", "nhgd", "nbo-steps", "0", NULL};
  if (small_solve(data, &o, kv1, 0, 0, &r)) {
    mc_check(0, "nbo --precond nhgd --nbo-steps 0 with Newton: %s", nhgd_error_message());
  } else {
    mc_check(mc_rel(r.u, nh.u, nh.d) == 0.0 && mc_rel(r.theta, nh.theta, nh.d) > 0.0,
             "logreg: nbo --precond nhgd --nbo-steps 0 with the Newton step: u is NHGD's "
             "(%.2e), theta moved by M^-1 grad g (%.2e from theta_T)",
             mc_rel(r.u, nh.u, nh.d), mc_rel(r.theta, nh.theta, nh.d));
  }
  o.batch = 0;
  snprintf(o.estimator, sizeof o.estimator, "exact");
  if (small_solve(data, &o, NULL, 0, 0, &ex)) return;
  char q[16];
  snprintf(q, sizeof q, "%d", (int)(3 * ex.d));
  snprintf(o.estimator, sizeof o.estimator, "nbo");
  const char *kvq[] = {"precond", "nhgd",      "nbo-solver", "cg", "nbo-steps",
                       q,         "nbo-batch", "0",          NULL};
  if (small_solve(data, &o, kvq, 0, 0, &r)) {
    mc_check(0, "nbo --precond nhgd cg: %s", nhgd_error_message());
    return;
  }
  double dstep[64], rel = NAN;
  for (int64_t j = 0; j < ex.d; ++j)
    dstep[j] = ex.theta[j] - r.theta[j];
  int rc = nhgd_error_agree(MPI_COMM_WORLD, newton_residual(data, &o, ex.theta, dstep, &rel));
  mc_check(!rc && mc_rel(r.u, ex.u, ex.d) < 1e-10 && rel < 1e-10,
           "logreg: nbo --precond nhgd, cg with Q = %s, full batch: u vs exact %.2e, Newton "
           "residual %.2e (tolerance 1e-10)",
           q, mc_rel(r.u, ex.u, ex.d), rel);
}

/* nbo gd, one step, --inner-steps 0 against soba with --inner-steps 1: see the header. */
static void soba_case(const char *path, const nhgd_data *data) {
  const double rho = 0.2;
  char rs[32];
  snprintf(rs, sizeof rs, "%.17g", rho);
  test_opts o;
  result a, b;
  base_options(&o, path, "ridge", "soba");
  snprintf(o.outer_opt, sizeof o.outer_opt, "sgd");
  o.outer_lr = 0.05;
  o.outer_steps = 6;
  o.inner_steps = 1;
  o.inner_lr = rho;
  o.soba_rho = rho;
  if (small_solve(data, &o, NULL, 1, 0, &a)) {
    mc_check(0, "soba: %s", nhgd_error_message());
    return;
  }
  snprintf(o.estimator, sizeof o.estimator, "nbo");
  o.inner_steps = 0;
  const char *kv[] = {"nbo-solver", "gd", "nbo-steps", "1", "nbo-lr", rs, "nbo-batch", "0", NULL};
  if (small_solve(data, &o, kv, 1, 0, &b)) {
    mc_check(0, "nbo gd as soba: %s", nhgd_error_message());
    return;
  }
  const double et = mc_rel(b.theta, a.theta, a.d), eu = mc_rel(b.u, a.u, a.d),
               ev = mc_rel(b.v, a.v, a.p), eh = mc_rel(b.h, a.h, a.p);
  mc_check(et < 1e-12 && eu < 1e-12 && ev < 1e-12 && eh < 1e-12,
           "nbo gd (Q = 1, eta %g, --inner-steps 0) vs soba (--inner-steps 1, --inner-lr and "
           "--soba-rho %g), 6 outer steps on %d ranks: theta %.2e, u %.2e, v %.2e, h %.2e "
           "(tolerance 1e-12)",
           rho, rho, P, et, eu, ev, eh);
}

static void option_cases(const char *path, const nhgd_data *data) {
  small_parse_refused("--nbo-lr", "0", "outside the range");
  small_parse_refused("--nbo-batch", "-1", "outside the range");
  small_parse_refused("--nbo-steps", "-1", "outside the range");
  small_parse_refused("--nbo-solver", "newton", "newton");
  test_opts o;
  base_options(&o, path, "ridge", "nbo");
  small_refused(data, &o, NULL, 1, "has no hvp callback", "nbo on a problem without hvp");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  char ridge_path[128], cls_path[128];
  nhgd_data *ridge = NULL, *cls = NULL;
  synth_data_pair("nbo", ridge_path, cls_path, &ridge, &cls);
  exact_cases("ridge", ridge_path, ridge);
  exact_cases("logreg", cls_path, cls);
  soba_case(ridge_path, ridge);
  precond_cases(cls_path, cls);
  option_cases(ridge_path, ridge);
  const int status = mc_finish("nbo");
  nhgd_data_destroy(&ridge);
  nhgd_data_destroy(&cls);
  MPI_Finalize();
  return status;
}
