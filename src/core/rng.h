/* Counter-based random numbers (Philox4x64 from Random123): every draw is a pure function
 * of (seed, stream, three counters), so nothing needs to be carried or checkpointed. */
#ifndef NHGD_CORE_RNG_H
#define NHGD_CORE_RNG_H

#include <stdint.h>

/* Streams keep independent uses apart. */
enum {
  NHGD_STREAM_BATCH = 1,   /* minibatch indices: (outer k, inner t, slot) */
  NHGD_STREAM_SPLIT = 2,   /* data-file shuffles: (pass, index, 0) */
  NHGD_STREAM_CORRUPT = 3, /* label corruption: (row, draw, 0) */
  NHGD_STREAM_SYNTH = 4,   /* synthetic data: (what, row, column) */
  NHGD_STREAM_INIT = 5,    /* parameter initialisation */
  NHGD_STREAM_HVP = 6,     /* Hessian-vector product minibatches: (outer k, product j, slot) */
  NHGD_STREAM_EFIM = 7,    /* Fisher subsample of a minibatch: (outer k, inner t, draw) */
  NHGD_STREAM_VAL = 8,     /* validation rows of an outer step (--val-batch): (outer k, j, 0) */
  NHGD_STREAM_CROSS = 9    /* rows of the sampled cross term at the loop's end: (outer k, j, 0) */
};

/* Four independent 64-bit words for (seed, stream, a, b, c). */
void nhgd_rng4(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c, uint64_t out[4]);
/* Uniform double in [0, 1) with 53 random bits. */
double nhgd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c);
/* Uniform integer in [0, n), n >= 1 (rejection sampling, exactly uniform). */
uint64_t nhgd_rng_below(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c,
                        uint64_t n);
/* Standard normal draw (Box-Muller on two words). */
double nhgd_rng_normal(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b, uint64_t c);
/* Fisher-Yates permutation of 0..n-1 into perm, reproducible from (seed, stream, pass). */
void nhgd_rng_permutation(uint64_t seed, uint64_t stream, uint64_t pass, int64_t n, int64_t *perm);
/* Entries of the scratch table nhgd_rng_sample needs for K draws (a power of two >= 2K). */
int64_t nhgd_rng_sample_table(int64_t K);
/* K distinct integers of 0..n-1 (1 <= K <= n), uniform over the K-subsets, in ascending order
 * in out: Floyd's algorithm, whose j-th draw (j = n-K .. n-1) is uniform in [0, j] keyed by
 * (seed, stream, a, j, 0), over an open-addressing set in table (nhgd_rng_sample_table(K)
 * entries). O(K) draws and O(K log K) for the sort, whatever n. */
void nhgd_rng_sample(uint64_t seed, uint64_t stream, uint64_t a, int64_t n, int64_t K,
                     int64_t *table, int64_t *out);

#endif
