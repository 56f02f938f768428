/* The `mlp-hyperclean` and `mlp-hpo` problems: a multi-layer perceptron (tanh or relu hidden
 * layers, softmax output, a bias per layer) in the two bilevel forms of the linear problems
 * (docs/algorithm.md 4.5). Every pass runs on a block of rows with one DGEMM per layer; no
 * per-sample d-vector is formed except in sample_grads, which only the dense-storage routes
 * call. Layer l maps a_l (in_l = width + 1 rows, the last one the bias's 1) to the
 * pre-activation z_l = W_l^T a_l, with W_l in_l x out_l at theta + off_l. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "nhgd/errors.h"
#include "problems/builtin.h"

#define MLP_MAX_LAYERS 16

typedef struct mlp_net {
  int L;                       /* layers (hidden + output) */
  int in[MLP_MAX_LAYERS];      /* rows of W_l: inputs + 1 */
  int out[MLP_MAX_LAYERS];     /* columns of W_l */
  int64_t off[MLP_MAX_LAYERS]; /* offset of W_l in theta */
  int act;                     /* NHGD_ACT_* */
  int hpo;                     /* 1: per-layer log L2 weights; 0: per-row clean logits */
  int distill;                 /* 1: distill's inner model (rows unweighted, features v) */
  int gn;                      /* hvp: the Gauss-Newton product instead of the Hessian's */
  int cap;                     /* rows the buffers hold */
  double *A[MLP_MAX_LAYERS];   /* in_l x cap: layer inputs */
  double *Z[MLP_MAX_LAYERS];   /* out_l x cap: pre-activations (last: probabilities) */
  double *D[MLP_MAX_LAYERS];   /* out_l x cap: gradients in the pre-activations */
  double *E[MLP_MAX_LAYERS];   /* out_l x cap: W-bar_{l+1} D_{l+1} before phi' */
  double *RA[MLP_MAX_LAYERS];  /* R-operator of A, Z, D (hvp) */
  double *RZ[MLP_MAX_LAYERS];
  double *RD[MLP_MAX_LAYERS];
  double *T;       /* maxw x cap: products with a direction */
  double *rw, *rl; /* cap: row weights, row losses */
  int32_t *y;      /* cap: labels */
  /* The last block of inner_grad, kept for layer_factors (which the engine calls right after
   * inner_grad, with a sub-list of its rows): the unweighted D_l (KD), the rows and weights,
   * and the pass count, theta and v it belongs to. A_l stays valid while no other pass runs. */
  double *KD[MLP_MAX_LAYERS];
  int *krows, *kcol;
  double *krw;
  int knb;
  uint64_t passes, kpass;
  const double *ktheta, *kv;
} mlp_net;

static mlp_net *net_of(const nhgd_problem *pb) {
  return ((nhgd_pb_ctx *)pb->ctx)->net;
}

static void net_free_buffers(mlp_net *n) {
  for (int l = 0; l < n->L; ++l) {
    double **b[] = {&n->A[l],  &n->Z[l],  &n->D[l],  &n->E[l],
                    &n->RA[l], &n->RZ[l], &n->RD[l], &n->KD[l]};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; ++i)
      nhgd_free(b[i]);
  }
  nhgd_free(&n->T);
  nhgd_free(&n->rw);
  nhgd_free(&n->rl);
  nhgd_free(&n->y);
  nhgd_free(&n->krows);
  nhgd_free(&n->kcol);
  nhgd_free(&n->krw);
  n->cap = 0;
  n->knb = 0;
}

static int net_reserve(mlp_net *n, int nb) {
  if (nb <= n->cap) return NHGD_OK;
  if (nb > NHGD_PB_BLOCK)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "mlp scratch asked for %d rows, more than the block %d", nb,
              NHGD_PB_BLOCK);
  const size_t cap = (size_t)(nb > NHGD_PB_BLOCK / 4 ? NHGD_PB_BLOCK : nb);
  net_free_buffers(n);
  int rc = NHGD_OK, maxw = 1;
  for (int l = 0; l < n->L; ++l) {
    const size_t in = (size_t)n->in[l], out = (size_t)n->out[l];
    maxw = n->in[l] > maxw ? n->in[l] : maxw;
    maxw = n->out[l] > maxw ? n->out[l] : maxw;
    NHGD_TRY(rc, nhgd_calloc(&n->A[l], in * cap, sizeof(double), "mlp layer inputs"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->Z[l], out * cap, sizeof(double), "mlp pre-activations"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->D[l], out * cap, sizeof(double), "mlp back-propagation"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->E[l], out * cap, sizeof(double), "mlp back-propagation"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->RA[l], in * cap, sizeof(double), "mlp R-operator"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->RZ[l], out * cap, sizeof(double), "mlp R-operator"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->RD[l], out * cap, sizeof(double), "mlp R-operator"), fail);
    NHGD_TRY(rc, nhgd_calloc(&n->KD[l], out * cap, sizeof(double), "mlp kept gradients"), fail);
  }
  NHGD_TRY(rc, nhgd_calloc(&n->krows, cap, sizeof(int), "mlp kept rows"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->kcol, cap, sizeof(int), "mlp kept rows"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->krw, cap, sizeof(double), "mlp kept weights"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->T, (size_t)maxw * cap, sizeof(double), "mlp products"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->rw, cap, sizeof(double), "mlp row weights"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->rl, cap, sizeof(double), "mlp row losses"), fail);
  NHGD_TRY(rc, nhgd_calloc(&n->y, cap, sizeof(int32_t), "mlp labels"), fail);
  n->cap = (int)cap;
  return NHGD_OK;
fail:
  net_free_buffers(n);
  return rc;
}

/* phi'(z) from the activation h = phi(z) (tanh: 1 - h^2; relu: h > 0). */
static double act_d1(int act, double h) {
  return act == NHGD_ACT_RELU ? (h > 0.0 ? 1.0 : 0.0) : 1.0 - h * h;
}

/* phi''(z) from h (tanh: -2 h (1 - h^2); relu: 0 almost everywhere). */
static double act_d2(int act, double h) {
  return act == NHGD_ACT_RELU ? 0.0 : -2.0 * h * (1.0 - h * h);
}

/* The forward pass of nb rows (X: m x nb, ld m; labels y): A_l and Z_l for every layer, the
 * output's probabilities in Z_{L-1}, cross-entropies in rl (if want_ce), hits in *correct. */
static void forward(mlp_net *n, const double *theta, int nb, const double *X, const int32_t *y,
                    int want_ce, int64_t *correct) {
  const int m = n->in[0] - 1;
  ++n->passes;
  for (int k = 0; k < nb; ++k) {
    double *a = n->A[0] + (size_t)k * n->in[0];
    memcpy(a, X + (size_t)k * m, (size_t)m * sizeof(double));
    a[m] = 1.0;
  }
  for (int l = 0; l < n->L; ++l) {
    const int in = n->in[l], out = n->out[l];
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, out, nb, in, 1.0, theta + n->off[l], in,
                n->A[l], in, 0.0, n->Z[l], out);
    if (l == n->L - 1) break;
    const int in2 = n->in[l + 1];
    for (int k = 0; k < nb; ++k) {
      const double *z = n->Z[l] + (size_t)k * out;
      double *a = n->A[l + 1] + (size_t)k * in2;
      if (n->act == NHGD_ACT_RELU)
        for (int j = 0; j < out; ++j)
          a[j] = z[j] > 0.0 ? z[j] : 0.0;
      else
        for (int j = 0; j < out; ++j)
          a[j] = tanh(z[j]);
      a[out] = 1.0;
    }
  }
  nhgd_softmax_probs(n->out[n->L - 1], nb, n->Z[n->L - 1], y, want_ce ? n->rl : NULL, correct);
}

/* Back-propagation of D_{L-1} (set by the caller) to every D_l; E_l keeps W-bar_{l+1} D_{l+1}
 * (the rows of W_{l+1} without the bias's) for the R-operator. */
static void backward(mlp_net *n, const double *theta, int nb) {
  for (int l = n->L - 1; l > 0; --l) {
    const int in = n->in[l], out = n->out[l], prev = n->out[l - 1];
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, prev, nb, out, 1.0, theta + n->off[l],
                in, n->D[l], out, 0.0, n->E[l - 1], prev);
    for (int k = 0; k < nb; ++k) {
      const double *h = n->A[l] + (size_t)k * in, *e = n->E[l - 1] + (size_t)k * prev;
      double *dd = n->D[l - 1] + (size_t)k * prev;
      for (int j = 0; j < prev; ++j)
        dd[j] = act_d1(n->act, h[j]) * e[j];
    }
  }
}

/* G_l = beta G_l + A_l S_l^T for every layer (S: D or a scaled copy). */
static void layer_grads(const mlp_net *n, int nb, double *const *S, double beta, double *g) {
  for (int l = 0; l < n->L; ++l) {
    const int in = n->in[l], out = n->out[l];
    if (nb == 0 && beta == 1.0) continue;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, in, out, nb, 1.0, n->A[l], in, S[l], out,
                beta, g + n->off[l], in);
  }
}

/* Scale column k of every D_l by w[k]. */
static void scale_deltas(mlp_net *n, int nb, const double *w, double **D) {
  for (int l = 0; l < n->L; ++l)
    for (int k = 0; k < nb; ++k)
      cblas_dscal(n->out[l], w[k], D[l] + (size_t)k * n->out[l], 1);
}

/* Gather nb listed training rows: features into A_0's place via a staging copy, labels, and
 * the row weights (sigmoid of the clean logits, or 1). */
static int gather(const nhgd_problem *pb, const double *v, int nb, const int *rows,
                  const double **X) {
  mlp_net *n = net_of(pb);
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  NHGD_CHECK(net_reserve(n, nb));
  /* distill: the training split's features are the synthetic images, this call's v */
  if (n->distill) ((nhgd_split *)&pb->data->train)->X = (double *)v;
  NHGD_CHECK(nhgd_pb_gather(&pb->data->train, nb, rows, s));
  memcpy(n->y, s->yc, (size_t)nb * sizeof(int32_t));
  for (int k = 0; k < nb; ++k)
    n->rw[k] = n->hpo || n->distill ? 1.0 : nhgd_pb_sigmoid(v[rows[k]]);
  *X = s->xb;
  return NHGD_OK;
}

static int block_len(int nb, int b0) {
  return nb - b0 < NHGD_PB_BLOCK ? nb - b0 : NHGD_PB_BLOCK;
}

/* Forward and unweighted backward pass of one block of listed rows: D_l = dloss/dz_l. */
static int block_pass(const nhgd_problem *pb, const double *theta, const double *v, int nk,
                      const int *rows, int want_ce) {
  mlp_net *n = net_of(pb);
  const double *X = NULL;
  NHGD_CHECK(gather(pb, v, nk, rows, &X));
  forward(n, theta, nk, X, n->y, want_ce, NULL);
  const int C = n->out[n->L - 1];
  memcpy(n->D[n->L - 1], n->Z[n->L - 1], (size_t)C * nk * sizeof(double));
  nhgd_softmax_residuals(C, nk, n->D[n->L - 1], n->y, NULL);
  backward(n, theta, nk);
  return NHGD_OK;
}

/* Keep the unweighted D_l of the block just passed for layer_factors. */
static void keep_block(mlp_net *n, const double *theta, const double *v, int nk, const int *rows) {
  for (int l = 0; l < n->L; ++l)
    memcpy(n->KD[l], n->D[l], (size_t)nk * n->out[l] * sizeof(double));
  memcpy(n->krows, rows, (size_t)nk * sizeof(int));
  memcpy(n->krw, n->rw, (size_t)nk * sizeof(double));
  n->knb = nk;
  n->kpass = n->passes;
  n->ktheta = theta;
  n->kv = v;
}

/* The factors of the listed rows from the block inner_grad kept, if it holds every one of
 * them and no pass ran since at the same theta and v (the caller vouches that theta did not
 * change in place): 1 when copied, 0 when the rows need a pass of their own. */
/* Whether the kept block holds every listed row (then n->kcol maps each to its column). */
static int kept_columns(mlp_net *n, const double *theta, const double *v, int nb, const int *rows) {
  if (n->knb == 0 || n->kpass != n->passes || theta != n->ktheta || v != n->kv) return 0;
  int *col = n->kcol;
  if (nb > n->cap) return 0;
  for (int k = 0, hint = 0; k < nb; ++k) {
    int j = -1;
    for (int s = 0; s < n->knb && j < 0; ++s) {
      const int at = (hint + s) % n->knb;
      if (n->krows[at] == rows[k]) j = at;
    }
    if (j < 0) return 0;
    col[k] = j;
    hint = j + 1;
  }
  return 1;
}

static int factors_from_kept(mlp_net *n, const double *theta, const double *v, int nb,
                             const int *rows, double *const *a, double *const *g, double *c) {
  if (!kept_columns(n, theta, v, nb, rows)) return 0;
  const int *col = n->kcol;
  for (int l = 0; l < n->L; ++l) {
    const int in = n->in[l], out = n->out[l];
    for (int k = 0; k < nb; ++k) {
      memcpy(a[l] + (size_t)k * in, n->A[l] + (size_t)col[k] * in, (size_t)in * sizeof(double));
      memcpy(g[l] + (size_t)k * out, n->KD[l] + (size_t)col[k] * out, (size_t)out * sizeof(double));
    }
  }
  if (c)
    for (int k = 0; k < nb; ++k)
      c[k] = n->krw[col[k]];
  return 1;
}

static int mlp_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                          const int *rows, double *g, double *loss) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  memset(g, 0, (size_t)pb->d * sizeof(double));
  double total = 0.0;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    NHGD_CHECK(block_pass(pb, theta, v, nk, rows + b0, 1));
    for (int k = 0; k < nk; ++k)
      total += n->rw[k] * n->rl[k];
    keep_block(n, theta, v, nk, rows + b0);
    scale_deltas(n, nk, n->rw, n->D);
    layer_grads(n, nk, n->D, 1.0, g);
  }
  *loss = total;
  return NHGD_OK;
}

static int mlp_layer_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                             const int *rows, int after_grad, double *const *a, double *const *g,
                             double *c) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  if (after_grad && factors_from_kept(n, theta, v, nb, rows, a, g, c)) return NHGD_OK;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    NHGD_CHECK(block_pass(pb, theta, v, nk, rows + b0, 0));
    for (int l = 0; l < n->L; ++l) {
      memcpy(a[l] + (size_t)b0 * n->in[l], n->A[l], (size_t)nk * n->in[l] * sizeof(double));
      memcpy(g[l] + (size_t)b0 * n->out[l], n->D[l], (size_t)nk * n->out[l] * sizeof(double));
    }
    if (c) memcpy(c + b0, n->rw, (size_t)nk * sizeof(double));
  }
  return NHGD_OK;
}

/* mlp-hyperclean's sampled cross term: row k of K holds the hidden layers' inputs a_1 ..
 * a_{L-1} and every layer's unweighted D_0 .. D_{L-1} (the input a_0 = (x, 1) is read from the
 * data again by cross_apply), so <s_i, u> = sum_l D_l^T (U_l^T a_l) for any u later. */
static int mlp_cross_keep(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                          const int *rows, int after_grad, double *K) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  const size_t w = (size_t)pb->cross_width;
  const int kept = after_grad && kept_columns(n, theta, v, nb, rows);
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    if (!kept) NHGD_CHECK(block_pass(pb, theta, v, nk, rows + b0, 0));
    for (int k = 0; k < nk; ++k) {
      const int col = kept ? n->kcol[b0 + k] : k;
      double *dst = K + (size_t)(b0 + k) * w;
      for (int l = 1; l < n->L; ++l) {
        memcpy(dst, n->A[l] + (size_t)col * n->in[l], (size_t)n->in[l] * sizeof(double));
        dst += n->in[l];
      }
      for (int l = 0; l < n->L; ++l) {
        const double *src = (kept ? n->KD[l] : n->D[l]) + (size_t)col * n->out[l];
        memcpy(dst, src, (size_t)n->out[l] * sizeof(double));
        dst += n->out[l];
      }
    }
  }
  return NHGD_OK;
}

static int mlp_cross_apply(const nhgd_problem *pb, const double *v, const double *u, int nb,
                           const int *rows, const double *K, const double *scale, double *out) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  const int w = pb->cross_width, m = n->in[0] - 1;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    const double *X = NULL;
    NHGD_CHECK(gather(pb, v, nk, rows + b0, &X));
    for (int k = 0; k < nk; ++k) {
      double *a = n->A[0] + (size_t)k * n->in[0];
      memcpy(a, X + (size_t)k * m, (size_t)m * sizeof(double));
      a[m] = 1.0;
    }
    const double *Kb = K + (size_t)b0 * w;
    double *q = n->rl; /* q_k, summed over the layers */
    for (int k = 0; k < nk; ++k)
      q[k] = 0.0;
    size_t a_off = 0, d_off = 0;
    for (int l = 1; l < n->L; ++l)
      d_off += (size_t)n->in[l];
    for (int l = 0; l < n->L; ++l) {
      const int in = n->in[l], o = n->out[l];
      /* U_l^T a_l for the block: a_0 from the data, the others from K (ld w) */
      const double *al = l == 0 ? n->A[0] : Kb + a_off;
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, o, nk, in, 1.0, u + n->off[l], in, al,
                  l == 0 ? in : w, 0.0, n->T, o);
      for (int k = 0; k < nk; ++k)
        q[k] += cblas_ddot(o, n->T + (size_t)k * o, 1, Kb + (size_t)k * w + d_off, 1);
      if (l > 0) a_off += (size_t)in;
      d_off += (size_t)o;
    }
    for (int k = 0; k < nk; ++k) {
      const double sg = nhgd_pb_sigmoid(v[rows[b0 + k]]);
      out[rows[b0 + k]] += scale[b0 + k] * sg * (1.0 - sg) * q[k];
    }
  }
  return NHGD_OK;
}

/* Column k of S is vec(a_l g_l^T) for every layer in turn: only the dense-storage routes of
 * the nhgd estimator and the tests ask for these d-vectors. */
static int mlp_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, double *S, double *c) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  const size_t d = (size_t)pb->d;
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    NHGD_CHECK(block_pass(pb, theta, v, nk, rows + b0, 0));
    for (int k = 0; k < nk; ++k) {
      double *col = S + (size_t)(b0 + k) * d;
      for (int l = 0; l < n->L; ++l) {
        const int in = n->in[l], out = n->out[l];
        const double *a = n->A[l] + (size_t)k * in, *dd = n->D[l] + (size_t)k * out;
        double *w = col + n->off[l];
        for (int o = 0; o < out; ++o)
          for (int j = 0; j < in; ++j)
            w[j + (size_t)o * in] = a[j] * dd[o];
      }
      if (c) c[b0 + k] = n->rw[k];
    }
  }
  return NHGD_OK;
}

/* The exact Hessian-vector product by the R-operator (forward-over-backward): R{z_l} =
 * V_l^T a_l + W_l^T R{a_l}, R{a_{l+1}} = phi'(z_l) R{z_l}; at the output R{D} = (diag p -
 * p p^T) R{z}; going back R{D_{l-1}} = phi'' R{z} E + phi' (V-bar_l D_l + W-bar_l R{D_l});
 * then H V = sum_k w_k (R{a_l} D_l^T + a_l R{D_l}^T) per layer. The Gauss-Newton product
 * J^T (diag p - p p^T) J V keeps only the terms through R{D} at the output: R{D_{l-1}} =
 * phi' W-bar_l R{D_l} and G V = sum_k w_k a_l R{D_l}^T (positive semi-definite). */
/* The R-operator of the block just passed (A, Z, D, E set) in the direction V: RA, RZ and RD
 * of every layer, unweighted (gn: the Gauss-Newton terms only). */
static void rop_pass(mlp_net *n, const double *theta, const double *V, int nk, int gn) {
  const int L = n->L, C = n->out[L - 1];
  memset(n->RA[0], 0, (size_t)n->in[0] * nk * sizeof(double));
  for (int l = 0; l < L; ++l) {
    const int in = n->in[l], out = n->out[l];
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, out, nk, in, 1.0, V + n->off[l], in,
                n->A[l], in, 0.0, n->RZ[l], out);
    if (l > 0)
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, out, nk, in, 1.0, theta + n->off[l], in,
                  n->RA[l], in, 1.0, n->RZ[l], out);
    if (l == L - 1) break;
    const int in2 = n->in[l + 1];
    for (int k = 0; k < nk; ++k) {
      const double *h = n->A[l + 1] + (size_t)k * in2, *rz = n->RZ[l] + (size_t)k * out;
      double *ra = n->RA[l + 1] + (size_t)k * in2;
      for (int j = 0; j < out; ++j)
        ra[j] = act_d1(n->act, h[j]) * rz[j];
      ra[out] = 0.0;
    }
  }
  for (int k = 0; k < nk; ++k) {
    const double *p = n->Z[L - 1] + (size_t)k * C, *rz = n->RZ[L - 1] + (size_t)k * C;
    double *rd = n->RD[L - 1] + (size_t)k * C, pr = 0.0;
    for (int c = 0; c < C; ++c)
      pr += p[c] * rz[c];
    for (int c = 0; c < C; ++c)
      rd[c] = p[c] * (rz[c] - pr);
  }
  for (int l = L - 1; l > 0; --l) {
    const int in = n->in[l], out = n->out[l], prev = n->out[l - 1];
    /* T = V-bar_l D_l + W-bar_l R{D_l} (Gauss-Newton: the second term alone) */
    if (!gn)
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, prev, nk, out, 1.0, V + n->off[l], in,
                  n->D[l], out, 0.0, n->T, prev);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, prev, nk, out, 1.0, theta + n->off[l],
                in, n->RD[l], out, gn ? 0.0 : 1.0, n->T, prev);
    for (int k = 0; k < nk; ++k) {
      const double *h = n->A[l] + (size_t)k * in, *rz = n->RZ[l - 1] + (size_t)k * prev;
      const double *e = n->E[l - 1] + (size_t)k * prev, *t = n->T + (size_t)k * prev;
      double *rd = n->RD[l - 1] + (size_t)k * prev;
      const double c2 = gn ? 0.0 : 1.0;
      for (int j = 0; j < prev; ++j)
        rd[j] = c2 * act_d2(n->act, h[j]) * rz[j] * e[j] + act_d1(n->act, h[j]) * t[j];
    }
  }
}

static int mlp_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                   const int *rows, const double *V, double *HV) {
  NHGD_CHECK(nhgd_pb_check_batch(pb, nb, rows));
  mlp_net *n = net_of(pb);
  const int L = n->L;
  memset(HV, 0, (size_t)pb->d * sizeof(double));
  for (int b0 = 0; b0 < nb; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(nb, b0);
    NHGD_CHECK(block_pass(pb, theta, v, nk, rows + b0, 0));
    rop_pass(n, theta, V, nk, n->gn);
    scale_deltas(n, nk, n->rw, n->D);
    scale_deltas(n, nk, n->rw, n->RD);
    for (int l = 0; l < L; ++l) {
      const int in = n->in[l], out = n->out[l];
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, in, out, nk, 1.0, n->A[l], in, n->RD[l],
                  out, 1.0, HV + n->off[l], in);
      if (l > 0 && !n->gn)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, in, out, nk, 1.0, n->RA[l], in,
                    n->D[l], out, 1.0, HV + n->off[l], in);
    }
  }
  return NHGD_OK;
}

/* The regulariser, per layer (the bias row included, so that D is a multiple of the identity
 * on each layer): hyperclean r ||W||^2; hpo (1/2) exp(v_l) ||W_l||^2. */
static int mlp_reg(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                   double *grad, double *hdiag) {
  const mlp_net *n = net_of(pb);
  const double r = ((const nhgd_pb_ctx *)pb->ctx)->clean_reg;
  double total = 0.0;
  for (int l = 0; l < n->L; ++l) {
    const double h = n->hpo ? exp(v[l]) : 2.0 * r;
    const int64_t len = (int64_t)n->in[l] * n->out[l];
    const double *w = theta + n->off[l];
    double sq = 0.0;
    for (int64_t j = 0; j < len; ++j) {
      sq += w[j] * w[j];
      if (grad) grad[n->off[l] + j] += h * w[j];
      if (hdiag) hdiag[n->off[l] + j] = h;
    }
    total += 0.5 * h * sq;
  }
  if (value) *value = total;
  return NHGD_OK;
}

static int mlp_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                    const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  (void)v;
  if (!split) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': eval needs a split", pb->name);
  mlp_net *n = net_of(pb);
  const int m = split->m, C = n->out[n->L - 1], rows = split->n_local;
  if (gtheta) memset(gtheta, 0, (size_t)pb->d * sizeof(double));
  double total = 0.0;
  int64_t hits = 0;
  for (int b0 = 0; b0 < rows; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(rows, b0);
    NHGD_CHECK(net_reserve(n, nk));
    const int32_t *y = split->y_class + b0;
    forward(n, theta, nk, split->X + (size_t)b0 * m, y, 1, &hits);
    for (int k = 0; k < nk; ++k)
      total += n->rl[k];
    if (gtheta) {
      memcpy(n->D[n->L - 1], n->Z[n->L - 1], (size_t)C * nk * sizeof(double));
      nhgd_softmax_residuals(C, nk, n->D[n->L - 1], y, NULL);
      backward(n, theta, nk);
      layer_grads(n, nk, n->D, 1.0, gtheta);
    }
  }
  *loss_sum = total;
  if (correct) *correct = hits;
  return NHGD_OK;
}

/* hyperclean: (J^T u)_i = (1/n) sigmoid'(v_i) <s_i, u>, <s_i, u> = sum_l D_l^T (U_l^T a_l)
 * with one GEMM per layer and block; hpo: (J^T u)_l = exp(v_l) <W_l, U_l>. */
static int mlp_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                     double *out) {
  mlp_net *n = net_of(pb);
  if (n->hpo) {
    for (int l = 0; l < n->L; ++l) {
      const int len = n->in[l] * n->out[l];
      out[l] = exp(v[l]) * cblas_ddot(len, theta + n->off[l], 1, u + n->off[l], 1);
    }
    return NHGD_OK;
  }
  const nhgd_split *tr = &pb->data->train;
  const int rows = tr->n_local, C = n->out[n->L - 1];
  const double inv_n = 1.0 / (double)tr->n_global;
  for (int b0 = 0; b0 < rows; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(rows, b0);
    NHGD_CHECK(net_reserve(n, nk));
    const int32_t *y = tr->y_class + b0;
    forward(n, theta, nk, tr->X + (size_t)b0 * tr->m, y, 0, NULL);
    memcpy(n->D[n->L - 1], n->Z[n->L - 1], (size_t)C * nk * sizeof(double));
    nhgd_softmax_residuals(C, nk, n->D[n->L - 1], y, NULL);
    backward(n, theta, nk);
    for (int k = 0; k < nk; ++k)
      out[b0 + k] = 0.0;
    for (int l = 0; l < n->L; ++l) {
      const int in = n->in[l], o = n->out[l];
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, o, nk, in, 1.0, u + n->off[l], in,
                  n->A[l], in, 0.0, n->T, o);
      for (int k = 0; k < nk; ++k)
        out[b0 + k] += cblas_ddot(o, n->T + (size_t)k * o, 1, n->D[l] + (size_t)k * o, 1);
    }
    for (int k = 0; k < nk; ++k) {
      const double sg = nhgd_pb_sigmoid(v[b0 + k]);
      out[b0 + k] *= inv_n * sg * (1.0 - sg);
    }
  }
  return NHGD_OK;
}

/* distill: (J^T u)_i = (1/n) d/dx_i <grad_theta l_i, u> = (1/n) R_u{W-bar_0 D_0} = (1/n)
 * (U-bar_0 D_0 + W-bar_0 R{D_0}), with R{D_0} from the exact R-operator along u (whatever
 * --mlp-hvp says: this is a derivative, not a curvature model) and W-bar the rows of W_0
 * without the bias's. Two GEMMs per block of this rank's synthetic rows after the R pass. */
static int mlp_distill_cross(const nhgd_problem *pb, const double *theta, const double *v,
                             const double *u, double *out) {
  mlp_net *n = net_of(pb);
  const nhgd_split *tr = &pb->data->train;
  const int rows = tr->n_local, C = n->out[n->L - 1], m = tr->m, in0 = n->in[0], o0 = n->out[0];
  const double inv_n = 1.0 / (double)tr->n_global;
  for (int b0 = 0; b0 < rows; b0 += NHGD_PB_BLOCK) {
    const int nk = block_len(rows, b0);
    NHGD_CHECK(net_reserve(n, nk));
    const int32_t *y = tr->y_class + b0;
    forward(n, theta, nk, v + (size_t)b0 * m, y, 0, NULL);
    memcpy(n->D[n->L - 1], n->Z[n->L - 1], (size_t)C * nk * sizeof(double));
    nhgd_softmax_residuals(C, nk, n->D[n->L - 1], y, NULL);
    backward(n, theta, nk);
    rop_pass(n, theta, u, nk, 0);
    double *o = out + (size_t)b0 * m;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, nk, o0, inv_n, u, in0, n->D[0], o0,
                0.0, o, m);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, nk, o0, inv_n, theta, in0, n->RD[0],
                o0, 1.0, o, m);
  }
  return NHGD_OK;
}

/* Glorot-uniform weights, zero biases, from the counter-based generator keyed by (layer,
 * entry): the same network on any number of ranks. */
static int mlp_init(const nhgd_problem *pb, double *theta, double *v) {
  if (!theta || !v) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': init needs theta and v", pb->name);
  const mlp_net *n = net_of(pb);
  const nhgd_pb_ctx *ctx = pb->ctx;
  for (int l = 0; l < n->L; ++l) {
    const int in = n->in[l], out = n->out[l];
    const double lim = sqrt(6.0 / (double)(in - 1 + out));
    for (int o = 0; o < out; ++o)
      for (int j = 0; j < in; ++j) {
        const double u = nhgd_rng_uniform(ctx->init_seed, NHGD_STREAM_INIT, (uint64_t)l,
                                          (uint64_t)o, (uint64_t)j);
        theta[n->off[l] + j + (int64_t)o * in] = j == in - 1 ? 0.0 : lim * (2.0 * u - 1.0);
      }
  }
  const int64_t nv = pb->v_per_sample ? (int64_t)pb->data->train.n_local * pb->v_per_sample : pb->p;
  for (int64_t j = 0; j < nv; ++j)
    v[j] = ctx->v_init;
  return NHGD_OK;
}

void nhgd_mlp_free(nhgd_pb_ctx *ctx) {
  if (ctx && ctx->net) {
    net_free_buffers(ctx->net);
    nhgd_free(&ctx->net);
  }
}

static void mlp_destroy(nhgd_problem *pb) {
  nhgd_mlp_free(pb->ctx);
  nhgd_pb_destroy_ctx(pb);
}

int nhgd_mlp_parse_hidden(const char *text, int *widths, int max, int *count) {
  *count = 0;
  const char *p = text;
  while (*p == ' ')
    ++p;
  if (!*p)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --hidden: the list of hidden widths is empty (give e.g. --hidden 256 or "
              "--hidden 256,128)");
  while (*p) {
    char *end;
    long w = strtol(p, &end, 10);
    if (end == p || w < 1 || w > 1 << 20)
      NHGD_FAIL(NHGD_ERR_ARG,
                "option --hidden '%s': every width must be a whole number from 1 to %d (entry %d "
                "is not)",
                text, 1 << 20, *count + 1);
    if (*count == max)
      NHGD_FAIL(NHGD_ERR_ARG, "option --hidden '%s': at most %d hidden layers", text, max);
    widths[(*count)++] = (int)w;
    p = end;
    while (*p == ' ')
      ++p;
    if (*p == ',') {
      ++p;
      while (*p == ' ')
        ++p;
      if (!*p) NHGD_FAIL(NHGD_ERR_ARG, "option --hidden '%s': the list ends with a comma", text);
    } else if (*p) {
      NHGD_FAIL(NHGD_ERR_ARG, "option --hidden '%s': widths are separated by commas", text);
    }
  }
  return NHGD_OK;
}

/* The callbacks of mlp-hyperclean and mlp-hpo; as distill's inner model the network's cross
 * term is in the images, not in row weights (mlp_distill_cross). */
static const nhgd_problem_ops mlp_ops = {
    .init = mlp_init,
    .inner_grad = mlp_inner_grad,
    .sample_grads = mlp_sample_grads,
    .hvp = mlp_hvp,
    .reg = mlp_reg,
    .eval = mlp_eval,
    .cross = mlp_cross,
    .destroy = mlp_destroy,
    .layer_factors = mlp_layer_factors,
    .cross_keep = mlp_cross_keep,
    .cross_apply = mlp_cross_apply,
};

/* form: 0 hyperclean, 1 hpo, 2 distill's inner model */
static int setup(nhgd_problem *pb, int form) {
  const int hpo = form == 1;
  nhgd_pb_ctx *ctx = pb->ctx;
  int widths[MLP_MAX_LAYERS - 1], nh = 0;
  NHGD_CHECK(nhgd_mlp_parse_hidden(ctx->hidden, widths, MLP_MAX_LAYERS - 1, &nh));
  mlp_net *n;
  NHGD_CHECK(nhgd_calloc(&n, 1, sizeof *n, "mlp"));
  ctx->net = n;
  pb->ops = mlp_ops; /* destroy frees the network from here on */
  if (form == 2) pb->ops.cross = mlp_distill_cross;
  if (form != 0) { /* the sampled cross term is that of per-row weights */
    pb->ops.cross_keep = NULL;
    pb->ops.cross_apply = NULL;
  }
  n->L = nh + 1;
  n->act = ctx->activation;
  n->gn = ctx->gauss_newton;
  n->hpo = hpo;
  n->distill = form == 2;
  int64_t d = 0;
  for (int l = 0; l < n->L; ++l) {
    n->in[l] = (l == 0 ? pb->data->m : widths[l - 1]) + 1;
    n->out[l] = l == nh ? pb->data->n_classes : widths[l];
    n->off[l] = d;
    d += (int64_t)n->in[l] * n->out[l];
  }
  if (d > (int64_t)1 << 30)
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': --hidden %s gives %lld parameters, too many", pb->name,
              ctx->hidden, (long long)d);
  pb->d = d;
  pb->p = hpo ? n->L : pb->data->train.n_global * (n->distill ? pb->data->m : 1);
  pb->v_per_sample = hpo ? 0 : n->distill ? pb->data->m : 1;
  pb->hess_rank = 0; /* no per-sample PSD factor: the Hessian of a network is indefinite */
  pb->is_classifier = 1;
  pb->n_layers = n->L;
  pb->cross_width = 0;
  for (int l = 0; l < n->L; ++l)
    pb->cross_width += (l > 0 ? n->in[l] : 0) + n->out[l];
  if (form != 0) pb->cross_width = 0;
  pb->layer_in = n->in;
  pb->layer_out = n->out;
  return NHGD_OK;
}

int nhgd_problem_setup_mlp_hyperclean(nhgd_problem *pb) {
  return setup(pb, 0);
}

int nhgd_problem_setup_mlp_hpo(nhgd_problem *pb) {
  return setup(pb, 1);
}

int nhgd_problem_setup_mlp_distill(nhgd_problem *pb) {
  return setup(pb, 2);
}
