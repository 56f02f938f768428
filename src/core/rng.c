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

int64_t nhgd_rng_choose_scratch(int64_t K) {
  int64_t len = 2;
  while (len < 2 * K)
    len *= 2;
  return len;
}

/* Open addressing on the scratch (-1: empty): insert x, or return 0 when it is there. */
static int set_insert(int64_t *set, int64_t mask, int64_t x) {
  uint64_t h = ((uint64_t)x * 0x9E3779B97F4A7C15ull) >> 16;
  for (;; ++h) {
    int64_t *slot = &set[(int64_t)(h & (uint64_t)mask)];
    if (*slot == x) return 0;
    if (*slot < 0) {
      *slot = x;
      return 1;
    }
  }
}

static int cmp_i64(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

void nhgd_rng_choose(uint64_t seed, uint64_t stream, uint64_t a, int64_t n, int64_t K, int64_t *out,
                     int64_t *scratch) {
  const int64_t len = nhgd_rng_choose_scratch(K);
  for (int64_t i = 0; i < len; ++i)
    scratch[i] = -1;
  /* Floyd: for j = n-K .. n-1 take t uniform in [0, j]; if t is taken already, take j. */
  int64_t got = 0;
  for (int64_t j = n - K; j < n; ++j) {
    const int64_t t = (int64_t)nhgd_rng_below(seed, stream, a, (uint64_t)j, 0, (uint64_t)j + 1);
    out[got++] = set_insert(scratch, len - 1, t) ? t : (set_insert(scratch, len - 1, j), j);
  }
  qsort(out, (size_t)K, sizeof *out, cmp_i64);
}
