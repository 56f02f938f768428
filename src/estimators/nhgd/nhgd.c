/* Estimator `nhgd`: u = M^{-1} g with M = D + sum_t omega_t sum_{i in B_t} c_i s_i s_i^T, the
 * empirical Fisher of the per-sample gradients inner SGD computed, kept up to date during the
 * inner loop by one of four routes (docs/algorithm.md 2.1):
 *   online      Woodbury update of the block-cyclic inverse A = M^{-1} after every step
 *   accumulate  block-cyclic sum of outer products, one Cholesky and one solve at the end
 *   gram        the N x N system I + U^T D^{-1} U (block-cyclic), no d x d matrix at all
 *   dense       every rank holds M densely: the reference the tests compare against
 *   kfac        M ~= tau G (x) A + D from Kronecker factors, solved exactly (kfac.h); for
 *               networks one such block per layer (kfac_net.h)
 * Step weights: omega_t = 1/(T B) (plain mean) or (1-beta) beta^(T-1-t) / B (moving average);
 * both are known when step t is observed, so every route yields the same M.
 *
 * As another estimator's preconditioner (ctx->precond, estimators/precond.h) the solve of an
 * outer step is followed by more applications of M^{-1} (nhgd_efim_reapply): every route keeps
 * what its solve factored until the next inner loop begins. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/util.h"
#include "estimators/nhgd/nhgd.h"
#include "estimators/nhgd/plan.h"
#include "estimators/nhgd/kfac.h"
#include "estimators/nhgd/kfac_net.h"
#include "problems/builtin.h"

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);

/* The estimator's option block (its table is at the end of this file). */
typedef struct est_nhgd_opts {
  char route[16];       /* auto | online | accumulate | gram | dense | kfac */
  double damping;       /* lambda_F added to D */
  double weight_exp;    /* c_s = w_s^exp */
  char mode[8];         /* mean | ema */
  double beta;          /* ema: in (0, 1) */
  int overlap;          /* fold step t into the EFIM while SGD takes step t+1 */
  double mem_per_rank;  /* MiB a rank may use (0: from MemAvailable) */
  char kfac_g[16];      /* kfac: empirical | model */
  char kfac_layout[16]; /* kfac: auto | replicated | distributed */
  int64_t samples;      /* per-sample gradients of a step that feed F (0: all B) */
  int64_t refresh;      /* kfac: outer steps one set of summed factors serves */
} est_nhgd_opts;

typedef struct nhgd_state {
  const est_nhgd_opts *o;
  int route;
  int kron;    /* per-sample gradients travel as (x_i, r_i) instead of d-vectors */
  int layered; /* the problem has the layered Kronecker form of networks */
  int sep;     /* gram with Kronecker: D^{-1} reshaped m x C is a_j b_c */
  int keep;    /* a preconditioner: keep what the solve factors (nhgd_efim_reapply) */
  int m, C, d;
  int64_t T, B;              /* inner steps, global batch */
  int64_t Bf;                /* samples of a step that feed F: B, or K < B when subsampled */
  int64_t k;                 /* outer step of the current inner loop */
  const nhgd_est_ctx *c;     /* for the subsample draw */
  int *slots, *sub_rows;     /* subsample: slots of the global batch, local rows chosen */
  int width;                 /* doubles per sample in transit: 1 + m + C or 1 + d */
  int bmax;                  /* most samples one rank can own in a step */
  double *dg, *dinv, *a, *b; /* D, D^{-1}, separable factors */
  /* one step in transit */
  double *packed_loc, *packed_all;
  double *Xloc, *Rloc, *cloc;
  int *counts, *displs;
  int pending, pending_total;
  MPI_Request req;
  int64_t t;
  /* d x B workspace: scaled sample columns U, and W = A U (online) */
  double *U, *W, *S;
  double *work;  /* scratch of the block-cyclic products */
  nhgd_bcmat *A; /* online: M^{-1}; accumulate: F */
  /* gram: stored samples (packed), the N x N system (factored; kept until the next inner loop
   * when keep) and a right-hand side of it */
  double *store;
  int64_t nstored, cap;
  nhgd_bcmat *K;
  double *tz;
  double *Mdense;        /* dense reference */
  double bytes;          /* payload this rank received from collectives in the current inner loop */
  nhgd_kfac kf;          /* kfac route */
  double *Aloc;          /* kfac with the model's G: c_s (diag p - p p^T) per sample */
  double *wloc;          /* kfac: the Fisher weight of each local sample */
  nhgd_kfac_net kn;      /* kfac route of a network */
  int fresh;             /* kfac: this inner loop's factors are summed and solved */
  double **la, **lg;     /* kfac of a network: each layer's inputs and gradients per sample */
  char refusal_buf[256]; /* why kfac does not apply, when the reason names a layer */
} nhgd_state;

static int grid_block(nhgd_est_ctx *c, int n, nhgd_grid **g, int *nb) {
  NHGD_CHECK(nhgd_est_grid(c, g));
  *nb = c->block_size ? c->block_size : nhgd_bcmat_auto_block(n, *g);
  return NHGD_OK;
}

static void nhgd_release(nhgd_estimator *est) {
  nhgd_state *s = est->state;
  if (s->pending) MPI_Wait(&s->req, MPI_STATUS_IGNORE);
  nhgd_bcmat_destroy(&s->A);
  nhgd_bcmat_destroy(&s->K);
  double **bufs[] = {&s->dg,    &s->dinv, &s->a,      &s->b,   &s->packed_loc, &s->packed_all,
                     &s->Xloc,  &s->Rloc, &s->cloc,   &s->U,   &s->W,          &s->S,
                     &s->store, &s->tz,   &s->Mdense, &s->work};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_free(&s->counts);
  nhgd_free(&s->displs);
  nhgd_free(&s->slots);
  nhgd_free(&s->sub_rows);
  nhgd_free(&s->Aloc);
  nhgd_free(&s->wloc);
  nhgd_kfac_free(&s->kf);
  for (int l = 0; l < s->kn.L; ++l) {
    if (s->la) nhgd_free(&s->la[l]);
    if (s->lg) nhgd_free(&s->lg[l]);
  }
  nhgd_free(&s->la);
  nhgd_free(&s->lg);
  nhgd_kfac_net_free(&s->kn);
}

/* D^{-1} and its separable form from D (in s->dg). */
static int derive_damping(nhgd_state *s) {
  for (int j = 0; j < s->d; ++j) {
    if (!(s->dg[j] > 0.0))
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "nhgd: D = Hess R + damping has a non-positive entry %g at %d; raise "
                "--efim-damping",
                s->dg[j], j);
    s->dinv[j] = 1.0 / s->dg[j];
  }
  s->sep = 0;
  if (s->kron) {
    /* D^{-1}[j + c m] = a_j b_c ? */
    s->sep = 1;
    for (int j = 0; j < s->m; ++j)
      s->a[j] = s->dinv[j];
    for (int c = 0; c < s->C; ++c)
      s->b[c] = s->dinv[(size_t)c * s->m] / s->dinv[0];
    for (int c = 0; c < s->C && s->sep; ++c)
      for (int j = 0; j < s->m; ++j) {
        double want = s->dinv[j + (size_t)c * s->m], got = s->a[j] * s->b[c];
        if (fabs(want - got) > 1e-14 * fabs(want)) {
          s->sep = 0;
          break;
        }
      }
  }
  return NHGD_OK;
}

/* NULL when D (s->dg) is the same for every class, D[j + c m] = D[j], as the exact solve of
 * the kfac route needs; else why not. */
static const char *class_damping_refusal(const nhgd_state *s) {
  for (int c = 1; c < s->C; ++c)
    for (int j = 0; j < s->m; ++j)
      if (s->dg[j + (size_t)c * s->m] != s->dg[j])
        return "the damping D = Hess R + lambda_F differs between classes, so M does not split "
               "into one system per class direction";
  return NULL;
}

static int check_class_damping(nhgd_state *s) {
  const nhgd_problem *pb = s->c->pb;
  const char *why =
      s->layered ? nhgd_kfac_net_damping_refusal(pb->n_layers, pb->layer_in, pb->layer_out, s->dg,
                                                 s->refusal_buf, sizeof s->refusal_buf)
                 : class_damping_refusal(s);
  if (why) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: %s", why);
  return NHGD_OK;
}

/* D = Hess R + damping at theta. */
static int set_damping(nhgd_state *s, nhgd_est_ctx *c, const double *theta) {
  NHGD_CHECK(c->pb->ops.reg(c->pb, theta, c->v, NULL, NULL, s->dg));
  for (int j = 0; j < s->d; ++j)
    s->dg[j] += s->o->damping;
  return derive_damping(s);
}

static int nhgd_begin(nhgd_estimator *est, int64_t k, const double *theta0) {
  nhgd_state *s = est->state;
  s->k = k;
  s->t = 0;
  s->nstored = 0;
  s->bytes = 0.0;
  nhgd_bcmat_destroy(&s->K); /* the last outer step's factored gram system (keep) */
  NHGD_CHECK(set_damping(s, est->ctx, theta0));
  switch (s->route) {
  case NHGD_ROUTE_ONLINE:
    nhgd_bcmat_zero(s->A);
    nhgd_bcmat_add_diag(s->A, s->dinv);
    break;
  case NHGD_ROUTE_ACCUMULATE:
    nhgd_bcmat_zero(s->A);
    break;
  case NHGD_ROUTE_DENSE:
    memset(s->Mdense, 0, (size_t)s->d * s->d * sizeof(double));
    break;
  case NHGD_ROUTE_KFAC:
    /* With --kfac-refresh R the factors are summed in outer steps 0, R, 2R, ... (or the
     * first step after a restart that brought none), and serve the steps up to the next. */
    s->fresh =
        s->o->refresh <= 1 || k % s->o->refresh == 0 || !(s->layered ? s->kn.have : s->kf.have);
    if (s->layered) {
      if (s->fresh) nhgd_kfac_net_reset(&s->kn);
    } else
      nhgd_kfac_reset(&s->kf, s->fresh);
    break;
  default:
    break;
  }
  return NHGD_OK;
}

/* Weight of every sample of step t in M. */
static double step_weight(const nhgd_state *s, int64_t t) {
  const est_nhgd_opts *o = s->o;
  if (!strcmp(o->mode, "ema"))
    return (1.0 - o->beta) * pow(o->beta, (double)(s->T - 1 - t)) / (double)s->Bf;
  return 1.0 / ((double)s->T * (double)s->Bf);
}

/* Column of U for one packed sample [scale, x, r] or [scale, s]: scale * s when scaled,
 * else s itself. */
static void unpack_column(const nhgd_state *s, const double *p, double *u, int scaled) {
  const double sc = scaled ? p[0] : 1.0;
  if (s->kron) {
    const double *x = p + 1, *r = p + 1 + s->m;
    for (int c = 0; c < s->C; ++c)
      for (int j = 0; j < s->m; ++j)
        u[j + (size_t)c * s->m] = sc * x[j] * r[c];
  } else {
    for (int j = 0; j < s->d; ++j)
      u[j] = sc * p[1 + j];
  }
}

/* A <- A - (A U)(I + U^T A U)^{-1}(A U)^T on the block-cyclic A. Communication: one
 * allreduce of d x nb numbers. */
static int woodbury(nhgd_state *s, nhgd_est_ctx *c, int nb) {
  nhgd_bcmat *A = s->A;
  const size_t d = (size_t)s->d;
  NHGD_CHECK(nhgd_bcmat_apply(A, s->U, nb, s->W, s->work));
  s->bytes += 8.0 * (double)d * nb; /* the reduced d x nb result */
  /* S = I + U^T W, factor, Y = W L^{-T}, A -= Y Y^T. */
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, nb, nb, (int)d, 1.0, s->U, (int)d, s->W,
              (int)d, 0.0, s->S, nb);
  for (int i = 0; i < nb; ++i)
    s->S[i + (size_t)i * nb] += 1.0;
  int info = 0;
  dpotrf_("L", &nb, s->S, &nb, &info, 1);
  if (info)
    NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd online: I + U^T A U is not positive definite (minor %d)",
              info);
  cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, (int)d, nb, 1.0,
              s->S, nb, s->W, (int)d);
  return nhgd_bcmat_add_gram(A, s->W, nb, -1.0, 0);
}

/* Fold the gathered samples of one step into the route's state. */
static int apply_step(nhgd_state *s, nhgd_est_ctx *c, int total) {
  const double *P = s->packed_all;
  if (s->route == NHGD_ROUTE_GRAM) {
    if (s->nstored + total > s->cap)
      NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd gram: more samples than planned (%lld > %lld)",
                (long long)(s->nstored + total), (long long)s->cap);
    memcpy(s->store + (size_t)s->nstored * s->width, P, (size_t)total * s->width * sizeof(double));
    s->nstored += total;
    return NHGD_OK;
  }
  if (s->route == NHGD_ROUTE_KFAC) return nhgd_kfac_add_gathered(&s->kf, total, P, s->width);
  const size_t d = (size_t)s->d;
  /* Process the step in slices of at most bslice samples (the U workspace). */
  for (int c0 = 0; c0 < total; c0 += (int)s->B) {
    int nb = total - c0 < (int)s->B ? total - c0 : (int)s->B;
    for (int i = 0; i < nb; ++i)
      unpack_column(s, P + (size_t)(c0 + i) * s->width, s->U + i * d, 1);
    switch (s->route) {
    case NHGD_ROUTE_ONLINE:
      NHGD_CHECK(woodbury(s, c, nb));
      break;
    case NHGD_ROUTE_ACCUMULATE:
      NHGD_CHECK(nhgd_bcmat_add_gram(s->A, s->U, nb, 1.0, 1));
      break;
    default: /* dense reference: lower triangle of the full matrix */
      cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)d, nb, 1.0, s->U, (int)d, 1.0,
                  s->Mdense, (int)d);
      break;
    }
  }
  return NHGD_OK;
}

static int finish_pending(nhgd_state *s, nhgd_est_ctx *c) {
  if (!s->pending) return NHGD_OK;
  NHGD_MPI_CHECK(MPI_Wait(&s->req, MPI_STATUS_IGNORE));
  s->pending = 0;
  return apply_step(s, c, s->pending_total);
}

/* The K = s->Bf of the step's B slots that feed F (a partial Fisher-Yates shuffle keyed by
 * (seed, k, t), so the choice does not depend on the number of ranks), as this rank's local
 * rows in the order drawn. With full batches the slots are the training rows themselves. */
static int subsample(nhgd_state *s, int64_t t, int *out) {
  const nhgd_est_ctx *c = s->c;
  const nhgd_split *tr = &c->data->train;
  const int64_t B = s->B, K = s->Bf;
  int *perm = s->slots;
  for (int64_t i = 0; i < B; ++i)
    perm[i] = (int)i;
  int nb = 0;
  for (int64_t i = 0; i < K; ++i) {
    const int64_t j = i + (int64_t)nhgd_rng_below(c->seed, NHGD_STREAM_EFIM, (uint64_t)s->k,
                                                  (uint64_t)t, (uint64_t)i, (uint64_t)(B - i));
    const int slot = perm[j];
    perm[j] = perm[i];
    perm[i] = slot;
    const int64_t g =
        c->batch ? (int64_t)nhgd_rng_below(c->seed, NHGD_STREAM_BATCH, (uint64_t)s->k, (uint64_t)t,
                                           (uint64_t)slot, (uint64_t)tr->n_global)
                 : slot;
    if (g >= tr->lo && g < tr->lo + tr->n_local) out[nb++] = (int)(g - tr->lo);
  }
  return nb;
}

static int nhgd_observe(nhgd_estimator *est, const double *theta, int nb, const int *rows) {
  nhgd_state *s = est->state;
  nhgd_est_ctx *c = est->ctx;
  const nhgd_problem *pb = c->pb;
  const double wexp = s->o->weight_exp;
  nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
  int rc = finish_pending(s, c);
  if (rc) goto done;
  if (s->route == NHGD_ROUTE_KFAC && !s->fresh) { /* the factors of an earlier step */
    ++s->t;
    goto done;
  }
  if (s->Bf < s->B) { /* --efim-samples: only K of the step's samples feed F */
    nb = subsample(s, s->t, s->sub_rows);
    rows = s->sub_rows;
  }
  if (nb > s->bmax)
    rc = nhgd_error_set(NHGD_ERR_INTERNAL, __FILE__, __LINE__,
                        "nhgd: %d samples on one rank, planned %d", nb, s->bmax);
  else if (s->route == NHGD_ROUTE_KFAC && s->layered)
    rc = pb->ops.layer_factors(pb, theta, c->v, nb, rows, 1, s->la, s->lg, s->cloc);
  else if (s->kron)
    rc = pb->ops.kron_factors(pb, theta, c->v, nb, rows, s->Xloc, s->Rloc, s->Aloc, s->cloc);
  else
    rc = pb->ops.sample_grads(pb, theta, c->v, nb, rows, s->Xloc, s->cloc);
  const double omega = step_weight(s, s->t);
  if (s->route == NHGD_ROUTE_KFAC) {
    /* G and trace(F) (and A in the replicated layout) from this rank's own samples. A failure
     * is agreed on at the next collective of the route (solve or checkpoint). */
    if (rc) {
      s->kf.failed = 1;
      s->kn.failed = 1;
      rc = NHGD_OK;
      nb = 0;
    }
    for (int k = 0; k < nb; ++k)
      s->wloc[k] = omega * (wexp == 1.0 ? s->cloc[k] : pow(s->cloc[k], wexp));
    if (s->layered) {
      rc = nhgd_kfac_net_add(&s->kn, nb, s->la, s->lg, s->wloc);
      ++s->t;
      if (s->t == s->T && s->o->overlap) rc = nhgd_kfac_net_start_reduce(&s->kn);
      goto done;
    }
    nhgd_kfac_add_local(&s->kf, nb, s->Xloc, s->Rloc, s->Aloc, s->cloc, s->wloc);
    if (!s->kf.distributed) { /* nothing to send during the inner loop */
      ++s->t;
      /* With overlap, the partials of the last step start on their way while the solver
       * evaluates the validation gradient. */
      if (s->t == s->T && s->o->overlap) rc = nhgd_kfac_start_reduce(&s->kf);
      goto done;
    }
  }
  const int len = s->width - 1;
  for (int k = 0; !rc && k < nb; ++k) {
    double *p = s->packed_loc + (size_t)k * s->width;
    double w = s->cloc[k];
    p[0] = sqrt(omega * (wexp == 1.0 ? w : pow(w, wexp)));
    if (s->kron) {
      memcpy(p + 1, s->Xloc + (size_t)k * s->m, (size_t)s->m * sizeof(double));
      memcpy(p + 1 + s->m, s->Rloc + (size_t)k * s->C, (size_t)s->C * sizeof(double));
    } else {
      memcpy(p + 1, s->Xloc + (size_t)k * len, (size_t)len * sizeof(double));
    }
  }
  /* The counts exchanged for the all-gather also carry a failure (-1), so a step costs no
   * collective of its own for agreeing on errors. */
  int mine = rc ? -1 : nb * s->width;
  if (MPI_Allgather(&mine, 1, MPI_INT, s->counts, 1, MPI_INT, c->comm) != MPI_SUCCESS)
    NHGD_RAISE(rc, done, NHGD_ERR_MPI, "MPI_Allgather of sample counts failed");
  for (int p = 0; p < c->size; ++p)
    if (s->counts[p] < 0) {
      rc = nhgd_error_agree(c->comm, rc);
      goto done;
    }
  int sum = 0;
  for (int p = 0; p < c->size; ++p) {
    s->displs[p] = sum;
    sum += s->counts[p];
  }
  s->bytes += 8.0 * (double)(sum - mine) + 4.0 * (c->size - 1); /* others' samples, counts */
  if (MPI_Iallgatherv(s->packed_loc, mine, MPI_DOUBLE, s->packed_all, s->counts, s->displs,
                      MPI_DOUBLE, c->comm, &s->req) != MPI_SUCCESS)
    NHGD_RAISE(rc, done, NHGD_ERR_MPI, "MPI_Iallgatherv of per-sample gradients failed");
  s->pending = 1;
  s->pending_total = sum / s->width;
  ++s->t;
  /* Without overlap the step is folded in at once; with it, while SGD takes the next step. */
  if (!s->o->overlap) rc = finish_pending(s, c);
done:
  nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
  return rc;
}

/* This rank's entries of K_ij = sc_i sc_j <s_i, D^{-1} s_j> for the local rows i and
 * columns j of the block-cyclic K (the identity is added afterwards). */
static int gram_fill(void *arg, int mloc, const int64_t *grow, int nloc, const int64_t *gcol,
                     double *a, int lld) {
  const nhgd_state *s = arg;
  const int d = s->d, m = s->m, C = s->C, w = s->width;
  const double *P = s->store;
  const int lr = mloc > nloc ? mloc : nloc;
  double *L = NULL, *Rt = NULL;
  int rc = NHGD_OK;
  if (s->sep) {
    /* <s_i, D^{-1} s_j> = (x_i^T diag(a) x_j)(r_i^T diag(b) r_j). */
    NHGD_TRY(rc, nhgd_calloc(&L, (size_t)(m > C ? m : C) * lr * 2, sizeof(double), "gram rows"),
             done);
    NHGD_TRY(rc, nhgd_calloc(&Rt, (size_t)mloc * nloc, sizeof(double), "gram block"), done);
    double *Lr = L, *Lc = L + (size_t)(m > C ? m : C) * lr;
    for (int pass = 0; pass < 2; ++pass) {
      const int len = pass ? C : m, off = pass ? 1 + m : 1;
      const double *sc = pass ? s->b : s->a;
      for (int il = 0; il < mloc; ++il) {
        const double *p = P + (size_t)grow[il] * w + off;
        for (int j = 0; j < len; ++j)
          Lr[j + (size_t)il * len] = sc[j] * p[j];
      }
      for (int jl = 0; jl < nloc; ++jl) {
        const double *p = P + (size_t)gcol[jl] * w + off;
        memcpy(Lc + (size_t)jl * len, p, (size_t)len * sizeof(double));
      }
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, mloc, nloc, len, 1.0, Lr, len, Lc, len,
                  0.0, pass ? Rt : a, pass ? mloc : lld);
    }
    for (int jl = 0; jl < nloc; ++jl)
      for (int il = 0; il < mloc; ++il)
        a[il + (size_t)jl * lld] *= Rt[il + (size_t)jl * mloc];
  } else {
    /* Form the d-vectors of this rank's rows and columns of K. */
    NHGD_TRY(rc, nhgd_calloc(&L, (size_t)d * lr * 2, sizeof(double), "gram columns"), done);
    double *Lr = L, *Lc = L + (size_t)d * lr;
    for (int il = 0; il < mloc; ++il) {
      double *col = Lr + (size_t)il * d;
      unpack_column(s, P + (size_t)grow[il] * w, col, 0);
      for (int j = 0; j < d; ++j)
        col[j] *= s->dinv[j];
    }
    for (int jl = 0; jl < nloc; ++jl)
      unpack_column(s, P + (size_t)gcol[jl] * w, Lc + (size_t)jl * d, 0);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, mloc, nloc, d, 1.0, Lr, d, Lc, d, 0.0, a,
                lld);
  }
  for (int jl = 0; jl < nloc; ++jl)
    for (int il = 0; il < mloc; ++il) {
      const double si = P[(size_t)grow[il] * w], sj = P[(size_t)gcol[jl] * w];
      a[il + (size_t)jl * lld] *= si * sj;
    }
done:
  nhgd_free(&L);
  nhgd_free(&Rt);
  return rc;
}

/* Gram route, with K = I + U^T D^{-1} U factored (NULL: no samples): u = D^{-1} g -
 * D^{-1} U K^{-1} U^T D^{-1} g. */
static int gram_apply(nhgd_state *s, const double *g, double *u) {
  const int N = (int)s->nstored, d = s->d, w = s->width;
  const double *P = s->store;
  for (int j = 0; j < d; ++j)
    u[j] = s->dinv[j] * g[j];
  if (!s->K) return NHGD_OK;
  /* t_i = sc_i <s_i, D^{-1} g>; z = K^{-1} t; u -= D^{-1} sum_i z_i sc_i s_i. */
  double *tz = s->tz, *sample = s->U, *corr = s->W; /* d scratch each */
  for (int i = 0; i < N; ++i) {
    unpack_column(s, P + (size_t)i * w, sample, 1);
    tz[i] = cblas_ddot(d, sample, 1, u, 1);
  }
  NHGD_CHECK(nhgd_bcmat_solve(s->K, tz, tz));
  memset(corr, 0, (size_t)d * sizeof(double));
  for (int i = 0; i < N; ++i) {
    unpack_column(s, P + (size_t)i * w, sample, 1);
    cblas_daxpy(d, tz[i], sample, 1, corr, 1);
  }
  for (int j = 0; j < d; ++j)
    u[j] -= s->dinv[j] * corr[j];
  return NHGD_OK;
}

/* Gram route: u = D^{-1} g - D^{-1} U (I + U^T D^{-1} U)^{-1} U^T D^{-1} g over the N stored
 * samples, with the N x N system block-cyclic and each rank forming only its own entries. The
 * factored system is dropped, or kept (keep) for gram_apply until the next inner loop. */
static int gram_solve(nhgd_state *s, nhgd_est_ctx *c, const double *g, double *u) {
  const int N = (int)s->nstored;
  int rc = NHGD_OK;
  nhgd_bcmat_destroy(&s->K);
  if (N == 0) return gram_apply(s, g, u);
  nhgd_grid *grid;
  int nb = 0;
  NHGD_CHECK(grid_block(c, N, &grid, &nb));
  NHGD_CHECK(nhgd_bcmat_create(grid, N, nb, &s->K));
  /* An allocation that fails on one rank must not leave the others in the Cholesky. */
  rc = nhgd_error_agree(c->comm, nhgd_bcmat_fill(s->K, gram_fill, s));
  if (rc) goto done;
  for (int i = 0; i < N; ++i) /* the identity, through t's buffer */
    s->tz[i] = 1.0;
  nhgd_bcmat_add_diag(s->K, s->tz);
  nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
  nhgd_timer_start(c->timers, NHGD_T_SOLVE);
  rc = nhgd_bcmat_cholesky(s->K);
  if (!rc) rc = gram_apply(s, g, u);
  nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
  nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
done:
  if (rc || !s->keep) nhgd_bcmat_destroy(&s->K);
  return rc;
}

/* Dense reference, M's Cholesky factor in Mdense: u = M^{-1} g. */
static void dense_apply(const nhgd_state *s, const double *g, double *u) {
  const int d = s->d, one = 1;
  int info = 0;
  memcpy(u, g, (size_t)d * sizeof(double));
  dpotrs_("L", &d, &one, s->Mdense, &d, u, &d, &info, 1);
}

static int dense_solve(nhgd_state *s, const double *g, double *u) {
  const int d = s->d;
  int info = 0;
  for (int j = 0; j < d; ++j)
    s->Mdense[j + (size_t)j * d] += s->dg[j];
  dpotrf_("L", &d, s->Mdense, &d, &info, 1);
  if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd dense: M is not positive definite (minor %d)", info);
  dense_apply(s, g, u);
  return NHGD_OK;
}

static int nhgd_solve(nhgd_estimator *est, const double *theta, const double *g, double *u) {
  nhgd_state *s = est->state;
  nhgd_est_ctx *c = est->ctx;
  nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
  int rc = finish_pending(s, c);
  nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
  NHGD_CHECK(rc);
  switch (s->route) {
  case NHGD_ROUTE_ONLINE: /* u = A g */
    nhgd_timer_start(c->timers, NHGD_T_SOLVE);
    rc = nhgd_bcmat_apply_vector(s->A, g, u, s->work);
    nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
    break;
  case NHGD_ROUTE_ACCUMULATE:
    nhgd_timer_start(c->timers, NHGD_T_SOLVE);
    nhgd_bcmat_add_diag(s->A, s->dg);
    rc = nhgd_bcmat_cholesky(s->A);
    if (!rc) rc = nhgd_bcmat_solve(s->A, g, u);
    nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
    break;
  case NHGD_ROUTE_GRAM:
    nhgd_timer_start(c->timers, NHGD_T_CURVATURE);
    rc = gram_solve(s, c, g, u);
    nhgd_timer_stop(c->timers, NHGD_T_CURVATURE);
    break;
  case NHGD_ROUTE_KFAC:
    nhgd_timer_start(c->timers, NHGD_T_SOLVE);
    rc = check_class_damping(s);
    if (!rc)
      rc = s->layered ? nhgd_kfac_net_solve(&s->kn, s->dg, g, u, s->fresh)
                      : nhgd_kfac_solve(&s->kf, s->dg, g, u, s->fresh);
    nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
    s->bytes += s->kf.bytes + s->kn.bytes;
    s->kf.bytes = 0.0;
    s->kn.bytes = 0.0;
    break;
  default:
    nhgd_timer_start(c->timers, NHGD_T_SOLVE);
    rc = dense_solve(s, g, u);
    nhgd_timer_stop(c->timers, NHGD_T_SOLVE);
    break;
  }
  *c->comm_bytes += s->bytes;
  *c->comm_steps += s->t;
  return rc;
}

int nhgd_efim_reapply(nhgd_estimator *est, const double *x, double *out) {
  nhgd_state *s = est->state;
  nhgd_est_ctx *c = est->ctx;
  int rc = NHGD_OK;
  if (!s->keep)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd: M^-1 applied again by an estimator that keeps no factors");
  switch (s->route) {
  case NHGD_ROUTE_ONLINE: /* A = M^{-1} itself */
    return nhgd_bcmat_apply_vector(s->A, x, out, s->work);
  case NHGD_ROUTE_ACCUMULATE: /* A = the Cholesky factor of M */
    return nhgd_bcmat_solve(s->A, x, out);
  case NHGD_ROUTE_GRAM:
    return gram_apply(s, x, out);
  case NHGD_ROUTE_KFAC:
    /* A network's layers keep their records (fresh 0 reuses them); the linear model's
     * prepared factors serve again. */
    rc = s->layered ? nhgd_kfac_net_solve(&s->kn, s->dg, x, out, 0)
                    : nhgd_kfac_reapply(&s->kf, s->dg, x, out);
    *c->comm_bytes += s->kf.bytes + s->kn.bytes;
    s->kf.bytes = 0.0;
    s->kn.bytes = 0.0;
    return rc;
  default:
    dense_apply(s, x, out);
    return NHGD_OK;
  }
}

/* What one more application of M^{-1} costs on the chosen route, in words (for the log). */
static const char *reapply_cost(const nhgd_state *s) {
  switch (s->route) {
  case NHGD_ROUTE_ONLINE:
    return "one product with the block-cyclic M^-1 the route keeps";
  case NHGD_ROUTE_ACCUMULATE:
    return "two triangular solves with the block-cyclic Cholesky factor of M";
  case NHGD_ROUTE_GRAM:
    return "the factored N x N system is kept: 4 N d flops and two triangular solves of order N";
  case NHGD_ROUTE_KFAC:
    if (s->layered)
      return "each layer's decomposition is kept: its rotations and tridiagonal solves (a layer "
             "whose damping varies with the input row refactors its systems)";
    if (s->kf.distributed)
      return "A is block-cyclic: the C class systems are factored again (keeping C factors "
             "would take C times the memory of A)";
    return "the Cholesky factors of the class systems are kept: two triangular solves each";
  default:
    return "two triangular solves with the dense Cholesky factor of M";
  }
}

/* Checkpoint: the running state of the current inner loop (after folding in the step in
 * flight). Everything is written in a grid-independent layout. */
static int nhgd_save(nhgd_estimator *est, nhgd_section *sec) {
  nhgd_state *s = est->state;
  NHGD_CHECK(finish_pending(s, est->ctx));
  NHGD_CHECK(nhgd_section_put_string(sec, "route", nhgd_route_name(s->route)));
  NHGD_CHECK(nhgd_section_put_int(sec, "steps", s->t));
  NHGD_CHECK(nhgd_section_put_int(sec, "stored", s->nstored));
  NHGD_CHECK(nhgd_section_put_int(sec, "width", s->width));
  NHGD_CHECK(nhgd_section_put_real(sec, "bytes", s->bytes));
  NHGD_CHECK(nhgd_section_put_vector(sec, "D", s->d, s->dg));
  switch (s->route) {
  case NHGD_ROUTE_KFAC:
    NHGD_CHECK(nhgd_section_put_int(sec, "kfac_fresh", s->fresh));
    return s->layered ? nhgd_kfac_net_save(&s->kn, sec) : nhgd_kfac_save(&s->kf, sec);
  case NHGD_ROUTE_ONLINE:
  case NHGD_ROUTE_ACCUMULATE:
    return nhgd_section_put_matrix(sec, "matrix", s->A);
  case NHGD_ROUTE_GRAM:
    return nhgd_section_put_vector(sec, "samples", s->nstored * s->width, s->store);
  default:
    return nhgd_section_put_vector(sec, "matrix", (int64_t)s->d * s->d, s->Mdense);
  }
}

/* Whether the inner loop a checkpoint stopped in sums factors of its own; a loop that reuses
 * earlier ones needs them to have come back with the checkpoint. */
static int load_fresh(nhgd_state *s, nhgd_section *sec) {
  int64_t fresh = 1;
  if (nhgd_section_has(sec, "kfac_fresh"))
    NHGD_CHECK(nhgd_section_get_int(sec, "kfac_fresh", &fresh));
  if (fresh != 0 && fresh != 1)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's estimator state has kfac_fresh = %lld",
              (long long)fresh);
  if (!fresh && !(s->layered ? s->kn.have : s->kf.have))
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's inner loop reuses K-FAC factors it does not hold");
  s->fresh = (int)fresh;
  return NHGD_OK;
}

/* A restart at an outer-step boundary: the factors that serve the next outer steps. */
static int nhgd_load_kept(nhgd_estimator *est, nhgd_section *sec) {
  nhgd_state *s = est->state;
  if (s->route != NHGD_ROUTE_KFAC || s->o->refresh <= 1) return NHGD_OK;
  char route[32];
  if (!nhgd_section_has(sec, "route")) return NHGD_OK;
  NHGD_CHECK(nhgd_section_get_string(sec, "route", route, sizeof route));
  if (strcmp(route, nhgd_route_name(s->route))) return NHGD_OK;
  return s->layered ? nhgd_kfac_net_load_kept(&s->kn, sec) : nhgd_kfac_load_kept(&s->kf, sec);
}

static int nhgd_load(nhgd_estimator *est, nhgd_section *sec, int64_t k) {
  nhgd_state *s = est->state;
  char route[32];
  int64_t steps, stored, width;
  NHGD_CHECK(nhgd_section_get_string(sec, "route", route, sizeof route));
  if (strcmp(route, nhgd_route_name(s->route)))
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint holds the running state of route %s, this run uses route %s: "
              "continue with --efim-route %s",
              route, nhgd_route_name(s->route), route);
  NHGD_CHECK(nhgd_section_get_int(sec, "steps", &steps));
  NHGD_CHECK(nhgd_section_get_int(sec, "stored", &stored));
  NHGD_CHECK(nhgd_section_get_int(sec, "width", &width));
  NHGD_CHECK(nhgd_section_get_real(sec, "bytes", &s->bytes));
  if (width != s->width || stored > s->cap || steps > s->T)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's estimator state does not fit this run");
  s->k = k;
  s->t = steps;
  s->nstored = stored;
  s->pending = 0;
  NHGD_CHECK(nhgd_section_get_vector(sec, "D", s->d, s->dg));
  NHGD_CHECK(nhgd_section_check_finite(sec, "D", s->d, s->dg));
  NHGD_CHECK(derive_damping(s));
  switch (s->route) {
  case NHGD_ROUTE_KFAC:
    NHGD_CHECK(s->layered ? nhgd_kfac_net_load(&s->kn, sec) : nhgd_kfac_load(&s->kf, sec));
    return load_fresh(s, sec);
  case NHGD_ROUTE_ONLINE:
  case NHGD_ROUTE_ACCUMULATE:
    NHGD_CHECK(nhgd_section_get_matrix(sec, "matrix", s->A));
    return nhgd_section_check_finite_matrix(sec, "matrix", s->A);
  case NHGD_ROUTE_GRAM:
    NHGD_CHECK(nhgd_section_get_vector(sec, "samples", s->nstored * s->width, s->store));
    return nhgd_section_check_finite(sec, "samples", s->nstored * s->width, s->store);
  default:
    NHGD_CHECK(nhgd_section_get_vector(sec, "matrix", (int64_t)s->d * s->d, s->Mdense));
    return nhgd_section_check_finite(sec, "matrix", (int64_t)s->d * s->d, s->Mdense);
  }
}

/* The rank-local buffers of the chosen route's step traffic and workspace. */
static int init_buffers(nhgd_state *s, nhgd_est_ctx *c, int kfac, int gathers) {
  const size_t d = (size_t)s->d, B = (size_t)s->B, w = (size_t)s->width;
  const size_t bw = gathers ? B * w : 1, dB = !kfac ? d * (B > 1 ? B : 1) : 1;
  NHGD_CHECK(nhgd_calloc(&s->a, s->m ? (size_t)s->m : 1, sizeof(double), "D^-1 rows"));
  NHGD_CHECK(nhgd_calloc(&s->b, s->C ? (size_t)s->C : 1, sizeof(double), "D^-1 columns"));
  NHGD_CHECK(nhgd_calloc(&s->packed_loc, gathers ? (size_t)s->bmax * w : 1, sizeof(double),
                         "packed samples"));
  NHGD_CHECK(nhgd_calloc(&s->packed_all, bw, sizeof(double), "gathered samples"));
  const int net_kfac = kfac && s->layered; /* no d-vector per sample at all */
  NHGD_CHECK(nhgd_calloc(&s->Xloc, net_kfac ? 1 : (size_t)s->bmax * (s->kron ? (size_t)s->m : d),
                         sizeof(double), "sample features"));
  NHGD_CHECK(nhgd_calloc(&s->Rloc, (size_t)s->bmax * (s->kron ? (size_t)s->C : 1), sizeof(double),
                         "sample residuals"));
  NHGD_CHECK(nhgd_calloc(&s->cloc, (size_t)s->bmax, sizeof(double), "sample weights"));
  if (s->Bf < s->B) {
    NHGD_CHECK(nhgd_calloc(&s->slots, (size_t)s->B, sizeof(int), "subsample slots"));
    NHGD_CHECK(nhgd_calloc(&s->sub_rows, (size_t)s->Bf, sizeof(int), "subsample rows"));
    nhgd_log(NHGD_LOG_INFO, "nhgd: %lld of the %lld per-sample gradients of each step feed F",
             (long long)s->Bf, (long long)s->B);
  }
  NHGD_CHECK(nhgd_calloc(&s->counts, (size_t)c->size, sizeof(int), "counts"));
  NHGD_CHECK(nhgd_calloc(&s->displs, (size_t)c->size, sizeof(int), "displacements"));
  NHGD_CHECK(nhgd_calloc(&s->U, dB, sizeof(double), "U"));
  NHGD_CHECK(nhgd_calloc(&s->W, dB, sizeof(double), "W"));
  NHGD_CHECK(nhgd_calloc(&s->S, kfac ? 1 : B * B, sizeof(double), "small system"));
  return NHGD_OK;
}

/* The rank-local part of the set-up before the route planner (a collective): D at theta = 0
 * and whether the kfac route applies (*refusal NULL) or why not. */
static int init_damping(nhgd_state *s, nhgd_est_ctx *c, const char **refusal) {
  const nhgd_problem *pb = c->pb;
  const est_nhgd_opts *o = s->o;
  const size_t d = (size_t)s->d;
  NHGD_CHECK(nhgd_calloc(&s->dg, d, sizeof(double), "D"));
  NHGD_CHECK(nhgd_calloc(&s->dinv, d, sizeof(double), "D^-1"));
  /* Does the kfac route apply? It needs the Kronecker form and a class-independent D (the
   * built-in problems' Hess R does not depend on theta: look at it at theta = 0). */
  *refusal = NULL;
  if (!s->kron && !s->layered) {
    *refusal = pb->ops.kron_factors || pb->ops.layer_factors
                   ? "--kron 0 turns the Kronecker form off"
                   : "the problem has no Kronecker form (no kron_factors or layer_factors)";
  } else {
    double *zero;
    NHGD_CHECK(nhgd_calloc(&zero, d, sizeof(double), "theta = 0"));
    int rc = pb->ops.reg(pb, zero, c->v, NULL, NULL, s->dg);
    nhgd_free(&zero);
    NHGD_CHECK(rc);
    for (size_t j = 0; j < d; ++j)
      s->dg[j] += o->damping;
    *refusal = s->layered
                   ? nhgd_kfac_net_damping_refusal(pb->n_layers, pb->layer_in, pb->layer_out, s->dg,
                                                   s->refusal_buf, sizeof s->refusal_buf)
                   : class_damping_refusal(s);
  }
  return NHGD_OK;
}

static int nhgd_init(nhgd_estimator *est, nhgd_est_ctx *c, nhgd_section *resume) {
  nhgd_state *s = est->state;
  const nhgd_problem *pb = c->pb;
  const est_nhgd_opts *o = c->opt;
  s->o = o;
  s->keep = c->precond;
  if (c->d > INT_MAX / 2) NHGD_FAIL(NHGD_ERR_ARG, "nhgd: d = %lld is too large", (long long)c->d);
  s->d = (int)c->d;
  s->kron = c->kron && pb->ops.kron_factors != NULL;
  s->layered = c->kron && !s->kron && pb->n_layers > 0 && pb->ops.layer_factors != NULL;
  s->m = s->kron ? pb->kron_m : 0;
  s->C = s->kron ? pb->kron_c : 0;
  s->T = c->inner_steps;
  s->B = nhgd_est_batch_rows(c);
  s->c = c;
  s->Bf = o->samples > 0 && o->samples < s->B ? o->samples : s->B;
  if (o->samples > s->B)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --efim-samples %lld: a step has only %lld per-sample gradients (--batch)",
              (long long)o->samples, (long long)s->B);
  s->width = 1 + (s->kron ? s->m + s->C : s->d);
  /* Minibatches are drawn with replacement: one rank may own all B samples of a step. */
  s->bmax = (int)s->B;
  const size_t d = (size_t)s->d, w = (size_t)s->width;
  const char *refusal = NULL;
  /* A local failure before the planner's collectives is agreed on first, so that no rank is
   * left waiting in them. */
  NHGD_CHECK(nhgd_error_agree(c->comm, init_damping(s, c, &refusal)));
  /* A run continued from a checkpoint taken inside an inner loop keeps the route (and the
   * K-FAC layout) whose running state it holds. */
  char route[sizeof o->route], layout[sizeof o->kfac_layout];
  snprintf(route, sizeof route, "%s", o->route);
  snprintf(layout, sizeof layout, "%s", o->kfac_layout);
  if (resume && !strcmp(route, "auto") && nhgd_section_has(resume, "route"))
    NHGD_CHECK(nhgd_section_get_string(resume, "route", route, sizeof route));
  if (resume && !strcmp(layout, "auto") && nhgd_section_has(resume, "kfac_layout"))
    NHGD_CHECK(nhgd_section_get_string(resume, "kfac_layout", layout, sizeof layout));
  const nhgd_efim_request req = {route, layout,     o->mem_per_rank, s->kron, refusal,
                                 s->Bf, s->layered, (int)o->refresh, s->keep};
  nhgd_efim_plan plan;
  NHGD_CHECK(nhgd_efim_plan_route(c, &req, &plan));
  s->route = plan.route;
  const int kfac = s->route == NHGD_ROUTE_KFAC;
  /* Like --kfac-g and --kfac-layout, --kfac-refresh is the kfac route's own: the other
   * routes sum and solve at every outer step, and say so. */
  if (o->refresh > 1 && kfac)
    nhgd_log(NHGD_LOG_INFO,
             "nhgd kfac: the factors are summed and decomposed every %lld outer steps and serve "
             "the steps in between (--kfac-refresh)",
             (long long)o->refresh);
  else if (o->refresh > 1)
    nhgd_log(NHGD_LOG_INFO,
             "nhgd: --kfac-refresh %lld applies to the kfac route only; route %s sums and solves "
             "at every outer step",
             (long long)o->refresh, nhgd_route_name(s->route));
  /* The replicated K-FAC layout sends nothing during the inner loop: no gather buffers. */
  const int gathers = !kfac || plan.kfac_distributed;
  /* Agreed before the route's collectives (grid creation) as well. */
  NHGD_CHECK(nhgd_error_agree(c->comm, init_buffers(s, c, kfac, gathers)));
  nhgd_grid *g = NULL;
  int nb = 0;
  switch (s->route) {
  case NHGD_ROUTE_KFAC: {
    NHGD_CHECK(nhgd_calloc(&s->wloc, (size_t)s->bmax, sizeof(double), "sample Fisher weights"));
    if (s->layered) {
      const int L = pb->n_layers;
      /* Which layers keep A block-cyclic: what the checkpoint continued from used, or the
       * placement for this memory budget (the same on every rank). */
      int dist[64] = {0}, maxd = 0;
      const int mode = nhgd_kfac_net_layout_mode(layout);
      if (mode != 0 || !nhgd_kfac_net_placement(resume, L, dist))
        nhgd_kfac_net_place(L, pb->layer_in, pb->layer_out, c->size, (double)s->bmax, mode,
                            plan.budget, dist);
      for (int l = 0; l < L; ++l)
        if (dist[l] && pb->layer_in[l] > maxd) maxd = pb->layer_in[l];
      if (maxd > 0) NHGD_CHECK(grid_block(c, maxd, &g, &nb));
      NHGD_CHECK(nhgd_kfac_net_init(&s->kn, c->comm, L, pb->layer_in, pb->layer_out, s->bmax,
                                    (int)o->refresh, dist, g, nb));
      NHGD_CHECK(nhgd_calloc(&s->la, (size_t)L, sizeof(double *), "layer inputs"));
      NHGD_CHECK(nhgd_calloc(&s->lg, (size_t)L, sizeof(double *), "layer gradients"));
      for (int l = 0; l < L; ++l) {
        NHGD_CHECK(nhgd_calloc(&s->la[l], (size_t)s->bmax * pb->layer_in[l], sizeof(double),
                               "layer inputs"));
        NHGD_CHECK(nhgd_calloc(&s->lg[l], (size_t)s->bmax * pb->layer_out[l], sizeof(double),
                               "layer gradients"));
        if (dist[l])
          nhgd_log(NHGD_LOG_INFO,
                   "nhgd kfac: layer %d: F_l ~= tau G (x) A with A %d x %d block-cyclic on the "
                   "grid of all ranks (%d x %d, blocks of %d; each step's inputs all-gathered), G "
                   "%d x %d (empirical) summed onto rank %d; solved exactly by pdsyevd of A",
                   l, pb->layer_in[l], pb->layer_in[l], g->nprow, g->npcol, nb, pb->layer_out[l],
                   pb->layer_out[l], s->kn.owner[l]);
        else
          nhgd_log(NHGD_LOG_INFO,
                   "nhgd kfac: layer %d: F_l ~= tau G (x) A with A %d x %d, G %d x %d (empirical, "
                   "sum w g g^T), summed onto and solved exactly on rank %d",
                   l, pb->layer_in[l], pb->layer_in[l], pb->layer_out[l], pb->layer_out[l],
                   s->kn.owner[l]);
      }
      break;
    }
    const int model = !strcmp(o->kfac_g, "model");
    if (model)
      NHGD_CHECK(nhgd_calloc(&s->Aloc, (size_t)s->bmax * s->C * s->C, sizeof(double),
                             "sample class covariances"));
    if (plan.kfac_distributed) NHGD_CHECK(grid_block(c, s->m, &g, &nb));
    NHGD_CHECK(nhgd_kfac_init(&s->kf, c->comm, s->m, s->C, s->bmax, model, plan.kfac_distributed,
                              (int)o->refresh, g, nb));
    if (s->keep) NHGD_CHECK(nhgd_kfac_keep_factors(&s->kf));
    nhgd_log(NHGD_LOG_INFO,
             "nhgd kfac: F ~= tau G (x) A with G = %s, A %d x %d %s; the damped system is "
             "solved exactly (%d class systems)",
             model ? "sum w (diag p - p p^T) (the model's)" : "sum w r r^T (empirical)", s->m, s->m,
             plan.kfac_distributed ? "block-cyclic" : "replicated", s->C);
    break;
  }
  case NHGD_ROUTE_ONLINE:
  case NHGD_ROUTE_ACCUMULATE:
    NHGD_CHECK(grid_block(c, s->d, &g, &nb));
    NHGD_CHECK(nhgd_bcmat_create(g, s->d, nb, &s->A));
    NHGD_CHECK(nhgd_calloc(&s->work, nhgd_bcmat_apply_work(s->A, (int)s->B), sizeof(double),
                           "block-cyclic product scratch"));
    break;
  case NHGD_ROUTE_GRAM:
    s->cap = s->T * (int64_t)s->Bf;
    NHGD_CHECK(nhgd_calloc(&s->store, (size_t)s->cap * w, sizeof(double), "stored samples"));
    NHGD_CHECK(nhgd_calloc(&s->tz, s->cap > 0 ? (size_t)s->cap : 1, sizeof(double),
                           "gram right-hand side"));
    break;
  default:
    NHGD_CHECK(nhgd_calloc(&s->Mdense, d * d, sizeof(double), "dense M"));
    break;
  }
  if (s->keep)
    nhgd_log(NHGD_LOG_INFO,
             "nhgd as a preconditioner: each further application of M^-1 in an "
             "outer step: %s",
             reapply_cost(s));
  return NHGD_OK;
}

static int est_nhgd_check(const void *block, const nhgd_options *all) {
  const est_nhgd_opts *o = block;
  int64_t batch = 0;
  if (o->samples > 0 && !nhgd_options_get_int(all, "batch", &batch) && batch > 0 &&
      o->samples > batch)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --efim-samples %lld: a step has only %lld per-sample gradients (--batch)",
              (long long)o->samples, (long long)batch);
  const char *problem = NULL;
  int64_t kron = 1;
  if (!strcmp(o->route, "kfac") && !nhgd_options_get_string(all, "problem", &problem) &&
      !nhgd_options_get_int(all, "kron", &kron)) {
    if (nhgd_problem_builtin_kron(problem) == 0)
      NHGD_FAIL(NHGD_ERR_ARG,
                "option --efim-route kfac needs the Kronecker form of a softmax problem; "
                "problem %s has none (use another --efim-route, or auto)",
                problem);
    if (!kron)
      NHGD_FAIL(NHGD_ERR_ARG,
                "option --efim-route kfac needs the Kronecker form, which --kron 0 turns off");
  }
  if (!strcmp(o->mode, "ema") && !(o->beta > 0.0 && o->beta < 1.0))
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --efim-beta %g: the moving average needs beta in (0, 1): the recursive "
              "inverse update divides by beta (beta = 0 divides by zero and keeps only the last "
              "step), and beta = 1 never lets a sample in",
              o->beta);
  return NHGD_OK;
}

/* u = M^-1 g too large: M = D + F is nearly singular, which its damping lifts. */
static void nhgd_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const est_nhgd_opts *o = est->ctx->opt;
  snprintf(buf, len, "raise --efim-damping (now %g): M = D + F is nearly singular", o->damping);
}

#define F(field) offsetof(est_nhgd_opts, field), sizeof(((est_nhgd_opts *)0)->field)
static const nhgd_option_spec est_nhgd_specs[] = {
    {"efim-route", NHGD_OPT_CHOICE, F(route), "auto", 1, 0,
     "auto|online|accumulate|gram|dense|kfac",
     "nhgd: how M^-1 g is kept (auto: kfac where it applies, else the cheapest by the cost "
     "model; dense: test reference)",
     0},
    {"efim-damping", NHGD_OPT_REAL, F(damping), "0.01", 0, 1e300, NULL,
     "nhgd: lambda_F added to the diagonal D = Hess R + lambda_F I", NHGD_OPT_TRAJECTORY},
    {"efim-weight-exp", NHGD_OPT_REAL, F(weight_exp), "1", 0, 16, NULL,
     "nhgd: per-sample Fisher weight c = w^exp of the inner sample weight w", NHGD_OPT_TRAJECTORY},
    {"efim-mode", NHGD_OPT_CHOICE, F(mode), "mean", 1, 0, "mean|ema",
     "nhgd: F is the mean over the inner loop, or a moving average over its steps",
     NHGD_OPT_TRAJECTORY},
    {"efim-beta", NHGD_OPT_REAL, F(beta), "0.9", -1e300, 1e300, NULL,
     "nhgd: moving-average factor, in (0, 1) (with --efim-mode ema)", NHGD_OPT_TRAJECTORY},
    {"overlap", NHGD_OPT_BOOL, F(overlap), "1", 1, 0, NULL,
     "nhgd: gather step t's per-sample gradients while SGD takes step t+1", 0},
    {"mem-per-rank", NHGD_OPT_REAL, F(mem_per_rank), "0", 0, 1e12, NULL,
     "MiB of memory one rank may use for the estimator's work (0: 90% of MemAvailable / ranks "
     "on the node); every estimator refuses a run that needs more",
     0},
    {"efim-samples", NHGD_OPT_I64, F(samples), "0", 0, 2147483647, NULL,
     "nhgd: per-sample gradients of each step that feed F, drawn from the step's minibatch "
     "(0: all of them)",
     NHGD_OPT_TRAJECTORY},
    {"kfac-g", NHGD_OPT_CHOICE, F(kfac_g), "model", 1, 0, "empirical|model",
     "nhgd kfac: G = sum w r r^T (empirical Fisher) or sum w (diag p - p p^T) (the model's, no "
     "labels); linear models only, networks use the empirical G of each layer",
     NHGD_OPT_TRAJECTORY},
    {"kfac-refresh", NHGD_OPT_I64, F(refresh), "1", 1, 1000000, NULL,
     "nhgd kfac: the factors (of every layer, for a network) are summed in the inner loop of "
     "every R-th outer step and decomposed once; the steps in between solve with them (and "
     "their own damping) and sum nothing (1: every step; other routes ignore it)",
     NHGD_OPT_TRAJECTORY},
    {"kfac-layout", NHGD_OPT_CHOICE, F(kfac_layout), "auto", 1, 0, "auto|replicated|distributed",
     "nhgd kfac: A summed per rank and reduced once per outer step (replicated), or "
     "block-cyclic (distributed; auto: replicated when it fits in memory; a network places each "
     "layer's A, the largest block-cyclic first)",
     0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F

/* cg and nbo read the block too when NHGD's M preconditions them (estimators/precond.h). */
static const nhgd_option_scope est_nhgd_scopes[] = {
    {"mem-per-rank", "estimator=nhgd|exact|cg|neumann|soba|nbo"},
    {"efim-beta", "estimator=nhgd,efim-mode=ema;estimator=cg|nbo,precond=nhgd,efim-mode=ema"},
    {NULL, "estimator=nhgd;estimator=cg|nbo,precond=nhgd"},
    {NULL, NULL}};
static const nhgd_option_block est_nhgd_options = {"nhgd", est_nhgd_specs, sizeof(est_nhgd_opts),
                                                   est_nhgd_check, est_nhgd_scopes};

const nhgd_estimator_desc nhgd_estimator_nhgd = {
    .name = "nhgd",
    .options = &est_nhgd_options,
    .state_size = sizeof(nhgd_state),
    .ops = {.needs_observe = 1,
            .begin = nhgd_begin,
            .observe = nhgd_observe,
            .solve = nhgd_solve,
            .save = nhgd_save,
            .load = nhgd_load,
            .load_kept = nhgd_load_kept,
            .release = nhgd_release,
            .advice = nhgd_advice},
    .init = nhgd_init,
};
