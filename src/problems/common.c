/* What the built-in problems share: row-block scratch, row gathering, batch checks, the
 * initial point, the ridge regulariser of hyperclean and distill, the context's release. */
#include "problems/common.h"

#include <string.h>

#include "core/util.h"
#include "nhgd/errors.h"

void nhgd_pb_destroy_ctx(nhgd_problem *pb) {
  nhgd_pb_ctx *ctx = pb->ctx;
  if (!ctx) return;
  nhgd_pb_scratch_free(&ctx->s);
  nhgd_free(&ctx->kept.r);
  nhgd_free(&ctx->kept.rows);
  nhgd_free(&ctx);
  pb->ctx = NULL;
}

int nhgd_pb_reg_clean(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                      double *grad, double *hdiag) {
  (void)v;
  const double r = ((const nhgd_pb_ctx *)pb->ctx)->clean_reg;
  double total = 0.0;
  for (int64_t k = 0; k < pb->d; k++) {
    total += r * theta[k] * theta[k];
    if (grad) grad[k] += 2.0 * r * theta[k];
    if (hdiag) hdiag[k] = 2.0 * r;
  }
  if (value) *value = total;
  return NHGD_OK;
}

int nhgd_pb_init(const nhgd_problem *pb, double *theta, double *v) {
  if (!theta || !v) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': init needs theta and v", pb->name);
  const nhgd_pb_ctx *ctx = pb->ctx;
  for (int64_t j = 0; j < pb->d; j++)
    theta[j] = 0.0;
  int64_t nv = pb->v_per_sample ? (int64_t)pb->data->train.n_local * pb->v_per_sample : pb->p;
  for (int64_t j = 0; j < nv; j++)
    v[j] = ctx->v_init;
  return NHGD_OK;
}

void nhgd_pb_scratch_free(nhgd_pb_scratch *s) {
  nhgd_free(&s->xb);
  nhgd_free(&s->za);
  nhgd_free(&s->zb);
  nhgd_free(&s->zw);
  nhgd_free(&s->wu);
  nhgd_free(&s->rw);
  nhgd_free(&s->rl);
  nhgd_free(&s->yc);
  nhgd_free(&s->yr);
  s->cap = 0;
}

int nhgd_pb_reserve(nhgd_pb_scratch *s, int nb) {
  if (nb <= s->cap) return NHGD_OK;
  if (nb > NHGD_PB_BLOCK)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "problem scratch asked for %d rows, more than the block %d", nb,
              NHGD_PB_BLOCK);
  /* Grow straight to the block size once batches exceed a quarter of it, so that a run with
   * varying batch sizes reallocates at most a few times. */
  int cap = nb > NHGD_PB_BLOCK / 4 ? NHGD_PB_BLOCK : nb;
  nhgd_pb_scratch_free(s);
  size_t m = (size_t)s->m, C = (size_t)s->C, n = (size_t)cap;
  int rc = NHGD_OK;
  NHGD_TRY(rc, nhgd_calloc(&s->xb, m * n, sizeof(double), "problem scratch (features)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->za, C * n, sizeof(double), "problem scratch (logits)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->zb, C * n, sizeof(double), "problem scratch (products)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->zw, 2 * C * n, sizeof(double), "problem scratch (products)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->wu, m * 2 * C, sizeof(double), "problem scratch (model pair)"),
           fail);
  NHGD_TRY(rc, nhgd_calloc(&s->rw, n, sizeof(double), "problem scratch (weights)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->rl, n, sizeof(double), "problem scratch (losses)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->yc, n, sizeof(int32_t), "problem scratch (labels)"), fail);
  NHGD_TRY(rc, nhgd_calloc(&s->yr, n, sizeof(double), "problem scratch (targets)"), fail);
  s->cap = cap;
  return NHGD_OK;
fail:
  nhgd_pb_scratch_free(s);
  return rc;
}

int nhgd_pb_gather(const nhgd_split *sp, int nb, const int *rows, nhgd_pb_scratch *s) {
  NHGD_CHECK(nhgd_pb_reserve(s, nb));
  size_t m = (size_t)sp->m;
  for (int k = 0; k < nb; k++) {
    int i = rows[k];
    if (i < 0 || i >= sp->n_local)
      NHGD_FAIL(NHGD_ERR_ARG, "row index %d outside the %d local rows", i, sp->n_local);
    memcpy(s->xb + (size_t)k * m, sp->X + (size_t)i * m, m * sizeof(double));
    if (sp->y_class) s->yc[k] = sp->y_class[i];
    if (sp->y_real) s->yr[k] = sp->y_real[i];
  }
  return NHGD_OK;
}

int nhgd_pb_check_batch(const nhgd_problem *pb, int nb, const int *rows) {
  if (nb < 0) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': negative batch size %d", pb->name, nb);
  if (nb > 0 && !rows) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': no row list given", pb->name);
  return NHGD_OK;
}
