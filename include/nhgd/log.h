/* The library's levelled logger: rank 0 of the configured communicator prints timestamped,
 * flushed lines (warnings and errors to stderr, the rest to stdout). */
#ifndef NHGD_LOG_H
#define NHGD_LOG_H

#include <mpi.h>

#include "nhgd/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { NHGD_LOG_ERROR = 0, NHGD_LOG_WARN = 1, NHGD_LOG_INFO = 2, NHGD_LOG_DEBUG = 3 };

/* Collective: remember this process's rank in comm and the level (lines above it are
 * dropped). */
NHGD_API void nhgd_log_init(MPI_Comm comm, int level);
NHGD_API int nhgd_log_level(void);
/* Not collective: prints only on rank 0 of the communicator given to nhgd_log_init. */
NHGD_API void nhgd_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
