/* Unit tests of the block row partition (nhgd_partition, nhgd_partition_owner). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nhgd/data.h"

/* For every (n, P): the blocks tile 0..n-1 in rank order, sizes differ by at most one with the
 * larger blocks first, the formula of data.h holds, and the owner of each row agrees. */
static void test_blocks_tile_rows(void **state) {
  (void)state;
  const int64_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 10, 11, 97, 1000, 60001};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; ++k)
    for (int P = 1; P <= 17; ++P) {
      const int64_t n = sizes[k];
      int64_t next = 0;
      for (int r = 0; r < P; ++r) {
        int64_t lo, cnt;
        nhgd_partition(n, P, r, &lo, &cnt);
        assert_int_equal(lo, next);
        assert_int_equal(lo, r * (n / P) + (r < n % P ? r : n % P));
        assert_int_equal(cnt, n / P + (r < n % P ? 1 : 0));
        for (int64_t i = lo; i < lo + cnt; ++i)
          assert_int_equal(nhgd_partition_owner(n, P, i), r);
        next = lo + cnt;
      }
      assert_int_equal(next, n);
    }
}

static void test_known_values(void **state) {
  (void)state;
  int64_t lo, n;
  /* 10 rows on 4 ranks: 3, 3, 2, 2. */
  nhgd_partition(10, 4, 0, &lo, &n);
  assert_int_equal(lo, 0);
  assert_int_equal(n, 3);
  nhgd_partition(10, 4, 1, &lo, &n);
  assert_int_equal(lo, 3);
  assert_int_equal(n, 3);
  nhgd_partition(10, 4, 2, &lo, &n);
  assert_int_equal(lo, 6);
  assert_int_equal(n, 2);
  nhgd_partition(10, 4, 3, &lo, &n);
  assert_int_equal(lo, 8);
  assert_int_equal(n, 2);
  /* Fewer rows than ranks: the last ranks own nothing. */
  nhgd_partition(3, 4, 3, &lo, &n);
  assert_int_equal(lo, 3);
  assert_int_equal(n, 0);
  assert_int_equal(nhgd_partition_owner(3, 4, 2), 2);
  /* Large counts do not overflow. */
  const int64_t big = (int64_t)1 << 40;
  nhgd_partition(big + 5, 8, 7, &lo, &n);
  assert_int_equal(lo + n, big + 5);
  assert_int_equal(nhgd_partition_owner(big + 5, 8, big + 4), 7);
  assert_int_equal(nhgd_partition_owner(big + 5, 8, 0), 0);
}

static void test_invalid_arguments(void **state) {
  (void)state;
  int64_t lo = 99, n = 99;
  nhgd_partition(10, 0, 0, &lo, &n);
  assert_int_equal(lo, 0);
  assert_int_equal(n, 0);
  nhgd_partition(10, 4, 4, &lo, &n);
  assert_int_equal(n, 0);
  nhgd_partition(10, 4, -1, &lo, &n);
  assert_int_equal(n, 0);
  assert_int_equal(nhgd_partition_owner(10, 4, 10), -1);
  assert_int_equal(nhgd_partition_owner(10, 4, -1), -1);
  assert_int_equal(nhgd_partition_owner(10, 0, 1), -1);
  assert_int_equal(nhgd_partition_owner(0, 3, 0), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocks_tile_rows),
      cmocka_unit_test(test_known_values),
      cmocka_unit_test(test_invalid_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
