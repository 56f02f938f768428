/* A content digest of the loaded data that does not depend on how the rows are spread over
 * the ranks: a sum over rows of a hash of (split, global row index, features, label). */
#include "data/digest.h"

#include <string.h>

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; ++i) {
    h ^= b[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* A final mix so that the sum of row hashes does not cancel simple patterns. */
static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static uint64_t split_sum(const nhgd_split *s, uint64_t tag) {
  uint64_t sum = 0;
  for (int i = 0; i < s->n_local; ++i) {
    const int64_t row = s->lo + i;
    uint64_t h = fnv(14695981039346656037ULL ^ tag, &row, sizeof row);
    h = fnv(h, s->X + (size_t)i * (size_t)s->m, (size_t)s->m * sizeof(double));
    if (s->y_class) h = fnv(h, &s->y_class[i], sizeof s->y_class[i]);
    if (s->y_real) h = fnv(h, &s->y_real[i], sizeof s->y_real[i]);
    sum += mix(h);
  }
  return sum;
}

int nhgd_data_digest(const nhgd_data *d, uint64_t *out) {
  uint64_t local = split_sum(&d->train, 1) + split_sum(&d->val, 2);
  if (d->has_test) local += split_sum(&d->test, 3);
  uint64_t sum = 0;
  if (MPI_Allreduce(&local, &sum, 1, MPI_UINT64_T, MPI_SUM, d->comm) != MPI_SUCCESS)
    NHGD_FAIL(NHGD_ERR_MPI, "MPI_Allreduce of the data digest failed");
  const int64_t shape[5] = {d->train.n_global, d->val.n_global, d->has_test ? d->test.n_global : 0,
                            d->m, d->n_classes};
  *out = mix(fnv(sum, shape, sizeof shape));
  return NHGD_OK;
}
