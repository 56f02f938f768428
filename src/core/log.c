/* Levelled logger: rank 0 prints timestamped, flushed lines to stderr/stdout. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int log_rank = 0;
static int log_level = NHGD_LOG_INFO;

void nhgd_log_init(MPI_Comm comm, int level) {
  MPI_Comm_rank(comm, &log_rank);
  log_level = level;
}

int nhgd_log_level(void) {
  return log_level;
}

double nhgd_wtime(void) {
  return MPI_Wtime();
}

void nhgd_log(int level, const char *fmt, ...) {
  if (log_rank != 0 || level > log_level) return;
  static const char *const tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
  char stamp[32];
  time_t now = time(NULL);
  struct tm tmv;
  gmtime_r(&now, &tmv);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  FILE *out = level <= NHGD_LOG_WARN ? stderr : stdout;
  fprintf(out, "[%s] %s ", stamp, tags[level]);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(out, fmt, ap);
  va_end(ap);
  fputc('\n', out);
  fflush(out);
}
