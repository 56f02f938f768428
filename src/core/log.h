/* Levelled logger: rank 0 prints timestamped, flushed lines. */
#ifndef NHGD_CORE_LOG_H
#define NHGD_CORE_LOG_H

#include <mpi.h>

enum { NHGD_LOG_ERROR = 0, NHGD_LOG_WARN = 1, NHGD_LOG_INFO = 2, NHGD_LOG_DEBUG = 3 };

/* Collective: remember this process's rank in comm and the level. */
void nhgd_log_init(MPI_Comm comm, int level);
int nhgd_log_level(void);
/* Not collective: prints only on rank 0 of the communicator given to nhgd_log_init. */
void nhgd_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Seconds since the epoch (MPI_Wtime based clock). */
double nhgd_wtime(void);

#endif
