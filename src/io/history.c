/* History records, their column table, and the two ways they are stored. */
#include "io/history.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/util.h"
#include "io/h5util.h"

/* The columns in checkpoint order: a format's records hold the columns of that format and
 * older ones (since: the checkpoint format that added the column). */
static const struct {
  const char *name;
  size_t offset;
  int is_int;
  int since;
} columns[] = {
    {"step", offsetof(nhgd_record, step), 1, 1},
    {"val_loss", offsetof(nhgd_record, val_loss), 0, 1},
    {"val_acc", offsetof(nhgd_record, val_acc), 0, 1},
    {"test_loss", offsetof(nhgd_record, test_loss), 0, 1},
    {"test_acc", offsetof(nhgd_record, test_acc), 0, 1},
    {"inner_loss", offsetof(nhgd_record, inner_loss), 0, 1},
    {"hypergrad_norm", offsetof(nhgd_record, hypergrad_norm), 0, 1},
    {"wall_time", offsetof(nhgd_record, wall_time), 0, 1},
    {"samples", offsetof(nhgd_record, samples), 0, 2},
    {"val_rows", offsetof(nhgd_record, val_rows), 1, 5},
    {"val_loss_full", offsetof(nhgd_record, val_loss_full), 0, 5},
    {"solver_time", offsetof(nhgd_record, solver_time), 0, 5},
    {"eval_time", offsetof(nhgd_record, eval_time), 0, 5},
};
#define NCOL ((int)(sizeof columns / sizeof columns[0]))

static double get(const nhgd_record *r, int c) {
  const char *p = (const char *)r + columns[c].offset;
  return columns[c].is_int ? (double)*(const int64_t *)p : *(const double *)p;
}

/* An integer column's value that no int64 holds (damage) is read as -1. */
static void set(nhgd_record *r, int c, double x) {
  char *p = (char *)r + columns[c].offset;
  if (columns[c].is_int)
    *(int64_t *)p = x > -9e18 && x < 9e18 ? (int64_t)x : -1;
  else
    *(double *)p = x;
}

/* Room for one more element in an array of len elements of size bytes with capacity *cap. */
static int grow(void **buf, int64_t len, int64_t *cap, size_t size, const char *what) {
  if (len < *cap) return NHGD_OK;
  int64_t ncap = *cap ? 2 * *cap : 16;
  char *n;
  NHGD_CHECK(nhgd_calloc(&n, (size_t)ncap, size, what));
  if (len) memcpy(n, *buf, (size_t)len * size);
  nhgd_free(buf);
  *buf = n;
  *cap = ncap;
  return NHGD_OK;
}

int nhgd_history_push(nhgd_history *h, const nhgd_record *r) {
  NHGD_CHECK(grow((void **)&h->rec, h->len, &h->cap, sizeof *r, "history"));
  h->rec[h->len++] = *r;
  return NHGD_OK;
}

int nhgd_history_push_rollback(nhgd_history *h, const nhgd_rollback_rec *r) {
  NHGD_CHECK(grow((void **)&h->rb, h->nrb, &h->cap_rb, sizeof *r, "rollback history"));
  h->rb[h->nrb++] = *r;
  return NHGD_OK;
}

const char *nhgd_lr_name(nhgd_lr_kind k) {
  return k == NHGD_LR_OUTER ? "outer-lr" : "inner-lr";
}

void nhgd_history_free(nhgd_history *h) {
  nhgd_free(&h->rec);
  nhgd_free(&h->rb);
  h->len = h->cap = h->nrb = h->cap_rb = 0;
}

/* The rollbacks' columns: outer step, step size (0 inner-lr, 1 outer-lr), old and new value. */
static const char *const rb_columns[] = {"rollback_step", "rollback_lr", "rollback_old_lr",
                                         "rollback_new_lr"};
#define NRB ((int)(sizeof rb_columns / sizeof rb_columns[0]))

static double rb_get(const nhgd_rollback_rec *r, int c) {
  const double x[NRB] = {(double)r->step, (double)r->lr, r->old_lr, r->new_lr};
  return x[c];
}

int nhgd_history_write_columns(const nhgd_history *h, hid_t g, MPI_Comm comm, int rank) {
  const int64_t n = h->len > h->nrb ? h->len : h->nrb;
  double *col;
  NHGD_CHECK(nhgd_error_agree(
      comm, nhgd_calloc(&col, (size_t)(n ? n : 1), sizeof(double), "history column")));
  int rc = NHGD_OK;
  /* Agreed column by column: a rank that stopped early would leave the others in the next
   * column's collective calls. */
  for (int c = 0; c < NCOL + NRB && !rc; ++c) {
    const int rb = c >= NCOL;
    const int64_t len = rb ? h->nrb : h->len;
    for (int64_t i = 0; i < len; ++i)
      col[i] = rb ? rb_get(&h->rb[i], c - NCOL) : get(&h->rec[i], c);
    rc = nhgd_error_agree(comm, nhgd_h5_write_vector(g, rb ? rb_columns[c - NCOL] : columns[c].name,
                                                     len, 0, rank == 0 ? len : 0, col));
  }
  if (!rc)
    rc = nhgd_error_agree(
        comm, nhgd_h5_attr_string(g, "rollback_lr_codes", "0: --inner-lr, 1: --outer-lr"));
  nhgd_free(&col);
  return rc;
}

/* Collective: n rows of width values, row(h, i, out) filling row i, as one vector. */
static int put_rows(const nhgd_history *h, nhgd_section *s, const char *name, int64_t n, int width,
                    void (*row)(const nhgd_history *, int64_t, double *)) {
  double *rows;
  NHGD_CHECK(nhgd_section_agree(
      s, nhgd_calloc(&rows, (size_t)(n ? n : 1) * (size_t)width, sizeof(double), "history")));
  for (int64_t i = 0; i < n; ++i)
    row(h, i, rows + i * width);
  int rc = nhgd_section_put_vector(s, name, n * width, rows);
  nhgd_free(&rows);
  return rc;
}

/* Collective: the n rows of width values in dataset name, into *rows (rows of at least
 * alloc_width values, freed by the caller); the length is checked before anything is
 * allocated from it. */
static int get_rows(nhgd_section *s, const char *name, int64_t n, int width, int alloc_width,
                    const char *what, double **rows) {
  int64_t have = -1;
  NHGD_CHECK(nhgd_section_get_length(s, name, &have));
  if (n < 0 || n > ((int64_t)1 << 40) || have != n * width)
    NHGD_FAIL(NHGD_ERR_DATA, "dataset %s has %lld entries, expected %lld (%lld %s)", name,
              (long long)have, (long long)n * width, (long long)n, what);
  NHGD_CHECK(nhgd_section_agree(
      s, nhgd_calloc(rows, (size_t)(n ? n : 1) * (size_t)alloc_width, sizeof(double), what)));
  int rc = nhgd_section_get_vector(s, name, n * width, *rows);
  if (rc) nhgd_free(rows);
  return rc;
}

static void record_row(const nhgd_history *h, int64_t i, double *out) {
  for (int c = 0; c < NCOL; ++c)
    out[c] = get(&h->rec[i], c);
}

static void rollback_row(const nhgd_history *h, int64_t i, double *out) {
  for (int c = 0; c < NRB; ++c)
    out[c] = rb_get(&h->rb[i], c);
}

int nhgd_history_put(const nhgd_history *h, nhgd_section *s, const char *name) {
  return put_rows(h, s, name, h->len, NCOL, record_row);
}

int nhgd_history_get(nhgd_history *h, nhgd_section *s, const char *name, int64_t n,
                     int64_t format_version, const nhgd_record *missing) {
  int fields = 0;
  while (fields < NCOL && columns[fields].since <= format_version)
    ++fields;
  double *rows;
  NHGD_CHECK(get_rows(s, name, n, fields, NCOL, "outer steps", &rows));
  int rc = NHGD_OK;
  h->len = 0;
  for (int64_t i = 0; !rc && i < n; ++i) {
    nhgd_record r = *missing;
    for (int c = 0; c < fields; ++c)
      set(&r, c, rows[i * fields + c]);
    rc = nhgd_history_push(h, &r);
  }
  nhgd_free(&rows);
  return nhgd_section_agree(s, rc);
}

int nhgd_history_put_rollbacks(const nhgd_history *h, nhgd_section *s, const char *name) {
  return put_rows(h, s, name, h->nrb, NRB, rollback_row);
}

int nhgd_history_get_rollbacks(nhgd_history *h, nhgd_section *s, const char *name, int64_t n) {
  double *rows;
  NHGD_CHECK(get_rows(s, name, n, NRB, NRB, "rollbacks", &rows));
  int rc = NHGD_OK;
  h->nrb = 0;
  for (int64_t i = 0; !rc && i < n; ++i) {
    const double *x = rows + i * NRB;
    /* A halving leaves a positive finite step size below the one before. */
    if (!(x[0] >= 0 && x[0] <= (double)((int64_t)1 << 40)) || (x[1] != 0 && x[1] != 1) ||
        !isfinite(x[2]) || !(x[3] > 0) || !(x[3] < x[2])) {
      rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__,
                          "dataset %s: rollback %lld (%g, %g, %g, %g) is not a halving", name,
                          (long long)i, x[0], x[1], x[2], x[3]);
      break;
    }
    const nhgd_rollback_rec r = {(int64_t)x[0], x[1] == 1 ? NHGD_LR_OUTER : NHGD_LR_INNER, x[2],
                                 x[3]};
    rc = nhgd_history_push_rollback(h, &r);
  }
  nhgd_free(&rows);
  return nhgd_section_agree(s, rc);
}
