/* Error codes, the per-process error record, and the check macros used by every module. */
#ifndef NHGD_ERRORS_H
#define NHGD_ERRORS_H

#include "nhgd/export.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every libnhgd function; 0 is success. */
typedef enum nhgd_status {
  NHGD_OK = 0,
  NHGD_ERR_ARG = 1,       /* invalid argument or option value */
  NHGD_ERR_MEM = 2,       /* allocation failed or configuration does not fit in memory */
  NHGD_ERR_IO = 3,        /* file cannot be opened, read or written */
  NHGD_ERR_DATA = 4,      /* input data is malformed (shape, type, range, NaN/Inf) */
  NHGD_ERR_MPI = 5,       /* an MPI call failed */
  NHGD_ERR_HDF5 = 6,      /* an HDF5 call failed */
  NHGD_ERR_SCALAPACK = 7, /* ScaLAPACK/BLACS reported an error */
  NHGD_ERR_NUMERIC = 8,   /* NaN/Inf during the solve, or a matrix that is not positive definite */
  NHGD_ERR_INTERNAL = 9,  /* a bug: an invariant of libnhgd itself was violated */
  NHGD_ERR_OTHER_RANK = 10, /* not used as a final status: marks "failed elsewhere" in agreement */
  NHGD_STOPPED = 11         /* not an error: a checkpoint was written and the run stopped on
                               request (signal or --halt-after); resume with --restart auto */
} nhgd_status;

/* Short name of a status code ("invalid argument", ...). Not collective. */
NHGD_API const char *nhgd_strerror(int code);

/* Record an error: the first message set since the last nhgd_error_clear() is kept, later
 * ones only add their location to the trace. Returns code. Not collective. */
NHGD_API int nhgd_error_set(int code, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Add a call-site to the trace of the recorded error; returns code. Not collective. */
NHGD_API int nhgd_error_trace(int code, const char *file, int line);

/* The recorded message ("" if none) and its trace of call sites. Not collective. */
NHGD_API const char *nhgd_error_message(void);
NHGD_API const char *nhgd_error_where(void);
NHGD_API void nhgd_error_clear(void);

/* Collective over comm. Every rank passes its local status; all ranks return the same
 * status: 0 if every rank passed 0, otherwise the code of the lowest failing rank, whose
 * message then becomes the recorded message on every rank. Call it before the next
 * collective operation after anything that can fail on some ranks only. */
NHGD_API int nhgd_error_agree(MPI_Comm comm, int local_status);

/* Return early with a new error. */
#define NHGD_FAIL(code, ...) return nhgd_error_set((code), __FILE__, __LINE__, __VA_ARGS__)

/* Evaluate a call returning a status; on failure, add this site to the trace and return. */
#define NHGD_CHECK(call)                                                                           \
  do {                                                                                             \
    int nhgd_rc_ = (call);                                                                         \
    if (nhgd_rc_) return nhgd_error_trace(nhgd_rc_, __FILE__, __LINE__);                           \
  } while (0)

/* Same, but store the status in rc and jump to label (for functions that must clean up). */
#define NHGD_TRY(rc, call, label)                                                                  \
  do {                                                                                             \
    (rc) = (call);                                                                                 \
    if (rc) {                                                                                      \
      nhgd_error_trace((rc), __FILE__, __LINE__);                                                  \
      goto label;                                                                                  \
    }                                                                                              \
  } while (0)

/* Set a new error in rc and jump to label. */
#define NHGD_RAISE(rc, label, code, ...)                                                           \
  do {                                                                                             \
    (rc) = nhgd_error_set((code), __FILE__, __LINE__, __VA_ARGS__);                                \
    goto label;                                                                                    \
  } while (0)

/* Check an MPI call; MPI errors are returned (the library sets MPI_ERRORS_RETURN). */
#define NHGD_MPI_CHECK(call)                                                                       \
  do {                                                                                             \
    int nhgd_mrc_ = (call);                                                                        \
    if (nhgd_mrc_ != MPI_SUCCESS)                                                                  \
      return nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__, "MPI call failed: %s", #call);       \
  } while (0)

#ifdef __cplusplus
}
#endif
#endif
