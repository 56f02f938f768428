/* The sampled cross term J^T u of per-row v (--cross-rows; docs/algorithm.md 1.1): the rows
 * inner SGD drew, kept as the problem's cross_keep records at the iterates that drew them
 * (trajectory), or rows drawn at the last iterate (end), each scaled by the inverse of its
 * expected count so that the estimate is unbiased for the mean over rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/util.h"
#include "outer/engine.h"

/* Records of an inner loop: T steps of B global slots (every local row with a full batch). */
static int64_t traj_capacity(const nhgd_solver *s) {
  const nhgd_solver_opts *o = s->opt;
  return o->inner.steps * (o->inner.batch ? o->inner.batch : s->data->train.n_local);
}

static int mode_of(const nhgd_solver_opts *o) {
  return !strcmp(o->cross_rows, "trajectory") ? NHGD_CROSS_TRAJECTORY
         : !strcmp(o->cross_rows, "end")      ? NHGD_CROSS_END
                                              : NHGD_CROSS_ALL;
}

/* Replicated v (logreg, mlp-hpo, ridge) or distill's few synthetic rows: J^T u takes no pass
 * over the training rows, so there is nothing to sample. */
static int nothing_to_sample(const nhgd_problem *pb) {
  return !pb->ops.cross_keep && (!pb->v_per_sample || !strcmp(pb->name, "distill"));
}

int nhgd_cross_check(const nhgd_solver_opts *o, const nhgd_problem *pb) {
  const int mode = mode_of(o);
  if (mode == NHGD_CROSS_ALL || nothing_to_sample(pb)) return NHGD_OK;
  if (!pb->ops.cross_keep)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --cross-rows %s: problem %s has per-row v but no sampled cross term "
              "(callbacks cross_keep and cross_apply): use --cross-rows all",
              o->cross_rows, pb->name);
  if (pb->cross_width < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "problem %s: cross_keep needs cross_width >= 1, has %d", pb->name,
              pb->cross_width);
  const int64_t n = pb->data->train.n_global;
  if (mode == NHGD_CROSS_END && o->cross_samples > n)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --cross-samples %lld: the training split has only %lld rows to draw from "
              "(give at most %lld, or --cross-rows all for every row)",
              (long long)o->cross_samples, (long long)n, (long long)n);
  return NHGD_OK;
}

int nhgd_cross_init(nhgd_solver *s) {
  const nhgd_solver_opts *o = s->opt;
  const nhgd_problem *pb = s->pb;
  nhgd_cross *c = &s->cross;
  c->mode = mode_of(o);
  if (c->mode == NHGD_CROSS_ALL) return NHGD_OK;
  NHGD_CHECK(nhgd_cross_check(o, pb));
  if (nothing_to_sample(pb)) {
    nhgd_log(NHGD_LOG_WARN,
             "option --cross-rows %s changes nothing: problem %s forms J^T u without a pass "
             "over the training rows",
             o->cross_rows, pb->name);
    c->mode = NHGD_CROSS_ALL;
    return NHGD_OK;
  }
  c->width = pb->cross_width;
  c->cap = c->mode == NHGD_CROSS_TRAJECTORY ? traj_capacity(s) : o->cross_samples;
  const double bytes = (double)c->cap * (double)(c->width + 2) * sizeof(double);
  const double avail = nhgd_mem_available();
  if (avail > 0 && bytes > 0.25 * avail)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --cross-rows %s keeps up to %lld rows of %d numbers (%.0f MiB on this "
              "rank), more than a quarter of the memory available (%.0f MiB): lower --batch, "
              "--inner-steps or --cross-samples",
              o->cross_rows, (long long)c->cap, c->width, bytes / 1048576.0, avail / 1048576.0);
  const size_t cap = (size_t)(c->cap > 0 ? c->cap : 1);
  NHGD_CHECK(nhgd_calloc(&c->rec, cap * (size_t)c->width, sizeof(double), "cross-term records"));
  NHGD_CHECK(nhgd_calloc(&c->rows, cap, sizeof(int), "cross-term rows"));
  NHGD_CHECK(nhgd_calloc(&c->pos, cap, sizeof(int64_t), "cross-term positions"));
  NHGD_CHECK(nhgd_calloc(&c->scale, cap, sizeof(double), "cross-term scales"));
  if (c->mode == NHGD_CROSS_END) {
    NHGD_CHECK(nhgd_calloc(&c->draw, cap, sizeof(int64_t), "cross-term draws"));
    NHGD_CHECK(nhgd_calloc(&c->scratch, (size_t)nhgd_rng_sample_table(c->cap), sizeof(int64_t),
                           "cross-term draws"));
  }
  nhgd_log(NHGD_LOG_INFO,
           "cross term: --cross-rows %s, %lld rows of %d numbers at most per inner loop "
           "(%.1f MiB on this rank)",
           o->cross_rows, (long long)c->cap, c->width, bytes / 1048576.0);
  return NHGD_OK;
}

void nhgd_cross_free(nhgd_cross *c) {
  nhgd_free(&c->rec);
  nhgd_free(&c->rows);
  nhgd_free(&c->pos);
  nhgd_free(&c->scale);
  nhgd_free(&c->draw);
  nhgd_free(&c->scratch);
  c->n = 0;
}

int nhgd_cross_observe(nhgd_solver *s, const double *theta, int nb, const int *rows) {
  nhgd_cross *c = &s->cross;
  if (c->mode != NHGD_CROSS_TRAJECTORY) return NHGD_OK;
  const nhgd_inner *in = &s->inner;
  if (c->n + nb > c->cap)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "cross-term records: %lld + %d rows exceed the %lld kept",
              (long long)c->n, nb, (long long)c->cap);
  const int64_t Bg = s->opt->inner.batch ? s->opt->inner.batch : s->data->train.n_global;
  nhgd_timer_start(&s->timers, NHGD_T_HYPERGRAD);
  int rc = s->pb->ops.cross_keep(s->pb, theta, s->v, nb, rows, 1, c->rec + c->n * c->width);
  nhgd_timer_stop(&s->timers, NHGD_T_HYPERGRAD);
  NHGD_CHECK(rc);
  for (int k = 0; k < nb; ++k) {
    c->rows[c->n + k] = rows[k];
    c->pos[c->n + k] = in->step * Bg + in->slots[k];
  }
  c->n += nb;
  return NHGD_OK;
}

/* The local rows of K distinct training rows drawn for outer step k. */
static int draw_end_rows(nhgd_solver *s, int *nb) {
  nhgd_cross *c = &s->cross;
  const nhgd_split *tr = &s->data->train;
  nhgd_rng_sample(s->opt->inner.seed, NHGD_STREAM_CROSS, (uint64_t)s->k, tr->n_global,
                  s->opt->cross_samples, c->scratch, c->draw);
  int n = 0;
  for (int64_t j = 0; j < s->opt->cross_samples; ++j)
    if (c->draw[j] >= tr->lo && c->draw[j] < tr->lo + tr->n_local) {
      c->rows[n] = (int)(c->draw[j] - tr->lo);
      c->pos[n++] = c->draw[j];
    }
  *nb = n;
  return NHGD_OK;
}

int nhgd_cross_term(nhgd_solver *s, const double *theta, const double *u, double *out) {
  nhgd_cross *c = &s->cross;
  const nhgd_problem *pb = s->pb;
  if (c->mode == NHGD_CROSS_ALL) return pb->ops.cross(pb, theta, s->v, u, out);
  memset(out, 0, (size_t)s->p_local * sizeof(double));
  double scale;
  if (c->mode == NHGD_CROSS_END) {
    /* K rows without replacement: each is in the draw with probability K/n. */
    int nb;
    NHGD_CHECK(draw_end_rows(s, &nb));
    NHGD_CHECK(pb->ops.cross_keep(pb, theta, s->v, nb, c->rows, 0, c->rec));
    c->n = nb;
    scale = 1.0 / (double)s->opt->cross_samples;
  } else {
    /* T steps of B draws with replacement: row i is drawn T B / n times in expectation. */
    const int64_t Bg = s->opt->inner.batch ? s->opt->inner.batch : s->data->train.n_global;
    scale = 1.0 / ((double)s->opt->inner.steps * (double)Bg);
  }
  for (int64_t j = 0; j < c->n; ++j)
    c->scale[j] = scale;
  return pb->ops.cross_apply(pb, s->v, u, (int)c->n, c->rows, c->rec, c->scale, out);
}

void nhgd_cross_begin(nhgd_solver *s) {
  s->cross.n = 0;
}

/* ---- checkpoints: the records of an inner loop stopped part-way (trajectory) ---- */

typedef struct {
  int64_t pos;
  int64_t row; /* global */
  const double *rec;
} rec_ref;

static int mpi_status(int err) {
  return err == MPI_SUCCESS
             ? NHGD_OK
             : nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__,
                              "gathering the cross-term records failed (MPI %d)", err);
}

static int cmp_pos(const void *a, const void *b) {
  const int64_t x = ((const rec_ref *)a)->pos, y = ((const rec_ref *)b)->pos;
  return (x > y) - (x < y);
}

/* Collective: every rank's records gathered on rank 0, in the order of their positions in the
 * global batches, as three replicated datasets: the grid-independent layout. */
int nhgd_cross_save(nhgd_solver *s, nhgd_section *sec) {
  nhgd_cross *c = &s->cross;
  if (c->mode != NHGD_CROSS_TRAJECTORY || s->ckpt_t == 0) return NHGD_OK;
  const int w = c->width, P = s->size;
  /* per record: position, global row, then w numbers */
  const int64_t lw = 2 + w;
  double *mine = NULL, *all = NULL, *sorted = NULL;
  int *counts = NULL, *displs = NULL;
  rec_ref *refs = NULL;
  int rc = nhgd_calloc(&mine, (size_t)(c->n > 0 ? c->n : 1) * (size_t)lw, sizeof(double),
                       "cross-term records");
  if (!rc) rc = nhgd_calloc(&counts, (size_t)P, sizeof(int), "cross-term counts");
  if (!rc) rc = nhgd_calloc(&displs, (size_t)P, sizeof(int), "cross-term counts");
  NHGD_TRY(rc, nhgd_section_agree(sec, rc), done);
  for (int64_t j = 0; j < c->n; ++j) {
    double *r = mine + j * lw;
    r[0] = (double)c->pos[j];
    r[1] = (double)(c->rows[j] + s->data->train.lo);
    memcpy(r + 2, c->rec + j * w, (size_t)w * sizeof(double));
  }
  int mycount = (int)(c->n * lw);
  NHGD_TRY(rc, mpi_status(MPI_Gather(&mycount, 1, MPI_INT, counts, 1, MPI_INT, 0, s->comm)), done);
  int64_t total = 0;
  if (s->rank == 0)
    for (int r = 0; r < P; ++r) {
      displs[r] = (int)total;
      total += counts[r];
    }
  NHGD_TRY(rc, mpi_status(MPI_Bcast(&total, 1, MPI_INT64_T, 0, s->comm)), done);
  if (total > INT32_MAX) {
    rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                        "cross-term records of %lld numbers are too many for one checkpoint",
                        (long long)total);
    goto done;
  }
  const int64_t nrec = total / lw;
  if (s->rank == 0) {
    rc = nhgd_calloc(&all, (size_t)(total > 0 ? total : 1), sizeof(double), "cross-term records");
    if (!rc) rc = nhgd_calloc(&sorted, (size_t)(total > 0 ? total : 1), sizeof(double), "records");
    if (!rc)
      rc = nhgd_calloc(&refs, (size_t)(nrec > 0 ? nrec : 1), sizeof(rec_ref), "cross-term records");
  }
  NHGD_TRY(rc, nhgd_section_agree(sec, rc), done);
  NHGD_TRY(rc,
           mpi_status(
               MPI_Gatherv(mine, mycount, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, s->comm)),
           done);
  if (s->rank == 0) {
    for (int64_t j = 0; j < nrec; ++j)
      refs[j] = (rec_ref){(int64_t)all[j * lw], (int64_t)all[j * lw + 1], all + j * lw};
    qsort(refs, (size_t)nrec, sizeof *refs, cmp_pos);
    for (int64_t j = 0; j < nrec; ++j)
      memcpy(sorted + j * lw, refs[j].rec, (size_t)lw * sizeof(double));
  }
  NHGD_TRY(rc, nhgd_section_put_int(sec, "cross_records", nrec), done);
  NHGD_TRY(rc, nhgd_section_put_int(sec, "cross_width", w), done);
  rc = nhgd_section_put_vector(sec, "cross_trajectory", total, sorted);
done:
  nhgd_free(&mine);
  nhgd_free(&all);
  nhgd_free(&sorted);
  nhgd_free(&counts);
  nhgd_free(&displs);
  nhgd_free(&refs);
  return rc;
}

/* Collective: the records of the checkpoint's inner loop that belong to this rank's rows. */
int nhgd_cross_load(nhgd_solver *s, nhgd_section *sec) {
  nhgd_cross *c = &s->cross;
  c->n = 0;
  if (c->mode != NHGD_CROSS_TRAJECTORY || s->ckpt_t == 0) return NHGD_OK;
  int64_t nrec, w, len;
  if (!nhgd_section_has(sec, "cross_records"))
    NHGD_FAIL(NHGD_ERR_DATA, "the checkpoint stopped inside an inner loop without the records of "
                             "its sampled cross term (--cross-rows trajectory)");
  NHGD_CHECK(nhgd_section_get_int(sec, "cross_records", &nrec));
  NHGD_CHECK(nhgd_section_get_int(sec, "cross_width", &w));
  const int64_t Bg = s->opt->inner.batch ? s->opt->inner.batch : s->data->train.n_global;
  const int64_t maxrec = s->ckpt_t * Bg;
  if (w != c->width || nrec < 0 || nrec > maxrec)
    NHGD_FAIL(NHGD_ERR_DATA,
              "the checkpoint's cross-term records (%lld of width %lld) do not fit %lld inner "
              "steps of this problem (width %d)",
              (long long)nrec, (long long)w, (long long)s->ckpt_t, c->width);
  const int64_t lw = 2 + w;
  NHGD_CHECK(nhgd_section_get_length(sec, "cross_trajectory", &len));
  if (len != nrec * lw)
    NHGD_FAIL(NHGD_ERR_DATA, "dataset cross_trajectory has %lld entries, not %lld", (long long)len,
              (long long)(nrec * lw));
  double *all = NULL;
  int rc = nhgd_calloc(&all, (size_t)(len > 0 ? len : 1), sizeof(double), "cross-term records");
  NHGD_CHECK(nhgd_section_agree(sec, rc));
  rc = nhgd_section_get_vector(sec, "cross_trajectory", len, all);
  if (!rc) rc = nhgd_section_check_finite(sec, "cross_trajectory", len, all);
  const nhgd_split *tr = &s->data->train;
  int bad = 0;
  for (int64_t j = 0; !rc && j < nrec; ++j) {
    const double *r = all + j * lw;
    const int64_t pos = (int64_t)r[0], row = (int64_t)r[1];
    bad |=
        pos < 0 || pos >= maxrec || row < 0 || row >= tr->n_global || (j > 0 && !(r[0] > r[-lw]));
    if (bad || row < tr->lo || row >= tr->lo + tr->n_local) continue;
    if (c->n == c->cap) {
      bad = 1;
      break;
    }
    c->pos[c->n] = pos;
    c->rows[c->n] = (int)(row - tr->lo);
    memcpy(c->rec + c->n * w, r + 2, (size_t)w * sizeof(double));
    ++c->n;
  }
  nhgd_free(&all);
  NHGD_CHECK(rc);
  if (bad)
    nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__,
                   "dataset cross_trajectory: a record's position or row is out of range or out "
                   "of order");
  return nhgd_section_agree(sec, bad ? NHGD_ERR_DATA : NHGD_OK);
}
