/* Layer-wise K-FAC factors of the nhgd estimator and the exact solve of each layer's damped
 * Kronecker system on its owner rank (docs/algorithm.md 4.6; what is exact: kfac_net.h). */
#include "estimators/nhgd/kfac_net.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "linalg/bcmat.h"
#include "estimators/nhgd/kfac.h"
#include "nhgd/errors.h"

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info, size_t len);
void dsytrd_(const char *uplo, const int *n, double *a, const int *lda, double *d, double *e,
             double *tau, double *work, const int *lwork, int *info, size_t luplo);
void dormtr_(const char *side, const char *uplo, const char *trans, const int *m, const int *n,
             const double *a, const int *lda, const double *tau, double *c, const int *ldc,
             double *work, const int *lwork, int *info, size_t lside, size_t luplo, size_t ltrans);
void dptsv_(const int *n, const int *nrhs, double *d, double *e, double *b, const int *ldb,
            int *info);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t ljobz,
             size_t luplo);

static size_t lower_len(int n) {
  return (size_t)n * (size_t)(n + 1) / 2;
}

/* Layout of a layer's broadcast record: [status, tau, delta, A's reduction (in x in), the
 * Householder scalars (in), T's diagonal (in) and subdiagonal (in), Q_G (out x out), the
 * eigenvalues of G (out)]; a block-cyclic layer's has no A part. Status: 0 ready for the
 * column solves, 1 failed on the owner, 2 solved whole on the owner (damping per input row),
 * 3 a block-cyclic layer's G. */
static size_t a_part(int in, int dist) {
  return dist ? 0 : (size_t)in * in + 3 * (size_t)in;
}
static size_t record_len(int in, int out, int dist) {
  return 3 + a_part(in, dist) + (size_t)out * out + (size_t)out;
}
static size_t rec_len(const nhgd_kfac_net *k, int l) {
  return record_len(k->in[l], k->out[l], k->dist[l]);
}
/* Q_G in layer l's record. */
static double *rec_QG(const nhgd_kfac_net *k, int l) {
  return k->bc[l] + 3 + a_part(k->in[l], k->dist[l]);
}
/* Doubles of layer l's reduction: [A lower (whole layers only), G lower, trace F]. */
static size_t red_len(const nhgd_kfac_net *k, int l) {
  return (k->dist[l] ? 0 : lower_len(k->in[l])) + lower_len(k->out[l]) + 1;
}

/* The relative cost of one layer's solve: the tridiagonal reduction of A and the
 * eigen-decomposition of G, both cubic. */
static double solve_cost(int in, int out) {
  return (double)in * in * in + (double)out * out * out;
}

/* Longest processing time first: the costliest layer goes to the least loaded rank (the
 * lowest such rank on ties). Identical on every rank. load (P) receives each rank's load. */
static void assign_owners(int L, const int *in, const int *out, int P, int *owner, double *load) {
  int done[64] = {0};
  for (int p = 0; p < P; ++p)
    load[p] = 0.0;
  for (int n = 0; n < L; ++n) {
    int best = -1;
    for (int l = 0; l < L; ++l)
      if (!done[l] && (best < 0 || solve_cost(in[l], out[l]) > solve_cost(in[best], out[best])))
        best = l;
    done[best] = 1;
    int r = 0;
    for (int p = 1; p < P; ++p)
      if (load[p] < load[r]) r = p;
    owner[best] = r;
    load[r] += solve_cost(in[best], out[best]);
  }
}

/* Bytes per rank of layer l whole (partial A and G, their reduction, the record) or with A
 * block-cyclic (A and V blocks, G as before, sigma), without the shared buffers. */
static double layer_bytes(double in, double out, int P, int dist) {
  if (dist) return 8.0 * (2.3 * in * in / P + 2.5 * out * out + 2.0 * in + out);
  return 8.0 * (2.5 * in * in + 2.5 * out * out + 4.0 * in + out);
}

static double placement_bytes(int L, const int *in, const int *out, int P, double B,
                              const int *dist) {
  double mem = 0.0, d = 0.0, rin = 1.0, maxout = 1.0, din = 0.0, dout = 0.0;
  for (int l = 0; l < L; ++l) {
    mem += layer_bytes(in[l], out[l], P, dist[l]);
    d += (double)in[l] * out[l];
    maxout = out[l] > maxout ? out[l] : maxout;
    if (dist[l]) {
      din = in[l] > din ? in[l] : din;
      dout = out[l] > dout ? out[l] : dout;
    } else {
      rin = in[l] > rin ? in[l] : rin;
    }
  }
  const double maxw = (rin > maxout ? rin : maxout) > din ? (rin > maxout ? rin : maxout) : din;
  const double wrep = rin > maxout ? rin : maxout;
  /* scaled columns, the owners' workspace, a share of rotated columns, u, and the
   * block-cyclic layers' all-gather and replicated products */
  return mem +
         8.0 * (maxw * B + 3.0 * wrep * wrep + 2.0 * rin * maxout + d + din * B + 3.0 * din * dout);
}

int nhgd_kfac_net_layout_mode(const char *layout) {
  return !strcmp(layout, "distributed") ? 2 : !strcmp(layout, "replicated") ? 1 : 0;
}

double nhgd_kfac_net_place(int L, const int *in, const int *out, int P, double B, int mode,
                           double budget, int *dist) {
  for (int l = 0; l < L; ++l)
    dist[l] = mode == 2;
  double mem = placement_bytes(L, in, out, P, B, dist);
  while (mode == 0 && mem > budget) {
    int best = -1;
    for (int l = 0; l < L; ++l)
      if (!dist[l] && (best < 0 || in[l] > in[best])) best = l;
    if (best < 0) break;
    dist[best] = 1;
    mem = placement_bytes(L, in, out, P, B, dist);
  }
  return mem;
}

void nhgd_kfac_net_cost(int L, const int *in, const int *out, const int *dist, int P, double T,
                        double B, double *flops, double *bytes) {
  if (L < 1 || L > 64) { /* nhgd_kfac_net_init refuses these */
    *flops = *bytes = INFINITY;
    return;
  }
  double upd = 0.0, busiest = 0.0, grid = 0.0;
  int owner[64], sin[64];
  double load[1024];
  const int Pm = P < 1024 ? P : 1024;
  /* A block-cyclic layer's owner decomposes only G. */
  for (int l = 0; l < L; ++l)
    sin[l] = dist[l] ? 0 : in[l];
  assign_owners(L, sin, out, Pm, owner, load);
  for (int p = 0; p < Pm; ++p)
    busiest = load[p] > busiest ? load[p] : busiest;
  for (int l = 0; l < L; ++l) {
    upd += (double)in[l] * in[l] + (double)out[l] * out[l];
    if (dist[l]) grid += 10.0 * (double)in[l] * in[l] * in[l] / P; /* pdsyevd */
  }
  /* The reduction and the eigen-decomposition run at about 3 n^3 DGEMM-equivalent flops
   * (dsytrd and dsyevd, measured on this project's machines). */
  *flops = T * B * upd / P + 3.0 * busiest + grid;
  *bytes = placement_bytes(L, in, out, P, B, dist);
}

int nhgd_kfac_net_init(nhgd_kfac_net *k, MPI_Comm comm, int L, const int *in, const int *out,
                       int bmax, int refresh, const int *dist, const nhgd_grid *grid, int block) {
  memset(k, 0, sizeof *k);
  k->comm = comm;
  MPI_Comm_rank(comm, &k->rank);
  MPI_Comm_size(comm, &k->size);
  if (L < 1 || L > 64) NHGD_FAIL(NHGD_ERR_ARG, "nhgd kfac: %d layers (1 to 64 supported)", L);
  if (refresh < 1) NHGD_FAIL(NHGD_ERR_ARG, "nhgd kfac: refresh every %d outer steps", refresh);
  if (k->size > 1024) NHGD_FAIL(NHGD_ERR_ARG, "nhgd kfac: more than 1024 ranks");
  k->L = L;
  k->refresh = refresh;
  k->grid = grid;
  const size_t nl = (size_t)L, b = (size_t)(bmax > 0 ? bmax : 1);
  NHGD_CHECK(nhgd_calloc(&k->in, nl, sizeof(int), "K-FAC layer shapes"));
  NHGD_CHECK(nhgd_calloc(&k->out, nl, sizeof(int), "K-FAC layer shapes"));
  NHGD_CHECK(nhgd_calloc(&k->dist, nl, sizeof(int), "K-FAC layer placement"));
  NHGD_CHECK(nhgd_calloc(&k->off, nl, sizeof(int64_t), "K-FAC layer offsets"));
  NHGD_CHECK(nhgd_calloc(&k->owner, nl, sizeof(int), "K-FAC layer owners"));
  NHGD_CHECK(nhgd_calloc(&k->A, nl, sizeof(double *), "K-FAC factors"));
  NHGD_CHECK(nhgd_calloc(&k->G, nl, sizeof(double *), "K-FAC factors"));
  NHGD_CHECK(nhgd_calloc(&k->red, nl, sizeof(double *), "K-FAC reductions"));
  NHGD_CHECK(nhgd_calloc(&k->trF, nl, sizeof(double), "K-FAC traces"));
  NHGD_CHECK(nhgd_calloc(&k->req, nl, sizeof(MPI_Request), "K-FAC requests"));
  NHGD_CHECK(nhgd_calloc(&k->valid, nl, sizeof(int), "K-FAC record flags"));
  NHGD_CHECK(nhgd_calloc(&k->Ab, nl, sizeof(nhgd_bcmat *), "K-FAC block-cyclic factors"));
  NHGD_CHECK(nhgd_calloc(&k->Vb, nl, sizeof(nhgd_bcmat *), "K-FAC block-cyclic factors"));
  NHGD_CHECK(nhgd_calloc(&k->sig, nl, sizeof(double *), "K-FAC eigenvalues"));
  NHGD_CHECK(nhgd_calloc(&k->trA, nl, sizeof(double), "K-FAC traces"));
  int rin = 1, maxout = 1, din = 0, dout = 0, sin[64];
  for (int l = 0; l < L; ++l) {
    if (in[l] < 1 || out[l] < 1)
      NHGD_FAIL(NHGD_ERR_ARG, "nhgd kfac: layer %d has shape %d x %d", l, in[l], out[l]);
    k->in[l] = in[l];
    k->out[l] = out[l];
    k->dist[l] = dist && dist[l];
    if (k->dist[l] && !grid)
      NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd kfac: layer %d is block-cyclic but has no grid", l);
    k->off[l] = k->d;
    k->d += (int64_t)in[l] * out[l];
    maxout = out[l] > maxout ? out[l] : maxout;
    sin[l] = k->dist[l] ? 0 : in[l];
    const size_t ni = (size_t)in[l], no = (size_t)out[l];
    if (k->dist[l]) {
      din = in[l] > din ? in[l] : din;
      dout = out[l] > dout ? out[l] : dout;
      /* pdsyevd mis-sizes its workspace when a block is larger than half the matrix. */
      const int bl = block <= in[l] / 2 ? block : (in[l] / 2 > 1 ? in[l] / 2 : 1);
      NHGD_CHECK(nhgd_bcmat_create(grid, in[l], bl, &k->Ab[l]));
      NHGD_CHECK(nhgd_bcmat_create(grid, in[l], bl, &k->Vb[l]));
      NHGD_CHECK(nhgd_calloc(&k->sig[l], ni, sizeof(double), "K-FAC eigenvalues"));
    } else {
      rin = in[l] > rin ? in[l] : rin;
      NHGD_CHECK(nhgd_calloc(&k->A[l], ni * ni, sizeof(double), "K-FAC A"));
    }
    NHGD_CHECK(nhgd_calloc(&k->G[l], no * no, sizeof(double), "K-FAC G"));
    NHGD_CHECK(nhgd_calloc(&k->red[l], red_len(k, l), sizeof(double), "K-FAC reduction"));
  }
  double load[1024];
  /* A block-cyclic layer's owner decomposes only G. */
  assign_owners(L, sin, k->out, k->size, k->owner, load);
  const int wrep = rin > maxout ? rin : maxout, maxw = wrep > din ? wrep : din;
  NHGD_CHECK(nhgd_calloc(&k->S, (size_t)maxw * b, sizeof(double), "K-FAC scaled columns"));
  NHGD_CHECK(nhgd_calloc(&k->u, (size_t)k->d + 1, sizeof(double), "K-FAC solution"));
  /* Every rank solves a share of every layer's columns; the owners also decompose G. */
  int oout = 1;
  for (int l = 0; l < L; ++l)
    if (k->owner[l] == k->rank) oout = out[l] > oout ? out[l] : oout;
  NHGD_CHECK(nhgd_calloc(&k->bc, nl, sizeof(double *), "K-FAC records"));
  for (int l = 0; l < L; ++l)
    NHGD_CHECK(nhgd_calloc(&k->bc[l], rec_len(k, l), sizeof(double), "K-FAC record"));
  const int shares = (maxout + k->size - 1) / k->size;
  NHGD_CHECK(nhgd_calloc(&k->Y, (size_t)rin * shares, sizeof(double), "K-FAC rotated columns"));
  if (din > 0) {
    const size_t ww = (size_t)din * dout;
    NHGD_CHECK(nhgd_calloc(&k->Zg, (size_t)din * b, sizeof(double), "K-FAC gathered inputs"));
    NHGD_CHECK(nhgd_calloc(&k->nrm, b, sizeof(double), "K-FAC sample norms"));
    NHGD_CHECK(nhgd_calloc(&k->cnt, (size_t)k->size, sizeof(int), "K-FAC gather counts"));
    NHGD_CHECK(nhgd_calloc(&k->dsp, (size_t)k->size, sizeof(int), "K-FAC gather counts"));
    NHGD_CHECK(nhgd_calloc(&k->nbs, (size_t)k->size, sizeof(int), "K-FAC gather counts"));
    NHGD_CHECK(nhgd_calloc(&k->Yr, ww, sizeof(double), "K-FAC rotated system"));
    NHGD_CHECK(nhgd_calloc(&k->Wr, ww, sizeof(double), "K-FAC rotated system"));
    NHGD_CHECK(nhgd_calloc(&k->bw, 2 * ww, sizeof(double), "K-FAC block products"));
  }
  /* dsyevd with vectors (G): LWORK >= 1 + 6n + 2n^2, LIWORK >= 3 + 5n; dsytrd and dormtr
   * need at most n * block-size, and 64 columns per block is ample. */
  k->lwork = 1 + 6 * oout + 2 * oout * oout;
  if (k->lwork < 64 * wrep) k->lwork = 64 * wrep;
  k->liwork = 3 + 5 * oout;
  NHGD_CHECK(nhgd_calloc(&k->tri, (size_t)2 * rin, sizeof(double), "K-FAC tridiagonal system"));
  NHGD_CHECK(nhgd_calloc(&k->wk, (size_t)k->lwork, sizeof(double), "K-FAC workspace"));
  NHGD_CHECK(nhgd_calloc(&k->iwk, (size_t)k->liwork, sizeof(int), "K-FAC workspace"));
  return NHGD_OK;
}

void nhgd_kfac_net_free(nhgd_kfac_net *k) {
  nhgd_kfac_net_cancel_reduce(k);
  for (int l = 0; l < k->L; ++l) {
    if (k->A) nhgd_free(&k->A[l]);
    if (k->G) nhgd_free(&k->G[l]);
    if (k->red) nhgd_free(&k->red[l]);
    if (k->bc) nhgd_free(&k->bc[l]);
    if (k->sig) nhgd_free(&k->sig[l]);
    if (k->Ab) nhgd_bcmat_destroy(&k->Ab[l]);
    if (k->Vb) nhgd_bcmat_destroy(&k->Vb[l]);
  }
  nhgd_free(&k->bc);
  double **bufs[] = {&k->trF, &k->S,   &k->Y,  &k->Yall, &k->Sys, &k->wk, &k->u,
                     &k->tri, &k->trA, &k->Zg, &k->Yr,   &k->Wr,  &k->bw, &k->nrm};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_free(&k->A);
  nhgd_free(&k->G);
  nhgd_free(&k->red);
  nhgd_free(&k->sig);
  nhgd_free(&k->Ab);
  nhgd_free(&k->Vb);
  nhgd_free(&k->req);
  nhgd_free(&k->in);
  nhgd_free(&k->out);
  nhgd_free(&k->dist);
  nhgd_free(&k->off);
  nhgd_free(&k->owner);
  nhgd_free(&k->valid);
  nhgd_free(&k->cnt);
  nhgd_free(&k->dsp);
  nhgd_free(&k->nbs);
  nhgd_free(&k->iwk);
  k->L = 0;
}

void nhgd_kfac_net_reset(nhgd_kfac_net *k) {
  nhgd_kfac_net_cancel_reduce(k);
  for (int l = 0; l < k->L; ++l) {
    if (k->dist[l])
      nhgd_bcmat_zero(k->Ab[l]);
    else
      memset(k->A[l], 0, (size_t)k->in[l] * k->in[l] * sizeof(double));
    memset(k->G[l], 0, (size_t)k->out[l] * k->out[l] * sizeof(double));
    k->trF[l] = 0.0;
  }
  k->failed = 0;
}

/* S = the n x nb columns x scaled by sqrt(w), and sum_s w_s |x_s|^2 |y_s|^2 via nrm (nb). */
static void scale_columns(int n, int nb, const double *x, const double *w, double *S, double *nrm) {
  for (int s = 0; s < nb; ++s) {
    const double sw = sqrt(w[s] > 0.0 ? w[s] : 0.0);
    const double *c = x + (size_t)s * n;
    double *o = S + (size_t)s * n, sq = 0.0;
    for (int j = 0; j < n; ++j) {
      o[j] = sw * c[j];
      sq += c[j] * c[j];
    }
    nrm[s] = sq;
  }
}

/* A block-cyclic layer's share of a step: every rank's scaled inputs all-gathered, then each
 * rank adds them to its own blocks of A (lower triangle, what pdsyevd reads). */
static int add_gathered(nhgd_kfac_net *k, int l, const int *nbs, const double *a, const double *w,
                        double *na) {
  const int in = k->in[l], nb = nbs[k->rank];
  scale_columns(in, nb, a, w, k->S, na);
  int mine = nb * in, total = 0;
  for (int p = 0; p < k->size; ++p) {
    k->cnt[p] = nbs[p] * in;
    k->dsp[p] = total;
    total += k->cnt[p];
  }
  NHGD_MPI_CHECK(
      MPI_Allgatherv(k->S, mine, MPI_DOUBLE, k->Zg, k->cnt, k->dsp, MPI_DOUBLE, k->comm));
  if (k->size > 1) k->bytes += 8.0 * (total - mine);
  return total > 0 ? nhgd_bcmat_add_gram(k->Ab[l], k->Zg, total / in, 1.0, 1) : NHGD_OK;
}

int nhgd_kfac_net_add(nhgd_kfac_net *k, int nb, double *const *a, double *const *g,
                      const double *w) {
  double na[1024], ng[1024];
  int *nbs = k->nbs, any = 0;
  for (int l = 0; l < k->L; ++l)
    any |= k->dist[l];
  /* Every rank's sample count, once per step, for the block-cyclic layers' all-gathers. */
  if (any) NHGD_MPI_CHECK(MPI_Allgather(&nb, 1, MPI_INT, nbs, 1, MPI_INT, k->comm));
  for (int l = 0; l < k->L; ++l) {
    const int in = k->in[l], out = k->out[l];
    /* The trace of F needs |a|^2 per sample: the gathered layers compute it here. */
    if (k->dist[l]) NHGD_CHECK(add_gathered(k, l, nbs, a[l], w, k->nrm));
    for (int b0 = 0; b0 < nb; b0 += 1024) {
      const int n = nb - b0 < 1024 ? nb - b0 : 1024;
      if (k->dist[l]) {
        memcpy(na, k->nrm + b0, (size_t)n * sizeof(double));
      } else {
        scale_columns(in, n, a[l] + (size_t)b0 * in, w + b0, k->S, na);
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, in, n, 1.0, k->S, in, 1.0, k->A[l],
                    in);
      }
      scale_columns(out, n, g[l] + (size_t)b0 * out, w + b0, k->S, ng);
      cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, out, n, 1.0, k->S, out, 1.0, k->G[l],
                  out);
      for (int s = 0; s < n; ++s)
        k->trF[l] += (w[b0 + s] > 0.0 ? w[b0 + s] : 0.0) * na[s] * ng[s];
    }
  }
  return NHGD_OK;
}

int nhgd_kfac_net_start_reduce(nhgd_kfac_net *k) {
  if (k->pending) return NHGD_OK;
  for (int l = 0; l < k->L; ++l) {
    const int in = k->in[l], out = k->out[l];
    double *p = k->red[l];
    const size_t ga = k->dist[l] ? 0 : lower_len(in);
    if (!k->dist[l]) nhgd_kfac_pack_lower(in, k->A[l], p);
    nhgd_kfac_pack_lower(out, k->G[l], p + ga);
    p[ga + lower_len(out)] = k->trF[l];
    const int n = (int)red_len(k, l), root = k->owner[l];
    const void *send = k->rank == root ? MPI_IN_PLACE : (const void *)p;
    NHGD_MPI_CHECK(MPI_Ireduce(send, p, n, MPI_DOUBLE, MPI_SUM, root, k->comm, &k->req[l]));
    if (k->rank == root && k->size > 1) k->bytes += 8.0 * n;
  }
  k->pending = 1;
  return NHGD_OK;
}

void nhgd_kfac_net_cancel_reduce(nhgd_kfac_net *k) {
  if (k->pending) MPI_Waitall(k->L, k->req, MPI_STATUSES_IGNORE);
  k->pending = 0;
}

/* The damping of a layer (in x out entries at Dl): 0 when it is one value (*delta), 1 when it
 * depends on the input row only, -1 otherwise. */
static int damping_form(int in, int out, const double *Dl, double *delta) {
  int constant = 1;
  for (int64_t j = 1; j < (int64_t)in * out && constant; ++j)
    constant = Dl[j] == Dl[0];
  *delta = Dl[0];
  if (constant) return 0;
  for (int o = 1; o < out; ++o)
    for (int j = 0; j < in; ++j)
      if (Dl[j + (size_t)o * in] != Dl[j]) return -1;
  return 1;
}

const char *nhgd_kfac_net_damping_refusal(int L, const int *in, const int *out, const double *D,
                                          char *buf, int len) {
  int64_t off = 0;
  for (int l = 0; l < L; ++l) {
    double delta;
    if (damping_form(in[l], out[l], D + off, &delta) < 0) {
      snprintf(buf, (size_t)len,
               "the damping D = Hess R + lambda_F on layer %d differs between its output units, "
               "so the layer's block does not split into Kronecker-structured systems",
               l);
      return buf;
    }
    off += (int64_t)in[l] * out[l];
  }
  return NULL;
}

static int eigen(nhgd_kfac_net *k, int n, double *Q, double *lam) {
  int info = 0;
  dsyevd_("V", "L", &n, Q, &n, lam, k->wk, &k->lwork, k->iwk, &k->liwork, &info, 1, 1);
  if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: eigen-decomposition failed (%d)", info);
  /* The factors are positive semi-definite: negative eigenvalues are rounding. */
  for (int i = 0; i < n; ++i)
    lam[i] = lam[i] > 0.0 ? lam[i] : 0.0;
  return NHGD_OK;
}

/* This rank's share of the columns of layer l's rotated system, from the owner's record:
 * tau A U G + delta U = Gamma with A = Q T Q^T (dsytrd) and G = Q_G Lambda Q_G^T, so with
 * Y = Q^T Gamma Q_G each column c is the SPD tridiagonal system (tau lambda_c T + delta I)
 * y_c = Y_c (dptsv); this rank adds Q Y_c q_c^T over its columns c to U (the allreduce of u
 * sums the shares). Exact like diagonalising A, at about half the cost, and the part after
 * the reduction is spread over the ranks. */
static int solve_columns(nhgd_kfac_net *k, int l, double delta, const double *gl, double *ul) {
  const int in = k->in[l], out = k->out[l], one = 1;
  const double *rec = k->bc[l];
  const double tau = rec[1];
  const double *Aref = rec + 3, *tq = Aref + (size_t)in * in, *d = tq + in, *e = d + in;
  const double *QG = e + in, *lam = QG + (size_t)out * out;
  const int c0 = (int)((int64_t)out * k->rank / k->size);
  const int nc = (int)((int64_t)out * (k->rank + 1) / k->size) - c0;
  if (nc <= 0) return NHGD_OK;
  double *dd = k->tri, *ee = dd + in;
  int info = 0;
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, nc, out, 1.0, gl, in,
              QG + (size_t)c0 * out, out, 0.0, k->Y, in);
  dormtr_("L", "L", "T", &in, &nc, Aref, &in, tq, k->Y, &in, k->wk, &k->lwork, &info, 1, 1, 1);
  if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: applying Q^T failed (%d)", info);
  for (int j = 0; j < nc; ++j) {
    double *y = k->Y + (size_t)j * in;
    const double a = tau * lam[c0 + j];
    if (!(a > 0.0)) {
      for (int r = 0; r < in; ++r)
        y[r] /= delta;
      continue;
    }
    for (int r = 0; r < in; ++r) {
      dd[r] = a * d[r] + delta;
      if (r + 1 < in) ee[r] = a * e[r];
    }
    dptsv_(&in, &one, dd, ee, y, &in, &info);
    if (info) {
      double amax = 0.0;
      for (int r = 0; r < in; ++r)
        amax = nhgd_kfac_absmax(nhgd_kfac_absmax(amax, a * d[r]), r + 1 < in ? a * e[r] : 0.0);
      char why[300];
      nhgd_kfac_not_pd(amax, delta, why, sizeof why);
      NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: layer %d, eigen-direction %d (minor %d): %s", l,
                c0 + j, info, why);
    }
  }
  dormtr_("L", "L", "N", &in, &nc, Aref, &in, tq, k->Y, &in, k->wk, &k->lwork, &info, 1, 1, 1);
  if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: applying Q failed (%d)", info);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, in, out, nc, 1.0, k->Y, in,
              QG + (size_t)c0 * out, out, 1.0, ul, in);
  return NHGD_OK;
}

/* On layer l's owner: the sums, tau, G = Q_G Lambda Q_G^T and, where the damping is one
 * value (form 0), the tridiagonal reduction of A, into the layer's broadcast record (status
 * 0); where it varies with the input row (form 1) A stays whole in the record (status 2) and
 * the owner solves the layer alone (solve_whole). */
static int prepare_layer(nhgd_kfac_net *k, int l, int form) {
  const int in = k->in[l], out = k->out[l];
  const double *p = k->red[l];
  double *rec = k->bc[l];
  double *A = rec + 3, *tq = A + (size_t)in * in, *d = tq + in, *e = d + in;
  double *QG = e + in, *lam = QG + (size_t)out * out;
  if (form < 0) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: layer %d: damping not per layer", l);
  memset(A, 0, (size_t)in * in * sizeof(double));
  nhgd_kfac_unpack_lower(in, p, A);
  nhgd_kfac_unpack_lower(out, p + lower_len(in), k->G[l]);
  const double trF = p[lower_len(in) + lower_len(out)];
  double trA = 0.0, trG = 0.0;
  for (int j = 0; j < in; ++j)
    trA += A[j + (size_t)j * in];
  for (int j = 0; j < out; ++j)
    trG += k->G[l][j + (size_t)j * out];
  rec[1] = trA > 0.0 && trG > 0.0 ? trF / (trA * trG) : 0.0;
  memcpy(QG, k->G[l], (size_t)out * out * sizeof(double));
  NHGD_CHECK(eigen(k, out, QG, lam));
  if (form == 0) {
    int info = 0;
    dsytrd_("L", &in, A, &in, d, e, tq, k->wk, &k->lwork, &info, 1);
    if (info) NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: tridiagonal reduction failed (%d)", info);
    rec[0] = 0.0;
  } else {
    rec[0] = 2.0;
  }
  return NHGD_OK;
}

/* On the owner of a layer whose record has A whole (status 2): u_l = (tau G (x) A + I (x)
 * D_x)^{-1} g_l, one SPD system of A per eigen-direction of G. */
static int solve_whole(nhgd_kfac_net *k, int l, const double *Dx, const double *gl, double *ul) {
  const int in = k->in[l], out = k->out[l], one = 1;
  const double *rec = k->bc[l];
  const double tau = rec[1], *A = rec + 3;
  const double *QG = A + (size_t)in * in + 3 * (size_t)in, *lam = QG + (size_t)out * out;
  if (!k->Yall) { /* room for the largest layer: the form of a layer's damping may change */
    nhgd_free(&k->Sys);
    size_t sys = 1, all = 1;
    for (int j = 0; j < k->L; ++j) {
      const size_t nj = (size_t)k->in[j], mj = (size_t)k->out[j];
      sys = nj * nj > sys ? nj * nj : sys;
      all = nj * mj > all ? nj * mj : all;
    }
    NHGD_CHECK(nhgd_calloc(&k->Sys, sys, sizeof(double), "K-FAC system"));
    NHGD_CHECK(nhgd_calloc(&k->Yall, all, sizeof(double), "K-FAC rotated system"));
  }
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, out, out, 1.0, gl, in, QG, out, 0.0,
              k->Yall, in);
  for (int o = 0; o < out; ++o) {
    double *y = k->Yall + (size_t)o * in;
    const double a = tau * lam[o];
    if (!(a > 0.0)) {
      for (int j = 0; j < in; ++j)
        y[j] /= Dx[j];
      continue;
    }
    for (int j = 0; j < in; ++j) {
      for (int r = j; r < in; ++r)
        k->Sys[r + (size_t)j * in] = a * A[r + (size_t)j * in];
      k->Sys[j + (size_t)j * in] += Dx[j];
    }
    int info = 0;
    dpotrf_("L", &in, k->Sys, &in, &info, 1);
    if (!info) dpotrs_("L", &in, &one, k->Sys, &in, y, &in, &info, 1);
    if (info) {
      double amax = 0.0, dmin = INFINITY;
      for (size_t e = 0; e < (size_t)in * in; ++e)
        amax = nhgd_kfac_absmax(amax, a * A[e]);
      for (int j = 0; j < in; ++j)
        dmin = fmin(dmin, Dx[j]);
      char why[300];
      nhgd_kfac_not_pd(amax, dmin, why, sizeof why);
      NHGD_FAIL(NHGD_ERR_NUMERIC, "nhgd kfac: layer %d, direction %d (minor %d): %s", l, o, info,
                why);
    }
  }
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, in, out, out, 1.0, k->Yall, in, QG, out, 0.0,
              ul, in);
  return NHGD_OK;
}

/* On a block-cyclic layer's owner: tau (with the trace of A, which every rank has) and G =
 * Q_G Lambda Q_G^T into the record (status 3). */
static int prepare_dist(nhgd_kfac_net *k, int l) {
  const int out = k->out[l];
  const double *p = k->red[l];
  double *rec = k->bc[l], *QG = rec_QG(k, l), *lam = QG + (size_t)out * out, *G = k->G[l];
  nhgd_kfac_unpack_lower(out, p, G);
  const double trF = p[lower_len(out)];
  double trG = 0.0;
  for (int j = 0; j < out; ++j)
    trG += G[j + (size_t)j * out];
  rec[1] = k->trA[l] > 0.0 && trG > 0.0 ? trF / (k->trA[l] * trG) : 0.0;
  memcpy(QG, G, (size_t)out * out * sizeof(double));
  NHGD_CHECK(eigen(k, out, QG, lam));
  rec[0] = 3.0;
  return NHGD_OK;
}

/* Collective: a block-cyclic layer's trace of A and A = V diag(sigma) V^T (A destroyed). */
static int decompose_dist(nhgd_kfac_net *k, int l) {
  const int in = k->in[l];
  double *sig = k->sig[l], tr = 0.0;
  NHGD_CHECK(nhgd_bcmat_diag(k->Ab[l], sig));
  for (int i = 0; i < in; ++i)
    tr += sig[i];
  k->trA[l] = tr;
  NHGD_CHECK(nhgd_bcmat_eigen(k->Ab[l], k->Vb[l], sig));
  for (int i = 0; i < in; ++i) /* A is positive semi-definite: negative values are rounding */
    sig[i] = sig[i] > 0.0 ? sig[i] : 0.0;
  return NHGD_OK;
}

/* Collective: this rank's part of a block-cyclic layer's u_l = V [((V^T Gamma Q_G) ./ (tau
 * sigma lambda^T + delta)) Q_G^T] (the allreduce of u sums the parts): V^T Gamma replicated
 * by one allreduce, then only the rows of this rank's block columns. skip: take part in the
 * allreduce only. */
static int solve_dist(nhgd_kfac_net *k, int l, double delta, const double *gl, double *ul,
                      int skip) {
  const int out = k->out[l];
  const nhgd_bcmat *V = k->Vb[l];
  NHGD_CHECK(nhgd_bcmat_tmul(V, gl, out, k->Yr, k->bw));
  const int nloc = V->nloc, in = k->in[l];
  if (skip || nloc == 0 || V->mloc == 0) return NHGD_OK;
  const double tau = k->bc[l][1], *QG = rec_QG(k, l), *lam = QG + (size_t)out * out;
  const double *sig = k->sig[l];
  double *Ml = k->bw, *Tl = k->bw + (size_t)nloc * out;
  for (int c = 0; c < out; ++c)
    for (int j = 0; j < nloc; ++j)
      Ml[j + (size_t)c * nloc] = k->Yr[V->gcol[j] + (size_t)c * in];
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, nloc, out, out, 1.0, Ml, nloc, QG, out,
              0.0, Tl, nloc);
  for (int c = 0; c < out; ++c)
    for (int j = 0; j < nloc; ++j)
      Tl[j + (size_t)c * nloc] /= tau * sig[V->gcol[j]] * lam[c] + delta;
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, nloc, out, out, 1.0, Tl, nloc, QG, out, 0.0,
              Ml, nloc);
  for (int c = 0; c < out; ++c)
    for (int j = 0; j < nloc; ++j)
      k->Wr[V->gcol[j] + (size_t)c * in] = Ml[j + (size_t)c * nloc];
  nhgd_bcmat_mul_part(V, k->Wr, out, ul, k->bw);
  return NHGD_OK;
}

int nhgd_kfac_net_solve(nhgd_kfac_net *k, const double *D, const double *g, double *u, int fresh) {
  int rc = NHGD_OK;
  double delta[64]; /* each layer's damping value (its first entry) */
  if (fresh) {
    NHGD_CHECK(nhgd_kfac_net_start_reduce(k));
    k->pending = 0;
    NHGD_MPI_CHECK(MPI_Waitall(k->L, k->req, MPI_STATUSES_IGNORE));
    k->have = 1;
    for (int l = 0; l < k->L; ++l) {
      k->valid[l] = 0;
      if (k->dist[l] && !rc) rc = decompose_dist(k, l); /* collective */
    }
  } else if (!k->have) {
    NHGD_FAIL(NHGD_ERR_INTERNAL, "nhgd kfac: no factors to reuse");
  }
  memset(k->u, 0, ((size_t)k->d + 1) * sizeof(double));
  /* A layer needs a new record after a reduction, or when the form of its damping no longer
   * matches the record's; every rank holds D and the records' status, so every rank knows
   * which. The owners prepare those layers; a failure travels in the record (status 1), so
   * every rank still takes part in every broadcast. */
  if (k->failed && !rc) rc = NHGD_ERR_NUMERIC;
  for (int l = 0; l < k->L; ++l) {
    const int form = damping_form(k->in[l], k->out[l], D + k->off[l], &delta[l]);
    const double status = k->valid[l] ? k->bc[l][0] : -1.0;
    int need;
    if (k->dist[l]) {
      need = status != 3.0;
      if (form != 0 && !rc) /* every rank sees the same D */
        rc = nhgd_error_set(NHGD_ERR_NUMERIC, __FILE__, __LINE__,
                            "nhgd kfac: layer %d has A block-cyclic, which needs one damping "
                            "value on the layer",
                            l);
    } else {
      need = !(form == 0 ? status == 0.0 : form == 1 && status == 2.0);
    }
    k->valid[l] = need ? -1 : 1;
    if (k->owner[l] != k->rank || !need) continue;
    const int lrc = rc ? rc : k->dist[l] ? prepare_dist(k, l) : prepare_layer(k, l, form);
    if (lrc) {
      k->bc[l][0] = 1.0;
      rc = lrc;
    }
  }
  for (int l = 0; l < k->L; ++l)
    if (k->valid[l] < 0)
      NHGD_MPI_CHECK(
          MPI_Ibcast(k->bc[l], (int)rec_len(k, l), MPI_DOUBLE, k->owner[l], k->comm, &k->req[l]));
  for (int l = 0; l < k->L; ++l) {
    if (k->valid[l] < 0) {
      NHGD_MPI_CHECK(MPI_Wait(&k->req[l], MPI_STATUS_IGNORE));
      if (k->owner[l] != k->rank && k->size > 1) k->bytes += 8.0 * (double)rec_len(k, l);
      k->valid[l] = k->bc[l][0] != 1.0;
    }
    const double status = k->bc[l][0];
    if (k->dist[l]) { /* collective: every rank, also after a failure */
      const int lrc =
          solve_dist(k, l, delta[l], g + k->off[l], k->u + k->off[l], rc || status != 3.0);
      if (!rc) rc = lrc;
      if (k->size > 1) k->bytes += 8.0 * (double)k->in[l] * k->out[l];
      continue;
    }
    if (rc) continue;
    if (status == 0.0)
      rc = solve_columns(k, l, delta[l], g + k->off[l], k->u + k->off[l]);
    else if (status == 2.0 && k->owner[l] == k->rank)
      rc = solve_whole(k, l, D + k->off[l], g + k->off[l], k->u + k->off[l]);
  }
  const int mine = rc != NHGD_OK || k->failed;
  k->u[k->d] = mine ? 1.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, k->u, (int)(k->d + 1), MPI_DOUBLE, MPI_SUM, k->comm));
  k->bytes += 8.0 * (double)(k->d + 1);
  if (k->u[k->d] > 0.0) NHGD_CHECK(nhgd_error_agree(k->comm, mine ? 1 : 0));
  memcpy(u, k->u, (size_t)k->d * sizeof(double));
  return NHGD_OK;
}

/* The placement as a string of L characters, 1 where A is block-cyclic. */
static void placement_string(const nhgd_kfac_net *k, char *buf) {
  for (int l = 0; l < k->L; ++l)
    buf[l] = k->dist[l] ? '1' : '0';
  buf[k->L] = '\0';
}

/* A checkpoint's state continues only with the same placement (none recorded: every A whole). */
static int check_placement(const nhgd_kfac_net *k, nhgd_section *sec) {
  char mine[72], saved[72];
  placement_string(k, mine);
  memset(saved, '0', (size_t)k->L);
  saved[k->L] = '\0';
  if (nhgd_section_has(sec, "kfac_placement"))
    NHGD_CHECK(nhgd_section_get_string(sec, "kfac_placement", saved, sizeof saved));
  if (strcmp(saved, mine))
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint's K-FAC state has A block-cyclic on layers '%s' (1 = block-cyclic, "
              "layer 0 first), this run on '%s': continue with the checkpoint's --kfac-layout "
              "(or auto)",
              saved, mine);
  return NHGD_OK;
}

int nhgd_kfac_net_placement(nhgd_section *resume, int L, int *dist) {
  char saved[72];
  if (!resume || !nhgd_section_has(resume, "kfac_placement")) return 0;
  if (nhgd_section_get_string(resume, "kfac_placement", saved, sizeof saved) ||
      (int)strlen(saved) != L)
    return 0;
  for (int l = 0; l < L; ++l)
    dist[l] = saved[l] == '1';
  return 1;
}

int nhgd_kfac_net_save(nhgd_kfac_net *k, nhgd_section *sec) {
  int failed = k->failed;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, k->comm));
  if (failed) NHGD_CHECK(nhgd_error_agree(k->comm, k->failed ? 1 : 0));
  char name[72];
  placement_string(k, name);
  NHGD_CHECK(nhgd_section_put_int(sec, "kfac_ranks", k->size));
  NHGD_CHECK(nhgd_section_put_int(sec, "kfac_layers", k->L));
  NHGD_CHECK(nhgd_section_put_string(sec, "kfac_placement", name));
  NHGD_CHECK(nhgd_kfac_put_partial(k->rank, k->size, sec, "kfac_trF", k->L, k->trF));
  for (int l = 0; l < k->L; ++l) {
    snprintf(name, sizeof name, "kfac_A%d", l);
    if (k->dist[l])
      NHGD_CHECK(nhgd_section_put_matrix(sec, name, k->Ab[l]));
    else
      NHGD_CHECK(nhgd_kfac_put_partial(k->rank, k->size, sec, name, (int64_t)k->in[l] * k->in[l],
                                       k->A[l]));
    snprintf(name, sizeof name, "kfac_G%d", l);
    NHGD_CHECK(nhgd_kfac_put_partial(k->rank, k->size, sec, name, (int64_t)k->out[l] * k->out[l],
                                     k->G[l]));
  }
  if (k->refresh == 1) return NHGD_OK;
  /* The sums last reduced serve the next outer steps: each owner writes its layers' (and a
   * block-cyclic layer's decomposition of A is written whole). */
  NHGD_CHECK(nhgd_section_put_int(sec, "kfac_have", k->have));
  for (int l = 0; l < k->L; ++l) {
    const int64_t n = (int64_t)red_len(k, l);
    snprintf(name, sizeof name, "kfac_kept%d", l);
    NHGD_CHECK(nhgd_section_put_slice(sec, name, n, 0, k->owner[l] == k->rank ? n : 0, k->red[l]));
    if (!k->dist[l]) continue;
    snprintf(name, sizeof name, "kfac_trA%d", l);
    NHGD_CHECK(nhgd_section_put_real(sec, name, k->trA[l]));
    snprintf(name, sizeof name, "kfac_V%d", l);
    NHGD_CHECK(nhgd_section_put_matrix(sec, name, k->Vb[l]));
    snprintf(name, sizeof name, "kfac_sigma%d", l);
    NHGD_CHECK(nhgd_section_put_vector(sec, name, k->in[l], k->sig[l]));
  }
  return NHGD_OK;
}

static int check_layers(const nhgd_kfac_net *k, nhgd_section *sec) {
  int64_t layers;
  NHGD_CHECK(nhgd_section_get_int(sec, "kfac_layers", &layers));
  if (layers != k->L)
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint's K-FAC state has %lld layers, this network %d: "
              "continue with the checkpoint's --hidden",
              (long long)layers, k->L);
  return check_placement(k, sec);
}

int nhgd_kfac_net_load_kept(nhgd_kfac_net *k, nhgd_section *sec) {
  k->have = 0;
  for (int l = 0; l < k->L; ++l)
    k->valid[l] = 0;
  if (k->refresh == 1 || !nhgd_section_has(sec, "kfac_have")) return NHGD_OK;
  int64_t have;
  NHGD_CHECK(nhgd_section_get_int(sec, "kfac_have", &have));
  NHGD_CHECK(check_layers(k, sec));
  if (have != 0 && have != 1)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's K-FAC state has flag kfac_have = %lld",
              (long long)have);
  if (!have) return NHGD_OK;
  char name[32];
  for (int l = 0; l < k->L; ++l) {
    const int64_t n = (int64_t)red_len(k, l);
    snprintf(name, sizeof name, "kfac_kept%d", l);
    const int64_t mine = k->owner[l] == k->rank ? n : 0;
    NHGD_CHECK(nhgd_section_get_slice(sec, name, n, 0, mine, k->red[l]));
    NHGD_CHECK(nhgd_section_check_finite(sec, name, mine, k->red[l]));
    if (!k->dist[l]) continue;
    snprintf(name, sizeof name, "kfac_trA%d", l);
    NHGD_CHECK(nhgd_section_get_real(sec, name, &k->trA[l]));
    NHGD_CHECK(nhgd_section_check_finite(sec, name, 1, &k->trA[l]));
    snprintf(name, sizeof name, "kfac_V%d", l);
    NHGD_CHECK(nhgd_section_get_matrix(sec, name, k->Vb[l]));
    NHGD_CHECK(nhgd_section_check_finite_matrix(sec, name, k->Vb[l]));
    snprintf(name, sizeof name, "kfac_sigma%d", l);
    NHGD_CHECK(nhgd_section_get_vector(sec, name, k->in[l], k->sig[l]));
    NHGD_CHECK(nhgd_section_check_finite(sec, name, k->in[l], k->sig[l]));
  }
  k->have = 1;
  return NHGD_OK;
}

int nhgd_kfac_net_load(nhgd_kfac_net *k, nhgd_section *sec) {
  int64_t saved;
  NHGD_CHECK(nhgd_section_get_int(sec, "kfac_ranks", &saved));
  if (!nhgd_section_has(sec, "kfac_layers"))
    NHGD_FAIL(NHGD_ERR_ARG, "the checkpoint's K-FAC state is not layer-wise: it was written for "
                            "another problem");
  if (saved < 1 || saved > 1 << 24)
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint's K-FAC state names %lld ranks", (long long)saved);
  NHGD_CHECK(check_layers(k, sec));
  k->failed = 0;
  k->pending = 0;
  const int sv = (int)saved;
  NHGD_CHECK(nhgd_kfac_get_partial(k->rank, k->size, sec, "kfac_trF", k->L, sv, k->trF));
  NHGD_CHECK(nhgd_section_check_finite(sec, "kfac_trF", k->L, k->trF));
  char name[32];
  for (int l = 0; l < k->L; ++l) {
    snprintf(name, sizeof name, "kfac_A%d", l);
    const int64_t ii = (int64_t)k->in[l] * k->in[l], oo = (int64_t)k->out[l] * k->out[l];
    if (k->dist[l]) {
      NHGD_CHECK(nhgd_section_get_matrix(sec, name, k->Ab[l]));
      NHGD_CHECK(nhgd_section_check_finite_matrix(sec, name, k->Ab[l]));
    } else {
      NHGD_CHECK(nhgd_kfac_get_partial(k->rank, k->size, sec, name, ii, sv, k->A[l]));
      NHGD_CHECK(nhgd_section_check_finite(sec, name, ii, k->A[l]));
    }
    snprintf(name, sizeof name, "kfac_G%d", l);
    NHGD_CHECK(nhgd_kfac_get_partial(k->rank, k->size, sec, name, oo, sv, k->G[l]));
    NHGD_CHECK(nhgd_section_check_finite(sec, name, oo, k->G[l]));
  }
  return nhgd_kfac_net_load_kept(k, sec);
}
