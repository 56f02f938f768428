/* Checked allocation and the memory the system has available. */
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int nhgd_check_regular(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return NHGD_OK;
  const char *kind = S_ISFIFO(st.st_mode)   ? "named pipe (FIFO)"
                     : S_ISSOCK(st.st_mode) ? "socket"
                     : S_ISCHR(st.st_mode)  ? "character device"
                     : S_ISBLK(st.st_mode)  ? "block device"
                                            : "special file";
  NHGD_FAIL(NHGD_ERR_IO, "%s: is a %s, not a regular file (nhgd reads inputs from files only)",
            path, kind);
}
