/* SIGUSR1 and SIGTERM as requests to checkpoint and stop at the next safe point. */
#ifndef NHGD_CORE_SIGNALS_H
#define NHGD_CORE_SIGNALS_H

/* Not collective. Install the handlers (idempotent). A signal only sets a flag, so one that
 * arrives during a checkpoint write changes nothing until the write is done. */
void nhgd_signals_install(void);
/* Number of stop signals received so far (0 if none). */
int nhgd_signal_count(void);

#endif
