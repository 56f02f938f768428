/* Block partition of the rows of a split over the ranks of a communicator. */
#include "nhgd/data.h"

void nhgd_partition(int64_t n_global, int P, int r, int64_t *lo, int64_t *n) {
  if (n_global < 0 || P < 1 || r < 0 || r >= P) {
    *lo = 0;
    *n = 0;
    return;
  }
  const int64_t q = n_global / P, rem = n_global % P;
  *lo = r * q + (r < rem ? r : rem);
  *n = q + (r < rem ? 1 : 0);
}

int nhgd_partition_owner(int64_t n_global, int P, int64_t i) {
  if (P < 1 || i < 0 || i >= n_global) return -1;
  const int64_t q = n_global / P, rem = n_global % P;
  /* The first rem ranks own q + 1 rows each, the others q (q > 0 whenever they are
   * reached, since i < n_global). */
  const int64_t big = rem * (q + 1);
  if (i < big) return (int)(i / (q + 1));
  return (int)(rem + (i - big) / q);
}
