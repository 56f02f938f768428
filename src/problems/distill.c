/* The `distill` problem (docs/algorithm.md 4.7): dataset distillation. The outer variable is
 * a set of synthetic images, --distill-per-class k per class with fixed labels (image i has
 * class i / k); a linear softmax model (or, with --distill-model mlp, the network of
 * --hidden and --activation: mlp.c) is trained on them by SGD (inner: mean cross-entropy over
 * the synthetic images + r ||theta||^2), and the outer loss is the cross-entropy of that
 * model on the real training split; the test split is reported.
 *
 * The problem binds a view of the data: its training split is the k C synthetic rows,
 * sharded over the ranks like any split, whose features are this rank's slice of v (m
 * entries per row, v_per_sample = m); its validation split is the real training split; its
 * test split the real one. So the engine samples the inner minibatches from the synthetic
 * images and evaluates the outer loss on the real training rows, with no change of its own. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "nhgd/errors.h"
#include "problems/builtin.h"

typedef struct distill_view {
  nhgd_data view;  /* train: synthetic rows; val: the real training split; test: the real one */
  int32_t *labels; /* this rank's synthetic rows' classes */
  int (*net_init)(const nhgd_problem *pb, double *theta, double *v); /* mlp model: its init */
} distill_view;

static distill_view *view_of(const nhgd_problem *pb) {
  return ((nhgd_pb_ctx *)pb->ctx)->distill;
}

/* The synthetic split's features are v: point the split at this call's v. */
static void bind_images(const nhgd_problem *pb, const double *v) {
  view_of(pb)->view.train.X = (double *)v;
}

static int ds_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                         const int *rows, double *g, double *loss) {
  bind_images(pb, v);
  return nhgd_softmax_inner_grad(pb, theta, v, nb, rows, g, loss);
}

static int ds_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, double *S, double *c) {
  bind_images(pb, v);
  return nhgd_softmax_sample_grads(pb, theta, v, nb, rows, S, c);
}

static int ds_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, double *Z) {
  bind_images(pb, v);
  return nhgd_softmax_hess_factors(pb, theta, v, nb, rows, Z);
}

static int ds_kron(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                   const int *rows, double *X, double *R, double *A, double *c) {
  bind_images(pb, v);
  return nhgd_softmax_kron_factors(pb, theta, v, nb, rows, X, R, A, c);
}

static int ds_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                  const int *rows, const double *V, double *HV) {
  bind_images(pb, v);
  return nhgd_softmax_hvp(pb, theta, v, nb, rows, V, HV);
}

static int ds_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                   const double *v, double *loss_sum, double *gtheta, int64_t *correct) {
  bind_images(pb, v);
  return nhgd_softmax_eval(pb, split, theta, v, loss_sum, gtheta, correct);
}

/* d/dx_i of <grad_W g, U> with grad_W g = (1/n) sum_i x_i r_i^T, r_i = p_i - e_{y_i},
 * p_i = softmax(W^T x_i): (1/n) (U r_i + W (diag p_i - p_i p_i^T) U^T x_i). Two GEMMs per
 * block of this rank's synthetic rows. */
static int ds_cross(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
                    double *out) {
  nhgd_pb_scratch *s = &((nhgd_pb_ctx *)pb->ctx)->s;
  const nhgd_split *tr = &view_of(pb)->view.train;
  const int m = s->m, C = s->C, n = tr->n_local;
  const double inv_n = 1.0 / (double)tr->n_global;
  for (int b0 = 0; b0 < n; b0 += NHGD_PB_BLOCK) {
    const int nk = n - b0 < NHGD_PB_BLOCK ? n - b0 : NHGD_PB_BLOCK;
    NHGD_CHECK(nhgd_pb_reserve(s, nk));
    const double *xb = v + (size_t)b0 * m;
    const int32_t *y = tr->y_class + b0;
    nhgd_softmax_logits(m, C, nk, xb, theta, s->za);
    nhgd_softmax_probs(C, nk, s->za, y, NULL, NULL);
    /* zb = U^T x_k, then (diag p - p p^T) zb in place. */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, C, nk, m, 1.0, u, m, xb, m, 0.0, s->zb, C);
    for (int k = 0; k < nk; ++k) {
      const double *p = s->za + (size_t)k * C;
      double *a = s->zb + (size_t)k * C, pa = 0.0;
      for (int c = 0; c < C; ++c)
        pa += p[c] * a[c];
      for (int c = 0; c < C; ++c)
        a[c] = p[c] * (a[c] - pa);
    }
    nhgd_softmax_residuals(C, nk, s->za, y, NULL);
    double *o = out + (size_t)b0 * m;
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, nk, C, inv_n, u, m, s->za, C, 0.0, o,
                m);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, nk, C, inv_n, theta, m, s->zb, C, 1.0,
                o, m);
  }
  return NHGD_OK;
}

/* theta = 0 (the network's own initialisation with the mlp model); each image starts as --v-init
 * plus N(0, 0.1^2) noise keyed by (global row, pixel): the same images on any number of ranks. */
static int ds_init(const nhgd_problem *pb, double *theta, double *v) {
  if (!theta || !v) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': init needs theta and v", pb->name);
  const nhgd_pb_ctx *ctx = pb->ctx;
  const distill_view *dv = view_of(pb);
  const nhgd_split *tr = &dv->view.train;
  const int m = tr->m;
  if (dv->net_init) /* the network's weights (Glorot, keyed by --seed) */
    NHGD_CHECK(dv->net_init(pb, theta, v));
  else
    memset(theta, 0, (size_t)pb->d * sizeof(double));
  for (int i = 0; i < tr->n_local; ++i)
    for (int j = 0; j < m; ++j)
      v[(size_t)i * m + j] =
          ctx->v_init + 0.1 * nhgd_rng_normal(ctx->init_seed, NHGD_STREAM_INIT, 1000003,
                                              (uint64_t)(tr->lo + i), (uint64_t)j);
  return NHGD_OK;
}

static void ds_destroy(nhgd_problem *pb) {
  nhgd_pb_ctx *ctx = pb->ctx;
  if (ctx && ctx->distill) {
    nhgd_free(&ctx->distill->labels);
    nhgd_free(&ctx->distill);
  }
  nhgd_mlp_free(ctx);
  nhgd_pb_destroy_ctx(pb);
}

static const nhgd_problem_ops ds_ops = {
    .init = ds_init,
    .inner_grad = ds_inner_grad,
    .sample_grads = ds_sample_grads,
    .hess_factors = ds_hess_factors,
    .hvp = ds_hvp,
    .reg = nhgd_pb_reg_clean,
    .eval = ds_eval,
    .cross = ds_cross,
    .destroy = ds_destroy,
    .kron_factors = ds_kron,
};

int nhgd_problem_setup_distill(nhgd_problem *pb) {
  nhgd_pb_ctx *ctx = pb->ctx;
  const nhgd_data *data = pb->data;
  const int C = data->n_classes, m = data->m;
  const int64_t k = ctx->distill_per_class, n = k * C;
  if (k < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "option --distill-per-class %lld: at least one image per class",
              (long long)k);
  if (n > data->train.n_global)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --distill-per-class %lld: %lld synthetic images are more than the %lld "
              "training rows they distil (%d classes)",
              (long long)k, (long long)n, (long long)data->train.n_global, C);
  if (n < data->size)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --distill-per-class %lld: %lld synthetic images cannot be shared by %d ranks "
              "(every rank needs at least one)",
              (long long)k, (long long)n, data->size);
  if ((double)n * m > (double)(1 << 30))
    NHGD_FAIL(NHGD_ERR_ARG, "option --distill-per-class %lld: %lld x %d pixels are too many",
              (long long)k, (long long)n, m);
  distill_view *dv;
  NHGD_CHECK(nhgd_calloc(&dv, 1, sizeof *dv, "distill view"));
  ctx->distill = dv;
  pb->ops.destroy = ds_destroy;
  dv->view = *data; /* the communicator and the real splits are shared, not copied */
  dv->view.val = data->train;
  nhgd_split *tr = &dv->view.train;
  memset(tr, 0, sizeof *tr);
  int64_t lo, nl;
  nhgd_partition(n, data->size, data->rank, &lo, &nl);
  tr->n_global = n;
  tr->lo = lo;
  tr->n_local = (int)nl;
  tr->m = m;
  NHGD_CHECK(nhgd_calloc(&dv->labels, (size_t)(nl > 0 ? nl : 1), sizeof(int32_t), "labels"));
  for (int64_t i = 0; i < nl; ++i)
    dv->labels[i] = (int32_t)((lo + i) / k);
  tr->y_class = dv->labels;
  pb->data = &dv->view;
  if (ctx->distill_mlp) { /* the network on the view: its callbacks, then distill's init */
    const int rc = nhgd_problem_setup_mlp_distill(pb);
    pb->ops.destroy = ds_destroy; /* frees the view and the network, also after a failure */
    NHGD_CHECK(rc);
    dv->net_init = pb->ops.init;
    pb->ops.init = ds_init;
    return NHGD_OK;
  }
  pb->d = (int64_t)m * C;
  pb->p = n * m;
  pb->v_per_sample = m;
  pb->hess_rank = C;
  pb->is_classifier = 1;
  pb->kron_m = m;
  pb->kron_c = C;
  pb->ops = ds_ops;
  return NHGD_OK;
}
