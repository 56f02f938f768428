/* Checked allocation and the memory the system has available. */
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what) {
  void **p = (void **)pptr;
  *p = NULL;
  if (n == 0 || size == 0) n = size = 1; /* a valid, freeable pointer */
  if (n > SIZE_MAX / size)
    NHGD_FAIL(NHGD_ERR_MEM, "size overflow allocating %s (%zu x %zu bytes)", what, n, size);
  *p = calloc(n, size);
  if (*p && nhgd_fault_hit(NHGD_FAULT_ALLOC)) {
    free(*p);
    *p = NULL;
  }
  if (!*p) NHGD_FAIL(NHGD_ERR_MEM, "out of memory allocating %s (%zu bytes)", what, n * size);
  return NHGD_OK;
}

void nhgd_free(void *pptr) {
  void **p = (void **)pptr;
  free(*p);
  *p = NULL;
}

double nhgd_mem_available(void) {
  double avail = 0.0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char key[64];
    double kib;
    while (fscanf(f, "%63s %lf kB", key, &kib) == 2)
      if (!strcmp(key, "MemAvailable:")) avail = kib * 1024.0;
    fclose(f);
  }
  return avail;
}
