/* Stop requests: a flag that nhgd_request_stop() (public, async-signal-safe) sets and the
 * inner and outer loops read at their next safe point. */
#ifndef NHGD_CORE_STOP_H
#define NHGD_CORE_STOP_H

/* Has a stop been requested (since the process started, or the last
 * nhgd_clear_stop_request)? Not collective. */
int nhgd_stop_requested(void);

#endif
