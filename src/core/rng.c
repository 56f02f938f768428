/* Counter-based random numbers on Philox4x64-10. */
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <Random123/philox.h>

void nhgd_rng4(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c,
               uint64_t out[4]) {
  philox4x64_key_t key = {{seed, stream}};
  philox4x64_ctr_t ctr = {{a, b, c, 0}};
  philox4x64_ctr_t r = philox4x64(ctr, key);
  for (int i = 0; i < 4; ++i)
    out[i] = r.v[i];
}

static double to_unit(uint64_t w) {
  return (double)(w >> 11) * 0x1.0p-53;
}

double nhgd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t w[4];
  nhgd_rng4(seed, stream, a, b, c, w);
  return to_unit(w[0]);
}

uint64_t nhgd_rng_below(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c,
                        uint64_t n) {
  /* Accept words below the largest multiple of n; each call yields four candidates and
   * the fourth counter word (kept free by nhgd_rng4) is not needed: re-draw by bumping c's
   * high bits, which callers never use. */
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (uint64_t round = 0;; ++round) {
    uint64_t w[4];
    nhgd_rng4(seed, stream, a, b, c ^ (round << 56), w);
    for (int i = 0; i < 4; ++i)
      if (w[i] < limit) return w[i] % n;
  }
}

double nhgd_rng_normal(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t w[4];
  nhgd_rng4(seed, stream, a, b, c, w);
  double u1 = 1.0 - to_unit(w[0]); /* (0, 1] */
  double u2 = to_unit(w[1]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void nhgd_rng_permutation(uint64_t seed, uint64_t stream, uint64_t pass, int64_t n, int64_t *perm) {
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = (int64_t)nhgd_rng_below(seed, stream, pass, (uint64_t)i, 0, (uint64_t)i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

int64_t nhgd_rng_sample_table(int64_t K) {
  int64_t size = 4;
  while (size < 2 * K)
    size *= 2;
  return size;
}

/* Insert x into the set (table of size entries, -1 when empty); returns 0 if it was there. */
static int set_insert(int64_t *table, int64_t size, int64_t x) {
  uint64_t i = ((uint64_t)x * 0x9E3779B97F4A7C15u) >> 17;
  for (;; ++i) {
    int64_t *e = &table[i & (uint64_t)(size - 1)];
    if (*e == x) return 0;
    if (*e < 0) {
      *e = x;
      return 1;
    }
  }
}

static int by_value(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

void nhgd_rng_sample(uint64_t seed, uint64_t stream, uint64_t a, int64_t n, int64_t K,
                     int64_t *table, int64_t *out) {
  const int64_t size = nhgd_rng_sample_table(K);
  for (int64_t i = 0; i < size; ++i)
    table[i] = -1;
  /* Floyd: after the draw for j the set is a uniform (K - n + j + 1)-subset of 0..j: the draw
   * is taken if new, else j, which no earlier draw could reach, takes its place. */
  int64_t len = 0;
  for (int64_t j = n - K; j < n; ++j) {
    int64_t x = (int64_t)nhgd_rng_below(seed, stream, a, (uint64_t)j, 0, (uint64_t)j + 1);
    if (!set_insert(table, size, x)) {
      x = j;
      set_insert(table, size, x);
    }
    out[len++] = x;
  }
  qsort(out, (size_t)K, sizeof *out, by_value);
}
