/* Estimator `exact`: the Hessian of the inner objective over all training rows, formed
 * block-cyclically from per-sample Hessian factors (or, for problems without them such as
 * networks, from d Hessian-vector products with the unit vectors), Cholesky, solve. The
 * reference for every other estimator's error. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/estimator.h"

typedef struct exact_opts {
  int hess_chunk; /* training rows per rank per all-gather */
} exact_opts;

typedef struct exact_state {
  nhgd_bcmat *H;
  int *rows;     /* local rows of one round */
  double *hdiag; /* d */
  double *Zloc;  /* d x chunk*q: this rank's factors of one round */
  double *Zall;  /* d x P*chunk*q: every rank's factors of one round */
  int *counts, *displs;
  int chunk;
  /* Kronecker route (softmax problems): features and w_i A_i per row instead of factors. */
  int kron, m, C;
  double *Xloc, *Aloc, *Xall, *Aall;
  /* Products route (no per-sample factors): the dense Hessian, replicated. */
  int products;
  double *Hd, *e;
} exact_state;

/* Networks have no Hessian factors; the products route keeps a replicated d x d matrix. */
#define EXACT_PRODUCTS_MAX_D 4096

static void exact_release(nhgd_estimator *est) {
  exact_state *s = est->state;
  nhgd_bcmat_destroy(&s->H);
  nhgd_free(&s->hdiag);
  nhgd_free(&s->rows);
  nhgd_free(&s->Zloc);
  nhgd_free(&s->Zall);
  nhgd_free(&s->Hd);
  nhgd_free(&s->e);
  nhgd_free(&s->counts);
  nhgd_free(&s->displs);
  nhgd_free(&s->Xloc);
  nhgd_free(&s->Aloc);
  nhgd_free(&s->Xall);
  nhgd_free(&s->Aall);
}

/* All-gather ncol columns of height len from every rank into all (rank order); *total is
 * the number of columns gathered. */
static int gather_columns(exact_state *s, nhgd_est_ctx *c, const double *mine, int len, int ncol,
                          double *all, int *total) {
  int count = len * ncol;
  NHGD_MPI_CHECK(MPI_Allgather(&count, 1, MPI_INT, s->counts, 1, MPI_INT, c->comm));
  int sum = 0;
  for (int p = 0; p < c->size; ++p) {
    s->displs[p] = sum;
    sum += s->counts[p];
  }
  NHGD_MPI_CHECK(
      MPI_Allgatherv(mine, count, MPI_DOUBLE, all, s->counts, s->displs, MPI_DOUBLE, c->comm));
  *total = sum / len;
  return NHGD_OK;
}

static int fill_dense(void *arg, int mloc, const int64_t *rows, int nloc, const int64_t *cols,
                      double *a, int lld) {
  const exact_state *s = arg;
  const int64_t d = s->H->n;
  for (int jl = 0; jl < nloc; ++jl)
    for (int il = 0; il < mloc; ++il)
      a[il + (size_t)jl * lld] = s->Hd[rows[il] + cols[jl] * d];
  return NHGD_OK;
}

/* H e_j for every j over all local training rows, summed over the ranks, scaled by 1/n, plus
 * Hess R; symmetrised (the products agree to rounding) and copied into the block-cyclic H. */
static int form_hessian_products(exact_state *s, nhgd_est_ctx *c, const double *theta) {
  const nhgd_problem *pb = c->pb;
  const nhgd_split *tr = &c->data->train;
  const size_t d = (size_t)c->d;
  int rc = NHGD_OK;
  for (size_t j = 0; j < d && !rc; ++j) {
    memset(s->e, 0, d * sizeof(double));
    s->e[j] = 1.0;
    rc = pb->ops.hvp(pb, theta, c->v, tr->n_local, s->rows, s->e, s->Hd + j * d);
  }
  NHGD_CHECK(nhgd_error_agree(c->comm, rc));
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, s->Hd, (int)(d * d), MPI_DOUBLE, MPI_SUM, c->comm));
  NHGD_CHECK(pb->ops.reg(pb, theta, c->v, NULL, NULL, s->hdiag));
  const double scale = 1.0 / (double)tr->n_global;
  for (size_t j = 0; j < d; ++j)
    for (size_t i = j; i < d; ++i) {
      const double h = 0.5 * scale * (s->Hd[i + j * d] + s->Hd[j + i * d]);
      s->Hd[i + j * d] = s->Hd[j + i * d] = h;
    }
  for (size_t j = 0; j < d; ++j)
    s->Hd[j + j * d] += s->hdiag[j];
  return nhgd_bcmat_fill(s->H, fill_dense, s);
}

/* H = (1/n) sum_i Z_i Z_i^T + Hess R, lower triangle, summed into the block-cyclic layout:
 * rounds of `chunk` rows per rank, all-gathered, each rank updating only its own blocks. */
static int form_hessian(exact_state *s, nhgd_est_ctx *c, const double *theta) {
  const nhgd_problem *pb = c->pb;
  const nhgd_split *tr = &c->data->train;
  const int q = pb->hess_rank;
  const size_t d = (size_t)c->d;
  int local_rounds = (tr->n_local + s->chunk - 1) / s->chunk, rounds;
  NHGD_MPI_CHECK(MPI_Allreduce(&local_rounds, &rounds, 1, MPI_INT, MPI_MAX, c->comm));
  nhgd_bcmat_zero(s->H);
  NHGD_CHECK(pb->ops.reg(pb, theta, c->v, NULL, NULL, s->hdiag));
  nhgd_bcmat_add_diag(s->H, s->hdiag);
  const double scale = 1.0 / (double)tr->n_global;
  for (int r = 0; r < rounds; ++r) {
    int first = r * s->chunk;
    int nr = tr->n_local - first;
    if (nr < 0) nr = 0;
    if (nr > s->chunk) nr = s->chunk;
    int *rows = s->rows;
    for (int i = 0; i < nr; ++i)
      rows[i] = first + i;
    if (s->kron) {
      int rc = nr ? pb->ops.kron_factors(pb, theta, c->v, nr, rows, s->Xloc, NULL, s->Aloc, NULL)
                  : NHGD_OK;
      NHGD_CHECK(nhgd_error_agree(c->comm, rc));
      int total;
      NHGD_CHECK(gather_columns(s, c, s->Xloc, s->m, nr, s->Xall, &total));
      NHGD_CHECK(gather_columns(s, c, s->Aloc, s->C * s->C, nr, s->Aall, &total));
      NHGD_CHECK(nhgd_bcmat_add_kron(s->H, s->m, s->C, s->Xall, s->Aall, total, scale, 1));
    } else {
      int rc = nr ? pb->ops.hess_factors(pb, theta, c->v, nr, rows, s->Zloc) : NHGD_OK;
      NHGD_CHECK(nhgd_error_agree(c->comm, rc));
      int total;
      NHGD_CHECK(gather_columns(s, c, s->Zloc, (int)d, nr * q, s->Zall, &total));
      NHGD_CHECK(nhgd_bcmat_add_gram(s->H, s->Zall, total, scale, 1));
    }
  }
  return NHGD_OK;
}

static int exact_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  exact_state *s = est->state;
  nhgd_est_ctx *c = est->ctx;
  nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
  int rc = s->products ? form_hessian_products(s, c, theta) : form_hessian(s, c, theta);
  nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
  NHGD_CHECK(rc);
  *c->samples += (double)c->data->train.n_global; /* one Hessian factor per training row */
  nhgd_timer_start(c->timers, NHGD_T_SOLVE);
  rc = nhgd_bcmat_cholesky(s->H);
  if (rc && s->products) {
    nhgd_error_clear();
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "exact: the Hessian of the network's inner objective is not positive definite at "
              "this point (its inverse is not the implicit-function one): train the inner "
              "problem longer or regularise more");
  }
  if (rc == NHGD_ERR_NUMERIC || rc == NHGD_ERR_SCALAPACK) {
    /* Name the setting that gives H the curvature it lacks. */
    char advice[300], text[320];
    nhgd_est_hessian_advice(est, advice, sizeof advice);
    snprintf(text, sizeof text, " in exact's solve: %s", advice);
    nhgd_error_append_fresh(text);
  }
  if (!rc) rc = nhgd_bcmat_solve(s->H, g, u);
  nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
  return rc;
}

/* The fewest ranks (up to 65536) on which a rank's share of the d x d Hessian (rounded up as
 * the nhgd planner does), the fixed part and the all-gathered rows (gather per rank) fit in
 * budget bytes; 0 when no count does. */
static int fewest_ranks(int d, double fixed, double gather, double budget) {
  for (int P = 1; P <= 65536; ++P) {
    const double H = 8.0 * d * (double)d / P * (P > 1 ? 1.15 : 1.0);
    if (fixed + H + gather * (1.0 + P) <= budget) return P;
  }
  return 0;
}

static int exact_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  exact_state *s = est->state;
  if (c->d > INT_MAX) NHGD_FAIL(NHGD_ERR_ARG, "exact: d = %lld is too large", (long long)c->d);
  const int d = (int)c->d, q = c->pb->hess_rank;
  const exact_opts *o = c->opt;
  s->kron = c->kron && c->pb->ops.kron_factors != NULL;
  s->products = !s->kron && !c->pb->ops.hess_factors;
  if (s->products && !c->pb->ops.hvp)
    NHGD_FAIL(NHGD_ERR_ARG, "exact: problem %s has neither Hessian factors nor products",
              c->pb->name);
  if (s->products && d > EXACT_PRODUCTS_MAX_D)
    NHGD_FAIL(NHGD_ERR_ARG,
              "exact: problem %s has no per-sample Hessian factors, so its Hessian is formed from "
              "d products and held on every rank, which is limited to d <= %d (d = %d)",
              c->pb->name, EXACT_PRODUCTS_MAX_D, d);
  s->m = c->pb->kron_m;
  s->C = c->pb->kron_c;
  /* The Kronecker route moves m + C^2 numbers per row instead of d*q: larger rounds. */
  s->chunk = s->kron ? 16 * o->hess_chunk : o->hess_chunk;
  const double per_row = s->kron       ? (double)s->m + (double)s->C * s->C
                         : s->products ? 0.0
                                       : (double)d * q;
  if (per_row * s->chunk * c->size > (double)INT_MAX)
    NHGD_FAIL(NHGD_ERR_ARG,
              "exact: --hess-chunk %d is too large for d = %d (the all-gathered block would "
              "exceed 2^31 entries)",
              s->chunk, d);
  nhgd_grid *g;
  NHGD_CHECK(nhgd_est_grid(c, &g));
  int nb = c->block_size ? c->block_size : nhgd_bcmat_auto_block(d, g);
  const int nrows = s->products ? c->data->train.n_local : s->chunk;
  /* Held by every rank whatever their number: the diagonal, the row list, and on the products
   * route the whole Hessian; the all-gather buffers grow with the ranks, H shrinks. */
  const double fixed =
      8.0 * d + 4.0 * (nrows > 0 ? nrows : 1) + (s->products ? 8.0 * d * (double)d + 8.0 * d : 0.0);
  const double gather = 8.0 * per_row * s->chunk;
  double bytes =
      (double)nhgd_bcmat_local_bytes(d, nb, g->nprow, g->npcol) + fixed + gather * (1.0 + c->size);
  nhgd_log(NHGD_LOG_INFO,
           "exact: %d x %d Hessian on a %d x %d grid, block %d, %s route; %.1f MiB per rank "
           "(busiest)",
           d, d, g->nprow, g->npcol, nb,
           s->kron       ? "Kronecker"
           : s->products ? "Hessian-vector products"
                         : "factored",
           bytes / 1048576.0);
  {
    /* The hint: the fewest ranks whose share of H (as the nhgd planner rounds it) fits. */
    double mib = 0.0, budget = 0.0;
    nhgd_options_get_real(c->options, "mem-per-rank", &mib);
    NHGD_CHECK(nhgd_mem_budget(c->comm, mib, &budget));
    char hint[240] = "no rank count fits: raise --mem-per-rank";
    const double gather1 = gather / s->chunk * (s->kron ? 16 : 1); /* at --hess-chunk 1 */
    const int P = fewest_ranks(d, fixed, gather, budget);
    if (P > 0)
      snprintf(hint, sizeof hint,
               "the smallest rank count that fits is %d (at this memory per rank)", P);
    else if (gather > 0.0 && fewest_ranks(d, fixed, gather1, budget) > 0)
      snprintf(hint, sizeof hint,
               "no rank count fits with --hess-chunk %d: lower it (every rank holds the rows "
               "gathered from all ranks) or raise --mem-per-rank",
               o->hess_chunk);
    if (s->products)
      snprintf(hint + strlen(hint), sizeof hint - strlen(hint),
               " (a network's Hessian is held whole on every rank)");
    NHGD_CHECK(nhgd_est_check_memory(c, "exact", "the Hessian and its buffers", bytes, hint));
  }
  NHGD_CHECK(nhgd_bcmat_create(g, d, nb, &s->H));
  NHGD_CHECK(nhgd_calloc(&s->hdiag, (size_t)d, sizeof(double), "Hessian diagonal"));
  NHGD_CHECK(nhgd_calloc(&s->rows, (size_t)(nrows > 0 ? nrows : 1), sizeof(int), "Hessian rows"));
  if (s->products) {
    for (int i = 0; i < nrows; ++i)
      s->rows[i] = i;
    NHGD_CHECK(nhgd_calloc(&s->Hd, (size_t)d * d, sizeof(double), "dense Hessian"));
    NHGD_CHECK(nhgd_calloc(&s->e, (size_t)d, sizeof(double), "unit vector"));
  } else if (s->kron) {
    const size_t m = (size_t)s->m, C2 = (size_t)s->C * s->C, rows = (size_t)s->chunk;
    NHGD_CHECK(nhgd_calloc(&s->Xloc, m * rows, sizeof(double), "Hessian features"));
    NHGD_CHECK(nhgd_calloc(&s->Aloc, C2 * rows, sizeof(double), "Hessian class factors"));
    NHGD_CHECK(nhgd_calloc(&s->Xall, m * rows * c->size, sizeof(double), "gathered features"));
    NHGD_CHECK(nhgd_calloc(&s->Aall, C2 * rows * c->size, sizeof(double), "gathered factors"));
  } else {
    NHGD_CHECK(nhgd_calloc(&s->Zloc, (size_t)d * s->chunk * q, sizeof(double), "Hessian factors"));
    NHGD_CHECK(nhgd_calloc(&s->Zall, (size_t)d * s->chunk * q * c->size, sizeof(double),
                           "gathered Hessian factors"));
  }
  NHGD_CHECK(nhgd_calloc(&s->counts, (size_t)c->size, sizeof(int), "counts"));
  NHGD_CHECK(nhgd_calloc(&s->displs, (size_t)c->size, sizeof(int), "displacements"));
  return NHGD_OK;
}

static const nhgd_option_spec exact_specs[] = {
    {"hess-chunk", NHGD_OPT_INT, offsetof(exact_opts, hess_chunk), sizeof(int), "32", 1, 1 << 20,
     NULL, "training rows per rank per all-gather when forming the exact Hessian", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

static const nhgd_option_scope exact_scopes[] = {{NULL, "estimator=exact"}, {NULL, NULL}};
static const nhgd_option_block exact_options = {"exact", exact_specs, sizeof(exact_opts), NULL,
                                                exact_scopes};

const nhgd_estimator_desc nhgd_estimator_exact = {
    .name = "exact",
    .options = &exact_options,
    .state_size = sizeof(exact_state),
    .ops = {.needs_observe = 0,
            .solve = exact_solve,
            .release = exact_release,
            .advice = nhgd_est_hessian_advice},
    .init = exact_init,
};
