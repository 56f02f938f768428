/* The run: inner SGD, estimator, hypergradient assembly, outer step, evaluation, progress
 * and the checkpoints that fall due; the solver's public API around it. */
#include "nhgd/solver.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "core/stop.h"
#include "core/util.h"
#include "io/output.h"
#include "outer/engine.h"

/* Collective: evaluate split (val or test) at (theta, v): mean loss, accuracy (NaN for
 * regression) and, if g != NULL, the mean outer gradient in theta (replicated). */
static int evaluate(nhgd_solver *s, const nhgd_split *split, double *loss, double *acc, double *g) {
  const nhgd_problem *pb = s->pb;
  const int64_t d = s->d;
  double *buf = s->buf; /* d gradient entries, loss, correct */
  int64_t correct = 0;
  nhgd_timer_start(&s->timers, NHGD_T_EVAL);
  int rc = pb->ops.eval(pb, split, s->inner.theta, s->v, &buf[d], g ? buf : NULL, &correct);
  nhgd_timer_stop(&s->timers, NHGD_T_EVAL);
  NHGD_CHECK(nhgd_error_agree(s->comm, rc));
  buf[d + 1] = (double)correct;
  nhgd_timer_start(&s->timers, NHGD_T_ALLREDUCE);
  if (g) {
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)d + 2, MPI_DOUBLE, MPI_SUM, s->comm));
  } else {
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + d, 2, MPI_DOUBLE, MPI_SUM, s->comm));
  }
  nhgd_timer_stop(&s->timers, NHGD_T_ALLREDUCE);
  const double n = (double)split->n_global;
  *loss = buf[d] / n;
  if (acc) *acc = pb->is_classifier ? buf[d + 1] / n : NAN;
  if (g)
    for (int64_t j = 0; j < d; ++j)
      g[j] = buf[j] / n;
  return NHGD_OK;
}

int nhgd_outer_val_loss(nhgd_solver *s, double *loss) {
  return evaluate(s, nhgd_outer_val_rows(s, s->k), loss, NULL, NULL);
}

/* Collective: with --val-batch, rec's loss on every validation row (not yet known) into
 * val_loss_full, on the evaluation clock. */
static int full_val_loss(nhgd_solver *s, nhgd_record *rec) {
  if (s->opt->val_batch <= 0 || !isnan(rec->val_loss_full)) return NHGD_OK;
  const double t0 = MPI_Wtime();
  NHGD_CHECK(evaluate(s, &s->data->val, &rec->val_loss_full, NULL, NULL));
  s->eval_time += MPI_Wtime() - t0;
  return NHGD_OK;
}

/* The largest size of u from which J^T u cannot overflow for any sane J. */
#define NHGD_U_MAX 1e150

/* Collective (u is replicated, the verdict too): h = grad_v f - J^T u is not finite. When u
 * is (or is so large that J^T u overflows), the estimator is to blame and says what to
 * change; else v, which the outer steps moved. */
static int hypergradient_not_finite(nhgd_solver *s) {
  double umax = 0.0;
  for (int64_t j = 0; j < s->d; ++j)
    umax = !(fabs(s->u[j]) <= umax) ? fabs(s->u[j]) : umax;
  char advice[300] = "";
  if (!(umax <= NHGD_U_MAX) && s->est->ops->advice)
    s->est->ops->advice(s->est, advice, sizeof advice);
  if (advice[0])
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "the hypergradient at outer step %lld is not finite: the estimate u of estimator "
              "%s is %s (largest entry %g): %s",
              (long long)s->k, s->est->name, isfinite(umax) ? "too large" : "not finite", umax,
              advice);
  return nhgd_outer_hypergrad_diverged(s, umax);
}

/* Inner loop, then u and h = grad_v f - J^T u at the last iterate. Fills rec. */
static int hypergradient(nhgd_solver *s, nhgd_record *rec) {
  const nhgd_problem *pb = s->pb;
  nhgd_inner *in = &s->inner;
  /* After a restart inside an inner loop, continue it where it stopped. */
  int64_t t = s->resume_t;
  s->resume_t = 0;
  if (t == 0) nhgd_cross_begin(s);
  if (t == 0 && s->est->ops->begin) {
    const double *theta0 = s->opt->inner.warm_start ? in->theta : in->theta_init;
    NHGD_CHECK(s->est->ops->begin(s->est, s->k, theta0));
  }
  for (;;) {
    nhgd_inner_event ev;
    int rc = nhgd_inner_run(in, s->k, &s->req, &t, &ev);
    if (rc && in->diverged) return nhgd_outer_inner_diverged(s);
    NHGD_CHECK(rc);
    if (ev == NHGD_INNER_DONE) break;
    if (t >= s->opt->inner.steps) {
      /* The loop is done: the request is met at the boundary after this outer step, whose
       * checkpoint would otherwise have the same position as this one. */
      s->pending_stop |= ev == NHGD_INNER_STOP;
      s->pending_due = 1;
      break;
    }
    NHGD_CHECK(nhgd_outer_write_checkpoint(s, t, 0));
    if (ev == NHGD_INNER_STOP) return NHGD_STOPPED;
  }
  /* grad_theta f on the validation rows of this step: every row, or the --val-batch drawn. */
  const nhgd_split *val = nhgd_outer_val_rows(s, s->k);
  NHGD_CHECK(evaluate(s, val, &rec->val_loss, &rec->val_acc, s->gval));
  rec->val_rows = val->n_global;
  if (val == &s->data->val) rec->val_loss_full = rec->val_loss;
  NHGD_CHECK(nhgd_outer_check_divergence(s, rec->val_loss));
  s->samples += (double)val->n_global;
  NHGD_CHECK(s->est->ops->solve(s->est, in->theta, s->gval, s->u));
  if (s->est->ops->correct) NHGD_CHECK(s->est->ops->correct(s->est, in->theta));
  nhgd_timer_start(&s->timers, NHGD_T_HYPERGRAD);
  int rc = NHGD_OK;
  if (pb->ops.outer_grad_v)
    rc = pb->ops.outer_grad_v(pb, in->theta, s->v, s->h);
  else
    memset(s->h, 0, (size_t)s->p_local * sizeof(double));
  /* J at the last iterate, or at the Polyak average of the inner iterates. */
  const double *theta_j = in->theta;
  if (!rc && in->average && s->opt->inner.steps > 0) {
    for (int64_t j = 0; j < s->d; ++j)
      in->theta_sum[j] /= (double)s->opt->inner.steps;
    theta_j = in->theta_sum;
  }
  if (!rc) rc = nhgd_cross_term(s, theta_j, s->u, s->jt);
  double sq = 0.0;
  if (!rc)
    for (int64_t j = 0; j < s->p_local; ++j) {
      s->h[j] -= s->jt[j];
      sq += s->h[j] * s->h[j];
    }
  nhgd_timer_stop(&s->timers, NHGD_T_HYPERGRAD);
  NHGD_CHECK(nhgd_error_agree(s->comm, rc));
  if (pb->v_per_sample)
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &sq, 1, MPI_DOUBLE, MPI_SUM, s->comm));
  rec->hypergrad_norm = sqrt(sq);
  if (!isfinite(rec->hypergrad_norm)) return hypergradient_not_finite(s);
  rec->inner_loss = in->last_loss;
  s->have_hypergrad = 1;
  return NHGD_OK;
}

static void log_progress(nhgd_solver *s, const nhgd_record *r, int64_t K) {
  double elapsed = r->wall_time;
  double left = s->k > 0 ? elapsed / (double)s->k * (double)(K - s->k) : NAN;
  char acc[64] = "";
  if (!isnan(r->test_acc))
    snprintf(acc, sizeof acc, " test_acc %.4f", r->test_acc);
  else if (!isnan(r->test_loss))
    snprintf(acc, sizeof acc, " test_loss %.6g", r->test_loss);
  nhgd_log(NHGD_LOG_INFO, "outer %lld/%lld val_loss %.6g%s |h| %.3e elapsed %.1fs left %.1fs",
           (long long)s->k, (long long)K, r->val_loss, acc, r->hypergrad_norm, elapsed, left);
  if (s->progress) s->progress(r, s->progress_arg);
}

/* Keep replicated state bit-identical on every rank whatever the MPI reduction order. */
static int sync_replicated(nhgd_solver *s) {
  NHGD_MPI_CHECK(MPI_Bcast(s->inner.theta, (int)s->d, MPI_DOUBLE, 0, s->comm));
  if (!s->pb->v_per_sample) NHGD_MPI_CHECK(MPI_Bcast(s->v, (int)s->p, MPI_DOUBLE, 0, s->comm));
  return NHGD_OK;
}

/* Collective: after outer step k, should a checkpoint be written, and should the run stop?
 * Requests may reach some ranks only: agree. */
static int boundary_requests(nhgd_solver *s, int *stop, int *timed) {
  int flags[2] = {nhgd_stop_requested(),
                  s->rank == 0 && s->opt->checkpoint_seconds > 0 &&
                      MPI_Wtime() - s->req.last_time >= s->opt->checkpoint_seconds};
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, s->comm));
  *stop = flags[0];
  *timed = flags[1];
  return NHGD_OK;
}

/* Collective: the measurements of rec (due: the test split's, if there is one), on the
 * evaluation clock; then its clocks and work counter. */
static int measure(nhgd_solver *s, nhgd_record *rec, int due) {
  if (due && s->data->has_test) {
    const double t0 = MPI_Wtime();
    NHGD_CHECK(evaluate(s, &s->data->test, &rec->test_loss, &rec->test_acc, NULL));
    s->eval_time += MPI_Wtime() - t0;
  }
  rec->solver_time = s->solver_time;
  rec->eval_time = s->eval_time;
  rec->wall_time = MPI_Wtime() - s->t_start;
  rec->samples = s->samples;
  return NHGD_OK;
}

/* Collective: the outer step from the hypergradient of rec, the evaluations, the record, and
 * the checkpoint or stop that falls due after it. */
static int end_outer_step(nhgd_solver *s, nhgd_record *rec) {
  const nhgd_solver_opts *o = s->opt;
  const int64_t K = o->outer_steps;
  const int due = o->eval_every > 0 && ((s->k + 1) % o->eval_every == 0 || s->k + 1 == K);
  /* The full validation loss where the sampled one was taken, before v moves; always at the
   * first step, the divergence check's reference (docs/algorithm.md 1). */
  if (due || s->k == 0) NHGD_CHECK(full_val_loss(s, rec));
  nhgd_outer_clock_start(s);
  nhgd_outer_keep_prev(s);
  nhgd_outer_step(o, s->outer_lr, s->k, s->p_local, s->adam_m, s->adam_s, s->v, s->h);
  NHGD_CHECK(sync_replicated(s));
  nhgd_outer_clock_stop(s);
  ++s->k;
  s->prev_first_loss = s->inner.first_loss;
  NHGD_CHECK(measure(s, rec, due));
  NHGD_CHECK(nhgd_history_push(&s->hist, rec));
  log_progress(s, rec, K);
  nhgd_outer_take_snapshot(s, 1);
  if (!s->ckpt) return NHGD_OK;
  int stop = 0, timed = 0;
  NHGD_CHECK(boundary_requests(s, &stop, &timed));
  stop |= o->halt_after > 0 && s->inner.steps_run >= o->halt_after;
  stop |= s->pending_stop;
  timed |= s->pending_due;
  s->pending_stop = s->pending_due = 0;
  if (stop || timed || s->k == K || (o->checkpoint_every > 0 && s->k % o->checkpoint_every == 0))
    NHGD_CHECK(nhgd_outer_write_checkpoint(s, 0, s->k == K));
  return stop && s->k < K ? NHGD_STOPPED : NHGD_OK;
}

int nhgd_solver_run(nhgd_solver *s) {
  const int64_t K = s->opt->outer_steps;
  nhgd_log(NHGD_LOG_INFO, "run: problem %s, estimator %s, d = %lld, p = %lld, %d ranks",
           s->pb->name, s->est->name, (long long)s->d, (long long)s->p, s->size);
  if (s->resumed && s->k >= K) {
    nhgd_log(NHGD_LOG_INFO, "run already complete: %lld of %lld outer steps done", (long long)s->k,
             (long long)K);
    return NHGD_OK;
  }
  /* A fresh start, or a restart between outer steps from a checkpoint without a rollback
   * state: the rollback state is the state now. */
  if (!s->snap.valid && s->resume_t == 0) nhgd_outer_take_snapshot(s, 0);
  while (s->k < K) {
    nhgd_record rec = {.step = s->k, .test_loss = NAN, .test_acc = NAN, .val_loss_full = NAN};
    s->diverged = 0;
    nhgd_outer_clock_start(s);
    int rc = hypergradient(s, &rec), redo = 0;
    nhgd_outer_clock_stop(s);
    if (rc == NHGD_STOPPED) return NHGD_STOPPED;
    if (rc && s->diverged) {
      NHGD_CHECK(nhgd_outer_roll_back(s, rc, &rec, &redo));
      if (!redo) continue;
    } else
      NHGD_CHECK(rc);
    rc = end_outer_step(s, &rec);
    if (rc == NHGD_STOPPED) return NHGD_STOPPED;
    NHGD_CHECK(rc);
  }
  return NHGD_OK;
}

int nhgd_solver_hypergrad(nhgd_solver *s) {
  nhgd_record rec = {.step = s->k, .test_loss = NAN, .test_acc = NAN, .val_loss_full = NAN};
  nhgd_outer_clock_start(s);
  const int rc = hypergradient(s, &rec);
  nhgd_outer_clock_stop(s);
  NHGD_CHECK(rc);
  NHGD_CHECK(full_val_loss(s, &rec));
  NHGD_CHECK(measure(s, &rec, 1));
  NHGD_CHECK(nhgd_history_push(&s->hist, &rec));
  nhgd_log(NHGD_LOG_INFO, "hypergradient at v: |h| = %.6e, |u| computed by %s, val_loss %.6g",
           rec.hypergrad_norm, s->est->name, rec.val_loss);
  return NHGD_OK;
}

int nhgd_solver_write(nhgd_solver *s, const char *path) {
  nhgd_output_view view = {
      .comm = s->comm,
      .rank = s->rank,
      .size = s->size,
      .problem = s->pb->name,
      .estimator = s->est->name,
      .outer_steps_done = s->k,
      .bytes_per_step = s->comm_steps ? s->comm_bytes / (double)s->comm_steps : 0.0,
      .d = s->d,
      .p = s->p,
      .v_offset = nhgd_outer_v_offset(s),
      .v_count = nhgd_outer_v_count(s),
      .theta = s->inner.theta,
      .v = s->v,
      .h = s->h,
      .u = s->u,
      .have_hypergrad = s->have_hypergrad,
      .options = s->options,
      .history = &s->hist,
      .timers = &s->timers,
  };
  nhgd_timer_start(&s->timers, NHGD_T_IO);
  int rc = nhgd_output_write(&view, path);
  nhgd_timer_stop(&s->timers, NHGD_T_IO);
  return rc;
}

int nhgd_solver_timing(nhgd_solver *s, int *n, const char **names, double *mn, double *avg,
                       double *mx) {
  *n = NHGD_T_COUNT;
  if (!names) return NHGD_OK;
  for (int i = 0; i < NHGD_T_COUNT; ++i)
    names[i] = nhgd_stage_name(i);
  return nhgd_timers_reduce(&s->timers, s->comm, mn, avg, mx);
}

int nhgd_solver_report(nhgd_solver *s) {
  double mn[NHGD_T_COUNT], avg[NHGD_T_COUNT], mx[NHGD_T_COUNT];
  NHGD_CHECK(nhgd_timers_reduce(&s->timers, s->comm, mn, avg, mx));
  nhgd_log(NHGD_LOG_INFO, "timing (seconds over %d ranks): %-11s %10s %10s %10s", s->size, "stage",
           "min", "avg", "max");
  for (int i = 0; i < NHGD_T_COUNT; ++i)
    nhgd_log(NHGD_LOG_INFO, "timing: %-11s %10.3f %10.3f %10.3f", nhgd_stage_name(i), mn[i], avg[i],
             mx[i]);
  nhgd_log(NHGD_LOG_INFO, "timing: %-11s %10.3f", "total", MPI_Wtime() - s->t_start);
  return NHGD_OK;
}

int nhgd_solver_resumed(const nhgd_solver *s) {
  return s->resumed;
}

int64_t nhgd_solver_outer_steps_done(const nhgd_solver *s) {
  return s->k;
}

void nhgd_solver_set_progress(nhgd_solver *s, nhgd_progress_fn fn, void *arg) {
  s->progress = fn;
  s->progress_arg = arg;
}

void nhgd_solver_set_rollback(nhgd_solver *s, nhgd_rollback_fn fn, void *arg) {
  s->rollback = fn;
  s->rollback_arg = arg;
}

const double *nhgd_solver_theta(const nhgd_solver *s) {
  return s->inner.theta;
}
const double *nhgd_solver_v(const nhgd_solver *s) {
  return s->v;
}
const double *nhgd_solver_u(const nhgd_solver *s) {
  return s->u;
}
const double *nhgd_solver_hypergradient(const nhgd_solver *s) {
  return s->h;
}
int64_t nhgd_solver_v_local(const nhgd_solver *s) {
  return s->p_local;
}
double nhgd_solver_val_loss(const nhgd_solver *s) {
  return s->hist.len ? s->hist.rec[s->hist.len - 1].val_loss : NAN;
}
double nhgd_solver_test_accuracy(const nhgd_solver *s) {
  return s->hist.len ? s->hist.rec[s->hist.len - 1].test_acc : NAN;
}
