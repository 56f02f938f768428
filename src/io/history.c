/* History records, their column table, and the two ways they are stored. */
#include "io/history.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/util.h"
#include "io/h5util.h"

static const struct {
  const char *name;
  size_t offset;
  int is_int;
} columns[] = {
    {"step", offsetof(nhgd_record, step), 1},
    {"val_loss", offsetof(nhgd_record, val_loss), 0},
    {"val_acc", offsetof(nhgd_record, val_acc), 0},
    {"test_loss", offsetof(nhgd_record, test_loss), 0},
    {"test_acc", offsetof(nhgd_record, test_acc), 0},
    {"inner_loss", offsetof(nhgd_record, inner_loss), 0},
    {"hypergrad_norm", offsetof(nhgd_record, hypergrad_norm), 0},
    {"wall_time", offsetof(nhgd_record, wall_time), 0},
    {"samples", offsetof(nhgd_record, samples), 0}, /* since checkpoint format 2 */
};
#define NCOL ((int)(sizeof columns / sizeof columns[0]))

static double get(const nhgd_record *r, int c) {
  const char *p = (const char *)r + columns[c].offset;
  return columns[c].is_int ? (double)*(const int64_t *)p : *(const double *)p;
}

static void set(nhgd_record *r, int c, double x) {
  char *p = (char *)r + columns[c].offset;
  if (columns[c].is_int)
    *(int64_t *)p = (int64_t)x;
  else
    *(double *)p = x;
}

int nhgd_history_push(nhgd_history *h, const nhgd_record *r) {
  if (h->len == h->cap) {
    int64_t cap = h->cap ? 2 * h->cap : 64;
    nhgd_record *n;
    NHGD_CHECK(nhgd_calloc(&n, (size_t)cap, sizeof *n, "history"));
    if (h->len) memcpy(n, h->rec, (size_t)h->len * sizeof *n);
    nhgd_free(&h->rec);
    h->rec = n;
    h->cap = cap;
  }
  h->rec[h->len++] = *r;
  return NHGD_OK;
}

void nhgd_history_free(nhgd_history *h) {
  nhgd_free(&h->rec);
  h->len = h->cap = 0;
}

int nhgd_history_write_columns(const nhgd_history *h, hid_t g, MPI_Comm comm, int rank) {
  const int64_t n = h->len;
  double *col;
  NHGD_CHECK(nhgd_error_agree(
      comm, nhgd_calloc(&col, (size_t)(n ? n : 1), sizeof(double), "history column")));
  int rc = NHGD_OK;
  /* Agreed column by column: a rank that stopped early would leave the others in the next
   * column's collective calls. */
  for (int c = 0; c < NCOL && !rc; ++c) {
    for (int64_t i = 0; i < n; ++i)
      col[i] = get(&h->rec[i], c);
    rc = nhgd_error_agree(comm,
                          nhgd_h5_write_vector(g, columns[c].name, n, 0, rank == 0 ? n : 0, col));
  }
  nhgd_free(&col);
  return rc;
}

int nhgd_history_put(const nhgd_history *h, nhgd_section *s, const char *name) {
  double *rows;
  NHGD_CHECK(nhgd_section_agree(
      s, nhgd_calloc(&rows, (size_t)(h->len ? h->len : 1) * NCOL, sizeof(double), "history")));
  for (int64_t i = 0; i < h->len; ++i)
    for (int c = 0; c < NCOL; ++c)
      rows[i * NCOL + c] = get(&h->rec[i], c);
  int rc = nhgd_section_put_vector(s, name, h->len * NCOL, rows);
  nhgd_free(&rows);
  return rc;
}

int nhgd_history_get(nhgd_history *h, nhgd_section *s, const char *name, int64_t n,
                     int64_t format_version) {
  const int fields = format_version >= 2 ? NCOL : NCOL - 1;
  /* The length is checked before anything is allocated from it. */
  int64_t have = -1;
  NHGD_CHECK(nhgd_section_get_length(s, name, &have));
  if (n < 0 || n > ((int64_t)1 << 40) || have != n * fields)
    NHGD_FAIL(NHGD_ERR_DATA, "dataset %s has %lld entries, expected %lld (%lld outer steps)", name,
              (long long)have, (long long)n * fields, (long long)n);
  double *rows;
  NHGD_CHECK(nhgd_section_agree(
      s, nhgd_calloc(&rows, (size_t)(n ? n : 1) * NCOL, sizeof(double), "history")));
  int rc = nhgd_section_get_vector(s, name, n * fields, rows);
  h->len = 0;
  for (int64_t i = 0; !rc && i < n; ++i) {
    nhgd_record r;
    for (int c = 0; c < NCOL; ++c)
      set(&r, c, c < fields ? rows[i * fields + c] : NAN);
    rc = nhgd_history_push(h, &r);
  }
  nhgd_free(&rows);
  return nhgd_section_agree(s, rc);
}
