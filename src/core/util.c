/* Checked allocation and HDF5 helpers. */
#include "core/util.h"

#include <hdf5.h>
#include <stdlib.h>

int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what) {
  void **p = (void **)pptr;
  *p = NULL;
  if (n == 0 || size == 0) n = size = 1; /* a valid, freeable pointer */
  if (n > SIZE_MAX / size)
    NHGD_FAIL(NHGD_ERR_MEM, "size overflow allocating %s (%zu x %zu bytes)", what, n, size);
  *p = calloc(n, size);
  if (!*p) NHGD_FAIL(NHGD_ERR_MEM, "out of memory allocating %s (%zu bytes)", what, n * size);
  return NHGD_OK;
}

void nhgd_free(void *pptr) {
  void **p = (void **)pptr;
  free(*p);
  *p = NULL;
}

void nhgd_h5_quiet(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
