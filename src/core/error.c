/* The per-process error record and the collective agreement on a failure. */
#include "nhgd/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NHGD_MSG_LEN 2048
#define NHGD_WHERE_LEN 1024

static char nhgd_msg[NHGD_MSG_LEN];
static char nhgd_where[NHGD_WHERE_LEN];
static int nhgd_code;
static int nhgd_fresh; /* the last nhgd_error_set recorded a new message */

static const char *const nhgd_status_names[] = {"success",
                                                "invalid argument",
                                                "out of memory",
                                                "input/output error",
                                                "bad input data",
                                                "MPI error",
                                                "HDF5 error",
                                                "ScaLAPACK error",
                                                "numerical failure",
                                                "internal error",
                                                "failed on another rank",
                                                "stopped after a checkpoint"};

const char *nhgd_strerror(int code) {
  if (code < 0 || code > NHGD_STOPPED) return "unknown error";
  return nhgd_status_names[code];
}

static void append_where(const char *file, int line) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  size_t used = strlen(nhgd_where);
  if (used + 2 >= NHGD_WHERE_LEN) return;
  snprintf(nhgd_where + used, NHGD_WHERE_LEN - used, "%s%s:%d", used ? " <- " : "", base, line);
}

int nhgd_error_set(int code, const char *file, int line, const char *fmt, ...) {
  if (nhgd_code == 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nhgd_msg, sizeof nhgd_msg, fmt, ap);
    va_end(ap);
    nhgd_code = code;
    nhgd_where[0] = '\0';
    nhgd_fresh = 1;
  } else {
    nhgd_fresh = 0;
  }
  append_where(file, line);
  return code;
}

void nhgd_error_append_fresh(const char *text) {
  if (!nhgd_fresh || !text || !text[0]) return;
  size_t used = strlen(nhgd_msg);
  snprintf(nhgd_msg + used, sizeof nhgd_msg - used, "%s", text);
}

void nhgd_error_context(const char *fmt, ...) {
  if (!nhgd_code) return;
  char head[NHGD_MSG_LEN], old[NHGD_MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  /* Already said (the same context may be added on the way up more than once). */
  if (!strncmp(nhgd_msg, head, strlen(head))) return;
  memcpy(old, nhgd_msg, sizeof old);
  size_t h = strlen(head);
  if (h >= sizeof nhgd_msg) h = sizeof nhgd_msg - 1;
  memcpy(nhgd_msg, head, h);
  size_t rest = strlen(old);
  if (rest > sizeof nhgd_msg - 1 - h) rest = sizeof nhgd_msg - 1 - h;
  memcpy(nhgd_msg + h, old, rest);
  nhgd_msg[h + rest] = '\0';
}

int nhgd_error_trace(int code, const char *file, int line) {
  if (nhgd_code == 0) {
    /* A status without a message (e.g. from user code): give it one. */
    snprintf(nhgd_msg, sizeof nhgd_msg, "%s", nhgd_strerror(code));
    nhgd_code = code;
  }
  append_where(file, line);
  return code;
}

const char *nhgd_error_message(void) {
  return nhgd_msg;
}

const char *nhgd_error_where(void) {
  return nhgd_where;
}

void nhgd_error_clear(void) {
  nhgd_msg[0] = '\0';
  nhgd_where[0] = '\0';
  nhgd_code = 0;
  nhgd_fresh = 0;
}

int nhgd_error_agree(MPI_Comm comm, int local_status) {
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  /* Lowest failing rank, or size if none failed. */
  int mine = local_status ? rank : size, first = size;
  if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS) {
    return nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__,
                          "MPI_Allreduce failed while agreeing on an error");
  }
  if (first == size) return NHGD_OK;
  int code = local_status;
  char buf[NHGD_MSG_LEN + NHGD_WHERE_LEN];
  if (rank == first) {
    if (nhgd_code == 0) nhgd_error_trace(local_status, __FILE__, __LINE__);
    memcpy(buf, nhgd_msg, NHGD_MSG_LEN);
    memcpy(buf + NHGD_MSG_LEN, nhgd_where, NHGD_WHERE_LEN);
  }
  MPI_Bcast(&code, 1, MPI_INT, first, comm);
  MPI_Bcast(buf, (int)sizeof buf, MPI_CHAR, first, comm);
  if (rank != first) {
    memcpy(nhgd_msg, buf, NHGD_MSG_LEN);
    memcpy(nhgd_where, buf + NHGD_MSG_LEN, NHGD_WHERE_LEN);
    nhgd_msg[NHGD_MSG_LEN - 1] = '\0';
    nhgd_where[NHGD_WHERE_LEN - 1] = '\0';
    nhgd_code = code;
  }
  return code;
}
