/* Shared pieces of the baseline estimators cg, neumann and soba: distributed Hessian-vector
 * products over counter-RNG minibatches, and checkpoint guards of their settings. */
#include "estimators/baseline.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/h5util.h"

int nhgd_hvp_init(nhgd_hvp *h, nhgd_engine *e, int64_t batch, const char *who) {
  memset(h, 0, sizeof *h);
  if (!e->pb->hvp)
    NHGD_FAIL(NHGD_ERR_ARG,
              "estimator %s needs Hessian-vector products, but problem '%s' has no hvp callback",
              who, e->pb->name);
  if (e->d > INT_MAX)
    NHGD_FAIL(NHGD_ERR_ARG, "estimator %s: d = %lld is too large", who, (long long)e->d);
  h->d = e->d;
  h->batch = batch;
  const int64_t n_local = e->data->train.n_local;
  const int64_t cap = batch > n_local ? batch : n_local;
  NHGD_CHECK(nhgd_calloc(&h->rows, (size_t)(cap > 0 ? cap : 1), sizeof(int), "HVP rows"));
  NHGD_CHECK(nhgd_calloc(&h->sum, (size_t)h->d + 1, sizeof(double), "HVP sum"));
  NHGD_CHECK(nhgd_calloc(&h->hdiag, (size_t)h->d, sizeof(double), "Hessian of R"));
  return NHGD_OK;
}

void nhgd_hvp_free(nhgd_hvp *h) {
  nhgd_free(&h->rows);
  nhgd_free(&h->hdiag);
  nhgd_free(&h->sum);
}

double nhgd_hvp_draw(nhgd_hvp *h, const nhgd_engine *e, int64_t k, int64_t j) {
  const nhgd_split *tr = &e->data->train;
  h->nb = 0;
  if (h->batch == 0) {
    for (int i = 0; i < tr->n_local; ++i)
      h->rows[h->nb++] = i;
    return (double)tr->n_global;
  }
  for (int64_t slot = 0; slot < h->batch; ++slot) {
    int64_t i = (int64_t)nhgd_rng_below(e->opt.seed, NHGD_STREAM_HVP, (uint64_t)k, (uint64_t)j,
                                        (uint64_t)slot, (uint64_t)tr->n_global);
    if (i >= tr->lo && i < tr->lo + tr->n_local) h->rows[h->nb++] = (int)(i - tr->lo);
  }
  return (double)h->batch;
}

int nhgd_hvp_point(nhgd_hvp *h, nhgd_engine *e, const double *theta) {
  int rc = e->pb->reg(e->pb, theta, e->v, NULL, NULL, h->hdiag);
  return nhgd_error_agree(e->comm, rc);
}

int nhgd_hvp_apply(nhgd_hvp *h, nhgd_engine *e, const double *theta, int nb, const int *rows,
                   double B, const double *x, double *out) {
  const nhgd_problem *pb = e->pb;
  const int64_t d = h->d;
  int rc = NHGD_OK;
  if (nb > 0)
    rc = pb->hvp(pb, theta, e->v, nb, rows, x, h->sum);
  else
    memset(h->sum, 0, (size_t)d * sizeof(double));
  /* A failure rides on the product's allreduce: no rank is left waiting, and no extra
   * collective per product. */
  h->sum[d] = rc ? 1.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, h->sum, (int)d + 1, MPI_DOUBLE, MPI_SUM, e->comm));
  if (h->sum[d] > 0.0) NHGD_CHECK(nhgd_error_agree(e->comm, rc));
  memcpy(out, h->sum, (size_t)d * sizeof(double));
  h->bytes += 8.0 * (double)d;
  ++h->products;
  e->samples += B;
  const double invB = 1.0 / B;
  for (int64_t j = 0; j < d; ++j)
    out[j] = out[j] * invB + h->hdiag[j] * x[j];
  return NHGD_OK;
}

void nhgd_hvp_account(nhgd_hvp *h, nhgd_engine *e) {
  e->comm_bytes += h->bytes;
  e->comm_steps += e->opt.inner_steps;
  h->bytes = 0.0;
}

double nhgd_baseline_dot(int64_t d, const double *a, const double *b) {
  return cblas_ddot((int)d, a, 1, b, 1);
}

int nhgd_baseline_save_setting(hid_t g, const char *option, double value) {
  return nhgd_h5_attr_double(g, option, value);
}

int nhgd_baseline_check_setting(hid_t g, const char *option, double value) {
  double saved;
  NHGD_CHECK(nhgd_h5_attr_read_double(g, option, &saved));
  if (saved != value)
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint's estimator state was built with --%s %.17g but this run has "
              "--%s %.17g: continue with the same value, or use another --checkpoint-dir",
              option, saved, option, value);
  return NHGD_OK;
}
