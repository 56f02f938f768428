/* The metrics file (include/nhgd/metrics.h): JSON lines written by rank 0, each whole or not
 * at all. */
#include "nhgd/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "outer/engine.h"
#include "nhgd/errors.h"
#include "nhgd/stop.h"

struct nhgd_metrics {
  MPI_Comm comm; /* a duplicate of the solver's */
  FILE *f;       /* rank 0's file; NULL elsewhere */
  char *path;
  int err; /* errno of the first failed write, 0 while none failed */
};

/* x with fmt, or null. */
static const char *json_num(char *buf, size_t len, const char *fmt, double x) {
  if (!isfinite(x)) return "null";
  snprintf(buf, len, fmt, x);
  return buf;
}

static void put(nhgd_metrics *m, const char *line) {
  if (!m->f || m->err) return;
  const long start = ftell(m->f);
  errno = 0;
  if (fputs(line, m->f) >= 0 && fflush(m->f) == 0) return;
  m->err = errno ? errno : EIO;
  clearerr(m->f);
  /* What reached the file of a partial line goes: the file stays whole JSON lines. */
  if (start >= 0 && ftruncate(fileno(m->f), (off_t)start) == 0) fseek(m->f, start, SEEK_SET);
  nhgd_request_stop();
}

int nhgd_metrics_open(nhgd_solver *s, const char *path, nhgd_metrics **out) {
  *out = NULL;
  nhgd_metrics *m = NULL;
  int rank = 0, rc = nhgd_calloc(&m, 1, sizeof *m, "metrics file");
  MPI_Comm_rank(s->comm, &rank);
  if (!rc) {
    m->comm = MPI_COMM_NULL;
    m->path = strdup(path);
    if (!m->path) rc = nhgd_error_set(NHGD_ERR_MEM, __FILE__, __LINE__, "metrics file: no memory");
  }
  if (!rc && rank == 0) {
    /* A resumed run appends to the metrics of the run it continues. */
    m->f = fopen(path, nhgd_solver_resumed(s) ? "a" : "w");
    /* At the end, so that a failed line is cut back from where it began. */
    if (m->f) fseek(m->f, 0, SEEK_END);
    if (!m->f)
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "metrics file %s: cannot open (%s)",
                          path, strerror(errno));
  }
  if (!rc && MPI_Comm_dup(s->comm, &m->comm) != MPI_SUCCESS) {
    m->comm = MPI_COMM_NULL;
    rc = nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__, "metrics file: MPI_Comm_dup failed");
  }
  rc = nhgd_error_agree(s->comm, rc);
  if (rc) {
    if (m) {
      if (m->f) fclose(m->f);
      if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
      free(m->path);
      nhgd_free(&m);
    }
    return rc;
  }
  *out = m;
  return NHGD_OK;
}

void nhgd_metrics_progress(const nhgd_progress *r, void *metrics) {
  char line[1024], b[11][40];
  snprintf(line, sizeof line,
           "{\"outer_step\": %lld, \"val_loss\": %s, \"val_acc\": %s, \"test_loss\": %s, "
           "\"test_acc\": %s, \"inner_loss\": %s, \"hypergrad_norm\": %s, \"wall_time\": %s, "
           "\"samples\": %s, \"val_rows\": %lld, \"val_loss_full\": %s, \"solver_time\": %s, "
           "\"eval_time\": %s}\n",
           (long long)r->step, json_num(b[0], 40, "%.17g", r->val_loss),
           json_num(b[1], 40, "%.17g", r->val_acc), json_num(b[2], 40, "%.17g", r->test_loss),
           json_num(b[3], 40, "%.17g", r->test_acc), json_num(b[4], 40, "%.17g", r->inner_loss),
           json_num(b[5], 40, "%.17g", r->hypergrad_norm), json_num(b[6], 40, "%.6f", r->wall_time),
           json_num(b[7], 40, "%.17g", r->samples), (long long)r->val_rows,
           json_num(b[8], 40, "%.17g", r->val_loss_full),
           json_num(b[9], 40, "%.6f", r->solver_time), json_num(b[10], 40, "%.6f", r->eval_time));
  put(metrics, line);
}

/* A rollback of --on-divergence halve; the outer steps taken again follow with lines of their
 * own. */
void nhgd_metrics_rollback(const nhgd_rollback *r, void *metrics) {
  char line[512], b[2][40];
  snprintf(line, sizeof line,
           "{\"rollback\": {\"outer_step\": %lld, \"to_outer_step\": %lld, \"lr\": \"%s\", "
           "\"old\": %s, \"new\": %s}}\n",
           (long long)r->step, (long long)r->to_step, r->option,
           json_num(b[0], 40, "%.17g", r->old_value), json_num(b[1], 40, "%.17g", r->new_value));
  put(metrics, line);
}

int nhgd_metrics_timing(nhgd_metrics *m, nhgd_solver *s) {
  /* No file: NULL on every rank alike (nhgd_metrics_open is collective), so no reduction. */
  if (!m) return NHGD_OK;
  int n = 0;
  NHGD_CHECK(nhgd_solver_timing(s, &n, NULL, NULL, NULL, NULL));
  const char *names[32];
  double mn[32], avg[32], mx[32];
  if (n > 32) n = 32;
  NHGD_CHECK(nhgd_solver_timing(s, &n, names, mn, avg, mx));
  if (!m->f) return NHGD_OK;
  char line[4096], b[3][40];
  size_t used = (size_t)snprintf(line, sizeof line, "{\"timing\": {");
  for (int i = 0; i < n && used < sizeof line; ++i)
    used += (size_t)snprintf(line + used, sizeof line - used, "%s\"%s\": [%s, %s, %s]",
                             i ? ", " : "", names[i], json_num(b[0], 40, "%.6f", mn[i]),
                             json_num(b[1], 40, "%.6f", avg[i]), json_num(b[2], 40, "%.6f", mx[i]));
  int P;
  MPI_Comm_size(m->comm, &P);
  if (used < sizeof line) snprintf(line + used, sizeof line - used, "}, \"ranks\": %d}\n", P);
  put(m, line);
  return NHGD_OK;
}

int nhgd_metrics_close(nhgd_metrics **mp, const char *checkpoint_dir) {
  nhgd_metrics *m = *mp;
  if (!m) return NHGD_OK;
  int rc = NHGD_OK;
  if (m->f && fclose(m->f) != 0 && !m->err) m->err = errno ? errno : EIO;
  m->f = NULL;
  if (m->err)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                        "metrics file %s: cannot write (%s); the lines from there on are missing%s",
                        m->path, strerror(m->err),
                        checkpoint_dir && checkpoint_dir[0]
                            ? "; the state is checkpointed: free space and continue with "
                              "--restart auto"
                            : "");
  rc = nhgd_error_agree(m->comm, rc);
  MPI_Comm_free(&m->comm);
  free(m->path);
  nhgd_free(mp);
  return rc;
}
