/* Asking a running solver to stop at its next inner step, after a checkpoint. */
#ifndef NHGD_STOP_H
#define NHGD_STOP_H

#include "nhgd/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Async-signal-safe, not collective: ask the running solver to write a checkpoint at its
 * next inner step and return NHGD_STOPPED (only with --checkpoint-dir; any rank's request
 * counts). A signal handler may call it. */
NHGD_API void nhgd_request_stop(void);

/* Async-signal-safe, not collective: forget this process's stop request. A request stays
 * until a run honours it; a program that goes on after a run stopped (to continue it in the
 * same process) calls this first, or the next run would stop at once. */
NHGD_API void nhgd_clear_stop_request(void);

#ifdef __cplusplus
}
#endif
#endif
