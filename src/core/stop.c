/* The stop flag behind nhgd_request_stop(). */
#include "core/stop.h"

#include <signal.h>

#include "nhgd/stop.h"

static volatile sig_atomic_t stop_flag = 0;

void nhgd_request_stop(void) {
  stop_flag = 1;
}

void nhgd_clear_stop_request(void) {
  stop_flag = 0;
}

int nhgd_stop_requested(void) {
  return stop_flag != 0;
}
