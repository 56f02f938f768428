/* Multinomial-logistic kernels shared by logreg and hyperclean: batched logits, stable
 * softmax and log-sum-exp, residuals, and the batched callbacks built on them. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "nhgd/errors.h"
#include "problems/common.h"

void nhgd_softmax_logits(int m, int C, int nb, const double *xb, const double *W, double *Z) {
  if (nb == 0) return;
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, C, nb, m, 1.0, W, m, xb, m, 0.0, Z, C);
}

void nhgd_softmax_probs(int C, int nb, double *Z, const int32_t *y, double *ce, int64_t *correct) {
  for (int k = 0; k < nb; k++) {
    double *z = Z + (size_t)k * C;
    int arg = 0;
    for (int c = 1; c < C; c++)
      if (z[c] > z[arg]) arg = c;
    double zmax = z[arg], zy = z[y[k]], sum = 0.0;
    for (int c = 0; c < C; c++) {
      z[c] = exp(z[c] - zmax);
      sum += z[c];
    }
    /* sum >= 1 (the maximum contributes exp(0)), so the log and the division are safe. */
    for (int c = 0; c < C; c++)
      z[c] /= sum;
    if (ce) ce[k] = log(sum) + zmax - zy;
    if (correct && arg == y[k]) (*correct)++;
  }
}

void nhgd_softmax_residuals(int C, int nb, double *P, const int32_t *y, const double *scale) {
  for (int k = 0; k < nb; k++) {
    double *p = P + (size_t)k * C;
    p[y[k]] -= 1.0;
    if (scale)
      for (int c = 0; c < C; c++)
        p[c] *= scale[k];
  }
}

void nhgd_softmax_grad(int m, int C, int nb, const double *xb, const double *R, double beta,
                       double *G) {
  if (nb == 0) {
    if (beta == 0.0) memset(G, 0, (size_t)m * C * sizeof(double));
    return;
  }
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, m, C, nb, 1.0, xb, m, R, C, beta, G, m);
}

/* Weights of the nb rows in rw: the problem's row weight, w_i = 1 when it has none. */
static void row_weights(const nhgd_problem *pb, const double *v, int nb, const int *rows,
                        double *rw) {
  const nhgd_row_weight wf = ((const nhgd_pb_ctx *)pb->ctx)->row_weight;
  for (int k = 0; k < nb; k++)
    rw[k] = wf ? wf(v, rows[k]) : 1.0;
}

/* Gather one block of training rows and leave their probabilities in s->za and, if want_ce,
 * their cross-entropies in s->rl. */
static int forward_block(const nhgd_problem *pb, const double *W, int nb, const int *rows,
                         int want_ce) {
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nb, rows, s));
  nhgd_softmax_logits(s->m, s->C, nb, s->xb, W, s->za);
  nhgd_softmax_probs(s->C, nb, s->za, s->yc, want_ce ? s->rl : NULL, NULL);
  return NHGD_OK;
}

static int block_len(int nb, int b0) {
  return nb - b0 < NHGD_PB_BLOCK ? nb - b0 : NHGD_PB_BLOCK;
}

/* The block of the nb listed rows that starts at b0 (*nk rows): the forward pass (see
 * forward_block) and the rows' weights into rw (NULL: into the scratch's s->rw). */
static int prepare_block(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                         const int *rows, int b0, int want_ce, double *rw, int *nk) {
  *nk = block_len(nb, b0);
  NHGD_CHECK(forward_block(pb, theta, *nk, rows + b0, want_ce));
  row_weights(pb, v, *nk, rows + b0, rw ? rw : ((nhgd_pb_ctx *)pb->ctx)->s.rw);
  return NHGD_OK;
}

/* Room in the kept residuals for nb rows (grown, never shrunk). */
static int kept_reserve(nhgd_pb_kept *kp, int C, int nb) {
  if (nb <= kp->cap) return NHGD_OK;
  nhgd_free(&kp->r);
  nhgd_free(&kp->rows);
  kp->cap = kp->nb = 0;
  NHGD_CHECK(nhgd_calloc(&kp->r, (size_t)nb * (size_t)C, sizeof(double), "kept residuals"));
  NHGD_CHECK(nhgd_calloc(&kp->rows, (size_t)nb, sizeof(int), "kept rows"));
  kp->cap = nb;
  return NHGD_OK;
}

int nhgd_softmax_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, double *g, double *loss) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &ctx->s;
  nhgd_pb_kept *kp = &ctx->kept;
  const int keep = pb->ops.cross_keep != NULL;
  kp->nb = 0;
  if (keep) NHGD_CHECK(kept_reserve(kp, s->C, nb));
  memset(g, 0, (size_t)pb->d * sizeof(double));
  double total = 0.0;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 1, NULL, &nk));
    for (int k = 0; k < nk; k++)
      total += s->rw[k] * s->rl[k];
    nhgd_softmax_residuals(s->C, nk, s->za, s->yc, NULL);
    if (keep) memcpy(kp->r + (size_t)b0 * s->C, s->za, (size_t)nk * s->C * sizeof(double));
    for (int k = 0; k < nk; k++)
      for (int c = 0; c < s->C; c++)
        s->za[(size_t)k * s->C + c] *= s->rw[k];
    nhgd_softmax_grad(s->m, s->C, nk, s->xb, s->za, 1.0, g);
  }
  if (keep && nb > 0) {
    memcpy(kp->rows, rows, (size_t)nb * sizeof(int));
    kp->nb = nb;
  }
  *loss = total;
  return NHGD_OK;
}

int nhgd_softmax_cross_keep(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, int after_grad, double *K) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &ctx->s;
  const nhgd_pb_kept *kp = &ctx->kept;
  const size_t C = (size_t)s->C;
  if (nb == 0) return NHGD_OK;
  /* The rows inner_grad has just passed: their residuals are at hand. */
  if (after_grad && kp->nb == nb && !memcmp(kp->rows, rows, (size_t)nb * sizeof(int))) {
    memcpy(K, kp->r, (size_t)nb * C * sizeof(double));
    return NHGD_OK;
  }
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 0, NULL, &nk));
    nhgd_softmax_residuals(s->C, nk, s->za, s->yc, NULL);
    memcpy(K + (size_t)b0 * C, s->za, (size_t)nk * C * sizeof(double));
  }
  return NHGD_OK;
}

int nhgd_softmax_cross_apply(const nhgd_problem *pb, const double *v, const double *u, int nb,
                             const int *rows, const double *K, const double *scale, double *out) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  const nhgd_pb_ctx *ctx = pb->ctx;
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m, C = s->C;
  if (!ctx->row_weight_d)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "problem '%s' has no row weights to sample a cross term of",
              pb->name);
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nk, rows + b0, s));
    /* U^T x_k for the block, then q_k = w'(v) r_k^T (U^T x_k). */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, C, nk, m, 1.0, u, m, s->xb, m, 0.0, s->zb,
                C);
    for (int k = 0; k < nk; k++) {
      const double *r = K + (size_t)(b0 + k) * C, *a = s->zb + (size_t)k * C;
      double dot = 0.0;
      for (int c = 0; c < C; c++)
        dot += r[c] * a[c];
      const int row = rows[b0 + k];
      out[row] += scale[b0 + k] * ctx->row_weight_d(v, row) * dot;
    }
  }
  return NHGD_OK;
}

int nhgd_softmax_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *S, double *c) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const size_t m = (size_t)s->m, C = (size_t)s->C, d = (size_t)pb->d;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 0, c + b0, &nk));
    nhgd_softmax_residuals(s->C, nk, s->za, s->yc, NULL);
    /* s_k = x_k (x) r_k: column c of W's gradient is r_kc x_k. */
    for (int k = 0; k < nk; k++) {
      double *col = S + (size_t)(b0 + k) * d;
      const double *x = s->xb + (size_t)k * m, *r = s->za + (size_t)k * C;
      for (size_t cc = 0; cc < C; cc++)
        for (size_t j = 0; j < m; j++)
          col[j + cc * m] = x[j] * r[cc];
    }
  }
  return NHGD_OK;
}

int nhgd_softmax_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *Z) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const size_t m = (size_t)s->m, C = (size_t)s->C, d = (size_t)pb->d;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 0, NULL, &nk));
    /* Column c of Z_k is sqrt(w_k) x_k (x) sqrt(p_c) (e_c - p): these C columns give
     * sum_c p_c (e_c - p)(e_c - p)^T = diag(p) - p p^T in the class factor. */
    for (int k = 0; k < nk; k++) {
      const double *x = s->xb + (size_t)k * m, *p = s->za + (size_t)k * C;
      double sw = sqrt(s->rw[k]);
      for (size_t c = 0; c < C; c++) {
        double *col = Z + ((size_t)(b0 + k) * C + c) * d;
        double sc = sw * sqrt(p[c]);
        for (size_t c2 = 0; c2 < C; c2++) {
          double coef = sc * ((c2 == c ? 1.0 : 0.0) - p[c2]);
          for (size_t j = 0; j < m; j++)
            col[j + c2 * m] = coef * x[j];
        }
      }
    }
  }
  return NHGD_OK;
}

int nhgd_softmax_kron_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *X, double *R, double *A, double *c) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const size_t m = (size_t)s->m, C = (size_t)s->C;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 0, NULL, &nk));
    if (X) memcpy(X + (size_t)b0 * m, s->xb, (size_t)nk * m * sizeof(double));
    if (c) memcpy(c + b0, s->rw, (size_t)nk * sizeof(double));
    for (int k = 0; A && k < nk; k++) {
      /* w_k (diag(p) - p p^T), column-major C x C. */
      const double *p = s->za + (size_t)k * C;
      double *a = A + (size_t)(b0 + k) * C * C;
      for (size_t c2 = 0; c2 < C; c2++)
        for (size_t c1 = 0; c1 < C; c1++)
          a[c1 + c2 * C] = s->rw[k] * ((c1 == c2 ? p[c1] : 0.0) - p[c1] * p[c2]);
    }
    if (R) {
      nhgd_softmax_residuals(s->C, nk, s->za, s->yc, NULL);
      memcpy(R + (size_t)b0 * C, s->za, (size_t)nk * C * sizeof(double));
    }
  }
  return NHGD_OK;
}

/* a_k = V^T x_k for the block, then b_k = w_k (diag(p_k) - p_k p_k^T) a_k, then
 * HV += sum_k x_k b_k^T: two GEMMs and no d x d or per-sample d-vector. */
static void hvp_block(nhgd_pb_scratch *s, int nk, const double *V, double *HV) {
  const int m = s->m, C = s->C;
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, C, nk, m, 1.0, V, m, s->xb, m, 0.0, s->zb,
              C);
  for (int k = 0; k < nk; k++) {
    const double *p = s->za + (size_t)k * C;
    double *a = s->zb + (size_t)k * C;
    double pa = 0.0;
    for (int c = 0; c < C; c++)
      pa += p[c] * a[c];
    for (int c = 0; c < C; c++)
      a[c] = s->rw[k] * p[c] * (a[c] - pa);
  }
  nhgd_softmax_grad(m, C, nk, s->xb, s->zb, 1.0, HV);
}

int nhgd_softmax_hvp_multi(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, int n, const double *V, double *HV) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const size_t d = (size_t)pb->d;
  memset(HV, 0, d * (size_t)n * sizeof(double));
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    int nk;
    NHGD_CHECK(prepare_block(pb, theta, v, nb, rows, b0, 0, NULL, &nk));
    for (int j = 0; j < n; ++j)
      hvp_block(s, nk, V + (size_t)j * d, HV + (size_t)j * d);
  }
  return NHGD_OK;
}

int nhgd_softmax_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                     const int *rows, const double *V, double *HV) {
  return nhgd_softmax_hvp_multi(pb, theta, v, nb, rows, 1, V, HV);
}

int nhgd_softmax_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                      const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  if (!split) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': eval needs a split", pb->name);
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const int m = s->m, C = s->C, n = split->n_local;
  if (gtheta) memset(gtheta, 0, (size_t)pb->d * sizeof(double));
  double total = 0.0;
  int64_t hits = 0;
  /* The split's rows are contiguous (column-major m x n_local), so blocks are used in place
   * without gathering. */
  for (int b0 = 0; b0 < n; b0 += NHGD_PB_BLOCK) {
    int nk = block_len(n, b0);
    NHGD_CHECK(nhgd_pb_reserve(s, nk));
    const double *xb = split->X + (size_t)b0 * m;
    const int32_t *y = split->y_class + b0;
    nhgd_softmax_logits(m, C, nk, xb, theta, s->za);
    nhgd_softmax_probs(C, nk, s->za, y, s->rl, &hits);
    for (int k = 0; k < nk; k++)
      total += s->rl[k];
    if (gtheta) {
      nhgd_softmax_residuals(C, nk, s->za, y, NULL);
      nhgd_softmax_grad(m, C, nk, xb, s->za, 1.0, gtheta);
    }
  }
  *loss_sum = total;
  if (correct) *correct = hits;
  return NHGD_OK;
}
