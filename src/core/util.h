/* Small private helpers shared by all modules: checked allocation, error messages, memory. */
#ifndef NHGD_CORE_UTIL_H
#define NHGD_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "core/fault.h"
#include "nhgd/errors.h"

/* Allocate n elements of size bytes, zeroed; on failure record NHGD_ERR_MEM naming what. */
int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what);
/* Bytes of MemAvailable in /proc/meminfo, or 0 when unknown. */
double nhgd_mem_available(void);
/* Free *pptr and set it to NULL. */
void nhgd_free(void *pptr);

/* Not collective: refuse (NHGD_ERR_IO) an input path that names a named pipe, a socket or a
 * device, before anything opens it (opening a FIFO for reading waits for a writer forever).
 * A missing path or a folder passes: the caller's open reports those in its own words. */
int nhgd_check_regular(const char *path);

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

#endif
