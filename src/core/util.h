/* Small private helpers shared by all modules: checked allocation and HDF5 checks. */
#ifndef NHGD_CORE_UTIL_H
#define NHGD_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "nhgd/errors.h"

/* Allocate n elements of size bytes, zeroed; on failure record NHGD_ERR_MEM naming what. */
int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what);
/* Free *pptr and set it to NULL. */
void nhgd_free(void *pptr);

/* HDF5 identifiers are negative on failure. */
#define NHGD_H5_TRY(rc, expr, label, ...)                                                          \
  do {                                                                                             \
    if ((expr) < 0) NHGD_RAISE(rc, label, NHGD_ERR_HDF5, __VA_ARGS__);                             \
  } while (0)

/* Silence HDF5's own error stack printing (we report errors ourselves). Not collective. */
void nhgd_h5_quiet(void);

#endif
