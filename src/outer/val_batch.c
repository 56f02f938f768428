/* The validation rows of an outer step (--val-batch, docs/algorithm.md 1): every row, or K
 * rows drawn without replacement by Floyd's algorithm keyed by (seed, outer step), the same on
 * every rank, each rank gathering the ones it owns into a split of their own. */
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "outer/engine.h"

int nhgd_outer_check_val_batch(const nhgd_solver_opts *o, const char *problem,
                               const nhgd_data *data) {
  if (o->val_batch > data->val.n_global)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --val-batch %lld: the outer loss of problem %s averages over %lld "
              "validation rows, so at most %lld can be drawn (0: all of them)",
              (long long)o->val_batch, problem, (long long)data->val.n_global,
              (long long)data->val.n_global);
  return NHGD_OK;
}

int nhgd_outer_val_batch_alloc(nhgd_solver *s) {
  const int64_t K = s->opt->val_batch;
  const nhgd_split *val = &s->data->val;
  nhgd_split *b = &s->vbatch;
  s->vbatch_k = -1;
  if (K <= 0) return NHGD_OK;
  /* A rank holds at most its own rows of a draw. */
  const size_t rows = (size_t)(K < val->n_local ? K : val->n_local) + 1;
  NHGD_CHECK(nhgd_calloc(&s->vdraw, (size_t)K, sizeof(int64_t), "validation rows drawn"));
  NHGD_CHECK(nhgd_calloc(&s->vtable, (size_t)nhgd_rng_sample_table(K), sizeof(int64_t),
                         "validation draw set"));
  NHGD_CHECK(nhgd_calloc(&b->X, rows * (size_t)val->m, sizeof(double), "validation rows drawn"));
  if (val->y_class)
    NHGD_CHECK(nhgd_calloc(&b->y_class, rows, sizeof(int32_t), "validation labels drawn"));
  if (val->y_real)
    NHGD_CHECK(nhgd_calloc(&b->y_real, rows, sizeof(double), "validation targets drawn"));
  b->m = val->m;
  return NHGD_OK;
}

void nhgd_outer_val_batch_free(nhgd_solver *s) {
  nhgd_free(&s->vdraw);
  nhgd_free(&s->vtable);
  nhgd_free(&s->vbatch.X);
  nhgd_free(&s->vbatch.y_class);
  nhgd_free(&s->vbatch.y_real);
}

const nhgd_split *nhgd_outer_val_rows(nhgd_solver *s, int64_t k) {
  const nhgd_split *val = &s->data->val;
  const int64_t K = s->opt->val_batch;
  nhgd_split *b = &s->vbatch;
  if (K <= 0) return val;
  if (s->vbatch_k == k) return b;
  nhgd_timer_start(&s->timers, NHGD_T_SAMPLING);
  nhgd_rng_sample(s->opt->inner.seed, NHGD_STREAM_VAL, (uint64_t)k, val->n_global, K, s->vtable,
                  s->vdraw);
  /* The draw is ascending: this rank's rows are one run of it, gathered in row order. */
  int64_t first = 0;
  while (first < K && s->vdraw[first] < val->lo)
    ++first;
  int n = 0;
  const size_t m = (size_t)val->m;
  for (int64_t j = first; j < K && s->vdraw[j] < val->lo + val->n_local; ++j, ++n) {
    const size_t i = (size_t)(s->vdraw[j] - val->lo);
    memcpy(b->X + (size_t)n * m, val->X + i * m, m * sizeof(double));
    if (b->y_class) b->y_class[n] = val->y_class[i];
    if (b->y_real) b->y_real[n] = val->y_real[i];
  }
  b->n_global = K;
  b->lo = first;
  b->n_local = n;
  s->vbatch_k = k;
  nhgd_timer_stop(&s->timers, NHGD_T_SAMPLING);
  return b;
}
