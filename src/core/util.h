/* Small private helpers shared by all modules: checked allocation and HDF5 checks. */
#ifndef NHGD_CORE_UTIL_H
#define NHGD_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "nhgd/errors.h"

/* Allocate n elements of size bytes, zeroed; on failure record NHGD_ERR_MEM naming what. */
int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what);
/* Bytes of MemAvailable in /proc/meminfo, or 0 when unknown. */
double nhgd_mem_available(void);
/* Free *pptr and set it to NULL. */
void nhgd_free(void *pptr);

/* HDF5 identifiers are negative on failure; the message then ends with HDF5's own cause
 * (e.g. the system error of a failed write), taken from its error stack. */
#define NHGD_H5_TRY(rc, expr, label, ...)                                                          \
  do {                                                                                             \
    if ((expr) < 0 || nhgd_fault_hit_h5(#expr)) {                                                  \
      (rc) = nhgd_error_set(NHGD_ERR_HDF5, __FILE__, __LINE__, __VA_ARGS__);                       \
      nhgd_h5_append_cause();                                                                      \
      goto label;                                                                                  \
    }                                                                                              \
  } while (0)

/* Not collective: add HDF5's cause of the failure just recorded to its message. */
void nhgd_h5_append_cause(void);

/* Not collective: append text to the recorded message if the last nhgd_error_set recorded
 * it (not an earlier error's). */
void nhgd_error_append_fresh(const char *text);
/* Not collective: put a printf-style prefix (e.g. the file the failure is about) before the
 * recorded message, unless it already starts with it. */
void nhgd_error_context(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Fault injection (test builds with -DNHGD_FAULTS=ON): NHGD_FAULT=KIND:N[:RANK] makes the
 * N-th call of that kind fail on world rank RANK (default 0): h5, the data transfers checked
 * by NHGD_H5_TRY (H5Dwrite, H5Dread, H5Awrite, H5Aread); alloc, nhgd_calloc. A transfer
 * fails after it ran, the last call of its helper, so the ranks' HDF5 metadata stays the same
 * (a rank that skipped a metadata call would leave HDF5 itself in different collectives).
 * NHGD_FAULT_COUNT=FILE appends each rank's number of calls of each kind to FILE at exit. Without
 * the option nhgd_fault_hit is the constant 0. */
enum { NHGD_FAULT_H5 = 0, NHGD_FAULT_ALLOC = 1, NHGD_FAULT_KINDS = 2 };
#ifdef NHGD_FAULTS
int nhgd_fault_hit(int kind);
/* call: the text of the HDF5 call; counts (and may fail) only data transfers. */
int nhgd_fault_hit_h5(const char *call);
#else
#define nhgd_fault_hit(kind) 0
#define nhgd_fault_hit_h5(call) 0
#endif

/* Silence HDF5's own error stack printing (we report errors ourselves). Not collective. */
void nhgd_h5_quiet(void);

#endif
