/* The outer loop: inner SGD, estimator, hypergradient assembly, outer step, progress. */
#include "nhgd/solver.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "core/signals.h"
#include "core/util.h"
#include "io/checkpoint.h"
#include "io/output.h"
#include "outer/engine.h"

struct nhgd_solver {
  nhgd_engine e;
};

int nhgd_engine_grid(nhgd_engine *e, nhgd_grid **g) {
  if (!e->grid) NHGD_CHECK(nhgd_grid_create(e->comm, e->opt.grid_rows, &e->grid));
  *g = e->grid;
  return NHGD_OK;
}

int nhgd_engine_eval(nhgd_engine *e, const nhgd_split *split, double *loss, double *acc,
                     double *g) {
  const nhgd_problem *pb = e->pb;
  const int64_t d = e->d;
  double *buf = e->scratch; /* d gradient entries, loss, correct */
  int64_t correct = 0;
  nhgd_timer_start(&e->timers, NHGD_T_EVAL);
  int rc = pb->eval(pb, split, e->theta, e->v, &buf[d], g ? buf : NULL, &correct);
  nhgd_timer_stop(&e->timers, NHGD_T_EVAL);
  NHGD_CHECK(nhgd_error_agree(e->comm, rc));
  buf[d + 1] = (double)correct;
  nhgd_timer_start(&e->timers, NHGD_T_ALLREDUCE);
  if (g) {
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)d + 2, MPI_DOUBLE, MPI_SUM, e->comm));
  } else {
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + d, 2, MPI_DOUBLE, MPI_SUM, e->comm));
  }
  nhgd_timer_stop(&e->timers, NHGD_T_ALLREDUCE);
  const double n = (double)split->n_global;
  *loss = buf[d] / n;
  if (acc) *acc = pb->is_classifier ? buf[d + 1] / n : NAN;
  if (g)
    for (int64_t j = 0; j < d; ++j)
      g[j] = buf[j] / n;
  return NHGD_OK;
}

/* Read /v of an earlier output (or any file with a 1-D /v of p entries) on rank 0 and hand
 * every rank its entries. */
static int load_v(nhgd_engine *e, const char *path) {
  double *all = NULL;
  int rc = NHGD_OK;
  NHGD_CHECK(nhgd_calloc(&all, (size_t)e->p, sizeof(double), "v from file"));
  if (e->rank == 0) rc = nhgd_h5_read_vector(path, "/v", e->p, all);
  rc = nhgd_error_agree(e->comm, rc);
  if (!rc && MPI_Bcast(all, (int)e->p, MPI_DOUBLE, 0, e->comm) != MPI_SUCCESS)
    rc = nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__, "MPI_Bcast of v failed");
  if (!rc) {
    int64_t off = e->pb->v_per_sample ? e->data->train.lo : 0;
    memcpy(e->v, all + off, (size_t)e->p_local * sizeof(double));
  }
  nhgd_free(&all);
  return rc;
}

static int engine_alloc(nhgd_engine *e) {
  const size_t d = (size_t)e->d, pl = (size_t)(e->p_local > 0 ? e->p_local : 1);
  int64_t nrows = e->opt.batch > e->data->train.n_local ? e->opt.batch : e->data->train.n_local;
  NHGD_CHECK(nhgd_calloc(&e->theta, d, sizeof(double), "theta"));
  NHGD_CHECK(nhgd_calloc(&e->theta_init, d, sizeof(double), "initial theta"));
  NHGD_CHECK(nhgd_calloc(&e->u, d, sizeof(double), "u"));
  NHGD_CHECK(nhgd_calloc(&e->gval, d, sizeof(double), "validation gradient"));
  NHGD_CHECK(nhgd_calloc(&e->theta_sum, d, sizeof(double), "sum of inner iterates"));
  NHGD_CHECK(nhgd_calloc(&e->scratch, d + 4, sizeof(double), "scratch"));
  NHGD_CHECK(nhgd_calloc(&e->v, pl, sizeof(double), "v"));
  NHGD_CHECK(nhgd_calloc(&e->h, pl, sizeof(double), "hypergradient"));
  NHGD_CHECK(nhgd_calloc(&e->jt, pl, sizeof(double), "cross term J^T u"));
  NHGD_CHECK(nhgd_calloc(&e->adam_m, pl, sizeof(double), "Adam first moment"));
  NHGD_CHECK(nhgd_calloc(&e->adam_s, pl, sizeof(double), "Adam second moment"));
  NHGD_CHECK(nhgd_calloc(&e->rows, (size_t)nrows, sizeof(int), "batch rows"));
  return NHGD_OK;
}

int nhgd_solver_create(MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                       nhgd_problem *pb, nhgd_solver **out) {
  *out = NULL;
  NHGD_CHECK(nhgd_options_validate(o));
  nhgd_log_init(comm, o->log_level);
  nhgd_solver *s;
  int rc = nhgd_calloc(&s, 1, sizeof *s, "solver");
  NHGD_CHECK(nhgd_error_agree(comm, rc));
  nhgd_engine *e = &s->e;
  e->comm = data->comm;
  e->rank = data->rank;
  e->size = data->size;
  e->opt = *o;
  e->data = data;
  e->pb = pb;
  e->d = pb->d;
  e->p = pb->p;
  e->p_local = pb->v_per_sample ? data->train.n_local : pb->p;
  e->t_start = MPI_Wtime();
  if (pb->v_per_sample && pb->p != data->train.n_global)
    rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                        "problem %s: per-sample v needs p = %lld training rows, has %lld", pb->name,
                        (long long)data->train.n_global, (long long)pb->p);
  if (!rc && (e->d > (int64_t)1 << 30 || e->p > (int64_t)1 << 30))
    rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__, "problem too large: d = %lld, p = %lld",
                        (long long)e->d, (long long)e->p);
  if (!rc) rc = engine_alloc(e);
  if (!rc) rc = pb->init(pb, e->theta, e->v);
  NHGD_TRY(rc, nhgd_error_agree(e->comm, rc), fail);
  memcpy(e->theta_init, e->theta, (size_t)e->d * sizeof(double));
  if (o->v_from[0]) NHGD_TRY(rc, load_v(e, o->v_from), fail);
  char ckpt[4200] = "";
  if (o->checkpoint_dir[0]) {
    NHGD_TRY(rc, nhgd_checkpoint_prepare(e), fail);
    NHGD_TRY(rc, nhgd_checkpoint_find(e, ckpt, sizeof ckpt), fail);
    if (ckpt[0] && !strcmp(o->efim_route, "auto")) {
      /* Continue on the route the checkpoint's running state belongs to. */
      char route[sizeof e->opt.efim_route];
      NHGD_TRY(rc, nhgd_checkpoint_peek(e, ckpt, "route", route, sizeof route), fail);
      if (route[0]) snprintf(e->opt.efim_route, sizeof e->opt.efim_route, "%s", route);
    }
    nhgd_signals_install();
  }
  NHGD_TRY(rc, nhgd_estimator_create(e, &e->est), fail);
  if (ckpt[0]) NHGD_TRY(rc, nhgd_checkpoint_load(e, ckpt), fail);
  e->last_ckpt_time = MPI_Wtime();
  if (o->metrics[0] && e->rank == 0) {
    e->metrics = fopen(o->metrics, e->resumed ? "a" : "w");
    if (!e->metrics)
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "metrics file %s: cannot open (%s)",
                          o->metrics, strerror(errno));
  }
  NHGD_TRY(rc, nhgd_error_agree(e->comm, rc), fail);
  *out = s;
  return NHGD_OK;
fail:
  nhgd_solver_destroy(&s);
  return rc;
}

int nhgd_engine_push_record(nhgd_engine *e, const nhgd_record *r) {
  if (e->hist_len == e->hist_cap) {
    int64_t cap = e->hist_cap ? 2 * e->hist_cap : 64;
    nhgd_record *n;
    NHGD_CHECK(nhgd_calloc(&n, (size_t)cap, sizeof *n, "history"));
    if (e->hist_len) memcpy(n, e->hist, (size_t)e->hist_len * sizeof *n);
    nhgd_free(&e->hist);
    e->hist = n;
    e->hist_cap = cap;
  }
  e->hist[e->hist_len++] = *r;
  return NHGD_OK;
}

/* Inner loop, then u and h = grad_v f - J^T u at the last iterate. Fills rec. */
static int hypergradient(nhgd_engine *e, nhgd_record *rec) {
  const nhgd_problem *pb = e->pb;
  /* After a restart inside an inner loop, continue it where it stopped. */
  const int64_t t0 = e->resume_t;
  e->resume_t = 0;
  if (t0 == 0 && e->est->begin) NHGD_CHECK(e->est->begin(e->est, e, e->k));
  int rc_inner = nhgd_inner_loop(e, e->k, t0);
  if (rc_inner == NHGD_STOPPED) return NHGD_STOPPED;
  NHGD_CHECK(rc_inner);
  NHGD_CHECK(nhgd_engine_eval(e, &e->data->val, &rec->val_loss, &rec->val_acc, e->gval));
  e->samples += (double)e->data->val.n_global;
  NHGD_CHECK(e->est->solve(e->est, e, e->theta, e->gval, e->u));
  nhgd_timer_start(&e->timers, NHGD_T_HYPERGRAD);
  int rc = NHGD_OK;
  if (pb->outer_grad_v)
    rc = pb->outer_grad_v(pb, e->theta, e->v, e->h);
  else
    memset(e->h, 0, (size_t)e->p_local * sizeof(double));
  /* J at the last iterate, or at the Polyak average of the inner iterates. */
  const double *theta_j = e->theta;
  if (!rc && !strcmp(e->opt.cross_mode, "average") && e->opt.inner_steps > 0) {
    for (int64_t j = 0; j < e->d; ++j)
      e->theta_sum[j] /= (double)e->opt.inner_steps;
    theta_j = e->theta_sum;
  }
  if (!rc) rc = pb->cross(pb, theta_j, e->v, e->u, e->jt);
  double sq = 0.0;
  if (!rc)
    for (int64_t j = 0; j < e->p_local; ++j) {
      e->h[j] -= e->jt[j];
      sq += e->h[j] * e->h[j];
    }
  nhgd_timer_stop(&e->timers, NHGD_T_HYPERGRAD);
  NHGD_CHECK(nhgd_error_agree(e->comm, rc));
  if (pb->v_per_sample)
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &sq, 1, MPI_DOUBLE, MPI_SUM, e->comm));
  rec->hypergrad_norm = sqrt(sq);
  if (!isfinite(rec->hypergrad_norm))
    NHGD_FAIL(NHGD_ERR_NUMERIC, "the hypergradient at outer step %lld is not finite",
              (long long)e->k);
  rec->inner_loss = e->last_inner_loss;
  e->have_hypergrad = 1;
  return NHGD_OK;
}

static void log_progress(nhgd_engine *e, const nhgd_record *r, int64_t K) {
  double elapsed = r->wall_time;
  double left = e->k > 0 ? elapsed / (double)e->k * (double)(K - e->k) : NAN;
  char acc[64] = "";
  if (!isnan(r->test_acc))
    snprintf(acc, sizeof acc, " test_acc %.4f", r->test_acc);
  else if (!isnan(r->test_loss))
    snprintf(acc, sizeof acc, " test_loss %.6g", r->test_loss);
  nhgd_log(NHGD_LOG_INFO, "outer %lld/%lld val_loss %.6g%s |h| %.3e elapsed %.1fs left %.1fs",
           (long long)e->k, (long long)K, r->val_loss, acc, r->hypergrad_norm, elapsed, left);
  if (e->metrics) {
    fprintf(e->metrics,
            "{\"outer_step\": %lld, \"val_loss\": %.17g, \"val_acc\": %.17g, \"test_loss\": "
            "%.17g, \"test_acc\": %.17g, \"inner_loss\": %.17g, \"hypergrad_norm\": %.17g, "
            "\"wall_time\": %.6f, \"samples\": %.17g}\n",
            (long long)r->step, r->val_loss, r->val_acc, r->test_loss, r->test_acc, r->inner_loss,
            r->hypergrad_norm, r->wall_time, r->samples);
    fflush(e->metrics);
  }
}

/* Keep replicated state bit-identical on every rank whatever the MPI reduction order. */
static int sync_replicated(nhgd_engine *e) {
  NHGD_MPI_CHECK(MPI_Bcast(e->theta, (int)e->d, MPI_DOUBLE, 0, e->comm));
  if (!e->pb->v_per_sample) NHGD_MPI_CHECK(MPI_Bcast(e->v, (int)e->p, MPI_DOUBLE, 0, e->comm));
  return NHGD_OK;
}

/* Collective: after outer step k, should a checkpoint be written, and should the run stop?
 * Signals may reach some ranks only: agree. */
static int boundary_requests(nhgd_engine *e, int *stop, int *timed) {
  int flags[2] = {nhgd_signal_count() > 0,
                  e->rank == 0 && e->opt.checkpoint_seconds > 0 &&
                      MPI_Wtime() - e->last_ckpt_time >= e->opt.checkpoint_seconds};
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, e->comm));
  *stop = flags[0];
  *timed = flags[1];
  return NHGD_OK;
}

int nhgd_solver_run(nhgd_solver *s) {
  nhgd_engine *e = &s->e;
  const int64_t K = e->opt.outer_steps;
  const int ckpt = e->opt.checkpoint_dir[0] != '\0';
  nhgd_log(NHGD_LOG_INFO, "run: problem %s, estimator %s, d = %lld, p = %lld, %d ranks",
           e->pb->name, e->est->name, (long long)e->d, (long long)e->p, e->size);
  if (e->resumed && e->k >= K) {
    nhgd_log(NHGD_LOG_INFO, "run already complete: %lld of %lld outer steps done", (long long)e->k,
             (long long)K);
    return NHGD_OK;
  }
  while (e->k < K) {
    nhgd_record rec = {.step = e->k, .test_loss = NAN, .test_acc = NAN};
    int rc = hypergradient(e, &rec);
    if (rc == NHGD_STOPPED) return NHGD_STOPPED;
    NHGD_CHECK(rc);
    nhgd_outer_step(e, e->h);
    NHGD_CHECK(sync_replicated(e));
    ++e->k;
    if (e->data->has_test && e->opt.eval_every > 0 && (e->k % e->opt.eval_every == 0 || e->k == K))
      NHGD_CHECK(nhgd_engine_eval(e, &e->data->test, &rec.test_loss, &rec.test_acc, NULL));
    rec.wall_time = MPI_Wtime() - e->t_start;
    rec.samples = e->samples;
    NHGD_CHECK(nhgd_engine_push_record(e, &rec));
    log_progress(e, &rec, K);
    if (!ckpt) continue;
    int stop = 0, timed = 0;
    NHGD_CHECK(boundary_requests(e, &stop, &timed));
    stop |= e->opt.halt_after > 0 && e->steps_run >= e->opt.halt_after;
    if (stop || timed || e->k == K ||
        (e->opt.checkpoint_every > 0 && e->k % e->opt.checkpoint_every == 0))
      NHGD_CHECK(nhgd_checkpoint_write(e, 0, e->k == K));
    if (stop && e->k < K) return NHGD_STOPPED;
  }
  return NHGD_OK;
}

int nhgd_solver_hypergrad(nhgd_solver *s) {
  nhgd_engine *e = &s->e;
  nhgd_record rec = {.step = e->k, .test_loss = NAN, .test_acc = NAN};
  NHGD_CHECK(hypergradient(e, &rec));
  if (e->data->has_test)
    NHGD_CHECK(nhgd_engine_eval(e, &e->data->test, &rec.test_loss, &rec.test_acc, NULL));
  rec.wall_time = MPI_Wtime() - e->t_start;
  rec.samples = e->samples;
  NHGD_CHECK(nhgd_engine_push_record(e, &rec));
  nhgd_log(NHGD_LOG_INFO, "hypergradient at v: |h| = %.6e, |u| computed by %s, val_loss %.6g",
           rec.hypergrad_norm, e->est->name, rec.val_loss);
  return NHGD_OK;
}

int nhgd_solver_write(nhgd_solver *s, const char *path) {
  nhgd_engine *e = &s->e;
  nhgd_timer_start(&e->timers, NHGD_T_IO);
  int rc = nhgd_output_write(e, path);
  nhgd_timer_stop(&e->timers, NHGD_T_IO);
  return rc;
}

int nhgd_solver_report(nhgd_solver *s) {
  nhgd_engine *e = &s->e;
  double mn[NHGD_T_COUNT], avg[NHGD_T_COUNT], mx[NHGD_T_COUNT];
  NHGD_CHECK(nhgd_timers_reduce(&e->timers, e->comm, mn, avg, mx));
  nhgd_log(NHGD_LOG_INFO, "timing (seconds over %d ranks): %-11s %10s %10s %10s", e->size, "stage",
           "min", "avg", "max");
  for (int i = 0; i < NHGD_T_COUNT; ++i)
    nhgd_log(NHGD_LOG_INFO, "timing: %-11s %10.3f %10.3f %10.3f", nhgd_stage_name(i), mn[i], avg[i],
             mx[i]);
  nhgd_log(NHGD_LOG_INFO, "timing: %-11s %10.3f", "total", MPI_Wtime() - e->t_start);
  if (e->metrics) {
    fprintf(e->metrics, "{\"timing\": {");
    for (int i = 0; i < NHGD_T_COUNT; ++i)
      fprintf(e->metrics, "%s\"%s\": [%.6f, %.6f, %.6f]", i ? ", " : "", nhgd_stage_name(i), mn[i],
              avg[i], mx[i]);
    fprintf(e->metrics, "}, \"ranks\": %d}\n", e->size);
    fflush(e->metrics);
  }
  return NHGD_OK;
}

const double *nhgd_solver_theta(const nhgd_solver *s) {
  return s->e.theta;
}
const double *nhgd_solver_v(const nhgd_solver *s) {
  return s->e.v;
}
const double *nhgd_solver_u(const nhgd_solver *s) {
  return s->e.u;
}
const double *nhgd_solver_hypergradient(const nhgd_solver *s) {
  return s->e.h;
}
int64_t nhgd_solver_v_local(const nhgd_solver *s) {
  return s->e.p_local;
}
double nhgd_solver_val_loss(const nhgd_solver *s) {
  return s->e.hist_len ? s->e.hist[s->e.hist_len - 1].val_loss : NAN;
}
double nhgd_solver_test_accuracy(const nhgd_solver *s) {
  return s->e.hist_len ? s->e.hist[s->e.hist_len - 1].test_acc : NAN;
}

void nhgd_solver_destroy(nhgd_solver **ps) {
  if (!ps || !*ps) return;
  nhgd_engine *e = &(*ps)->e;
  nhgd_estimator_destroy(&e->est);
  nhgd_grid_destroy(&e->grid);
  if (e->metrics) fclose(e->metrics);
  nhgd_free(&e->theta);
  nhgd_free(&e->theta_init);
  nhgd_free(&e->u);
  nhgd_free(&e->gval);
  nhgd_free(&e->theta_sum);
  nhgd_free(&e->scratch);
  nhgd_free(&e->v);
  nhgd_free(&e->h);
  nhgd_free(&e->jt);
  nhgd_free(&e->adam_m);
  nhgd_free(&e->adam_s);
  nhgd_free(&e->rows);
  nhgd_free(&e->hist);
  nhgd_free(ps);
}
