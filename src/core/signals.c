/* SIGUSR1/SIGTERM handlers: set a flag that the inner loop turns into a checkpoint. */
#include "core/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_count = 0;

static void on_stop(int sig) {
  (void)sig;
  if (stop_count < 1000) stop_count = stop_count + 1;
}

void nhgd_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int nhgd_signal_count(void) {
  return (int)stop_count;
}
