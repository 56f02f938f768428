/* Estimator `exact`: the Hessian of the inner objective over all training rows, formed
 * block-cyclically from per-sample Hessian factors, Cholesky, solve. The reference for
 * every other estimator's error. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "outer/engine.h"

typedef struct exact_state {
  nhgd_bcmat *H;
  double *hdiag; /* d */
  double *Zloc;  /* d x chunk*q: this rank's factors of one round */
  double *Zall;  /* d x P*chunk*q: every rank's factors of one round */
  int *counts, *displs;
  int chunk;
} exact_state;

static void exact_destroy(nhgd_estimator *est) {
  exact_state *s = est->state;
  if (!s) return;
  nhgd_bcmat_destroy(&s->H);
  nhgd_free(&s->hdiag);
  nhgd_free(&s->Zloc);
  nhgd_free(&s->Zall);
  nhgd_free(&s->counts);
  nhgd_free(&s->displs);
  nhgd_free(&est->state);
}

static int exact_begin(nhgd_estimator *est, nhgd_engine *e, int64_t k) {
  return NHGD_OK;
}

/* H = (1/n) sum_i Z_i Z_i^T + Hess R, lower triangle, summed into the block-cyclic layout:
 * rounds of `chunk` rows per rank, all-gathered, each rank updating only its own blocks. */
static int form_hessian(exact_state *s, nhgd_engine *e, const double *theta) {
  const nhgd_problem *pb = e->pb;
  const nhgd_split *tr = &e->data->train;
  const int q = pb->hess_rank;
  const size_t d = (size_t)e->d;
  int local_rounds = (tr->n_local + s->chunk - 1) / s->chunk, rounds;
  NHGD_MPI_CHECK(MPI_Allreduce(&local_rounds, &rounds, 1, MPI_INT, MPI_MAX, e->comm));
  nhgd_bcmat_zero(s->H);
  NHGD_CHECK(pb->reg(pb, theta, e->v, NULL, NULL, s->hdiag));
  nhgd_bcmat_add_diag(s->H, s->hdiag);
  const double scale = 1.0 / (double)tr->n_global;
  for (int r = 0; r < rounds; ++r) {
    int first = r * s->chunk;
    int nr = tr->n_local - first;
    if (nr < 0) nr = 0;
    if (nr > s->chunk) nr = s->chunk;
    int *rows = e->rows;
    for (int i = 0; i < nr; ++i) rows[i] = first + i;
    int rc = nr ? pb->hess_factors(pb, theta, e->v, nr, rows, s->Zloc) : NHGD_OK;
    NHGD_CHECK(nhgd_error_agree(e->comm, rc));
    int mine = (int)(d * (size_t)nr * (size_t)q);
    NHGD_MPI_CHECK(MPI_Allgather(&mine, 1, MPI_INT, s->counts, 1, MPI_INT, e->comm));
    int total = 0;
    for (int p = 0; p < e->size; ++p) {
      s->displs[p] = total;
      total += s->counts[p];
    }
    NHGD_MPI_CHECK(MPI_Allgatherv(s->Zloc, mine, MPI_DOUBLE, s->Zall, s->counts, s->displs,
                                  MPI_DOUBLE, e->comm));
    NHGD_CHECK(nhgd_bcmat_add_gram(s->H, s->Zall, (int)(total / (int)d), scale, 1));
  }
  return NHGD_OK;
}

static int exact_solve(nhgd_estimator *est, nhgd_engine *e, const double *theta,
                       const double *g, double *u) {
  exact_state *s = est->state;
  nhgd_timer_start(&e->timers, NHGD_T_CURVATURE);
  int rc = form_hessian(s, e, theta);
  nhgd_timer_stop(&e->timers, NHGD_T_CURVATURE);
  NHGD_CHECK(rc);
  nhgd_timer_start(&e->timers, NHGD_T_SOLVE);
  rc = nhgd_bcmat_cholesky(s->H);
  if (!rc) rc = nhgd_bcmat_solve(s->H, g, u);
  nhgd_timer_stop(&e->timers, NHGD_T_SOLVE);
  return rc;
}

int nhgd_estimator_exact_init(nhgd_estimator *est, nhgd_engine *e) {
  exact_state *s;
  NHGD_CHECK(nhgd_calloc(&s, 1, sizeof *s, "exact estimator"));
  est->state = s;
  est->destroy = exact_destroy;
  est->begin = exact_begin;
  est->solve = exact_solve;
  est->needs_observe = 0;
  if (e->d > INT_MAX) NHGD_FAIL(NHGD_ERR_ARG, "exact: d = %lld is too large", (long long)e->d);
  const int d = (int)e->d, q = e->pb->hess_rank;
  s->chunk = e->opt.hess_chunk;
  if ((double)d * s->chunk * q * e->size > (double)INT_MAX)
    NHGD_FAIL(NHGD_ERR_ARG,
              "exact: --hess-chunk %d is too large for d = %d (the all-gathered block would "
              "exceed 2^31 entries)",
              s->chunk, d);
  nhgd_grid *g;
  NHGD_CHECK(nhgd_engine_grid(e, &g));
  int nb = e->opt.block_size ? e->opt.block_size : nhgd_bcmat_auto_block(d, g);
  double bytes = (double)nhgd_bcmat_local_bytes(d, nb, g->nprow, g->npcol) +
                 8.0 * d * (double)s->chunk * q * (1.0 + e->size);
  nhgd_log(NHGD_LOG_INFO,
           "exact: %d x %d Hessian on a %d x %d grid, block %d; %.1f MiB per rank (busiest)",
           d, d, g->nprow, g->npcol, nb, bytes / 1048576.0);
  NHGD_CHECK(nhgd_bcmat_create(g, d, nb, &s->H));
  NHGD_CHECK(nhgd_calloc(&s->hdiag, (size_t)d, sizeof(double), "Hessian diagonal"));
  NHGD_CHECK(nhgd_calloc(&s->Zloc, (size_t)d * s->chunk * q, sizeof(double), "Hessian factors"));
  NHGD_CHECK(nhgd_calloc(&s->Zall, (size_t)d * s->chunk * q * e->size, sizeof(double),
                         "gathered Hessian factors"));
  NHGD_CHECK(nhgd_calloc(&s->counts, (size_t)e->size, sizeof(int), "counts"));
  NHGD_CHECK(nhgd_calloc(&s->displs, (size_t)e->size, sizeof(int), "displacements"));
  return NHGD_OK;
}
