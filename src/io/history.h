/* The run history: one record per outer step, and the one column layout that the output file
 * (a group of columns) and the checkpoint (rows packed in the same column order) share. */
#ifndef NHGD_IO_HISTORY_H
#define NHGD_IO_HISTORY_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

#include "io/section.h"
#include "nhgd/history.h"

typedef nhgd_progress nhgd_record;

/* One rollback of --on-divergence halve: the outer step whose divergence it answered, the
 * step size it halved and its value before and after. */
typedef enum { NHGD_LR_INNER = 0, NHGD_LR_OUTER = 1 } nhgd_lr_kind;
typedef struct nhgd_rollback_rec {
  int64_t step;
  nhgd_lr_kind lr;
  double old_lr, new_lr;
} nhgd_rollback_rec;

typedef struct nhgd_history {
  nhgd_record *rec;
  int64_t len, cap;
  nhgd_rollback_rec *rb;
  int64_t nrb, cap_rb;
} nhgd_history;

int nhgd_history_push(nhgd_history *h, const nhgd_record *r);
int nhgd_history_push_rollback(nhgd_history *h, const nhgd_rollback_rec *r);
/* The option a step-size kind stands for ("inner-lr", "outer-lr"). */
const char *nhgd_lr_name(nhgd_lr_kind k);
void nhgd_history_free(nhgd_history *h);

/* Collective: one dataset per column under group g (the output layout). */
int nhgd_history_write_columns(const nhgd_history *h, hid_t g, MPI_Comm comm, int rank);
/* Collective: the records as one vector of rows (the checkpoint layout), and back. The rows
 * of an older checkpoint format lack the columns added since: those fields are taken from
 * missing. */
int nhgd_history_put(const nhgd_history *h, nhgd_section *s, const char *name);
int nhgd_history_get(nhgd_history *h, nhgd_section *s, const char *name, int64_t n,
                     int64_t format_version, const nhgd_record *missing);
/* Collective: the rollbacks as one vector of rows (step, lr kind, old, new), and back (n rows;
 * each is checked before it is taken). */
int nhgd_history_put_rollbacks(const nhgd_history *h, nhgd_section *s, const char *name);
int nhgd_history_get_rollbacks(nhgd_history *h, nhgd_section *s, const char *name, int64_t n);

#endif
