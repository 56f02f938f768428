/* Divergence and --on-divergence halve: which step size a divergence is put down to, the
 * rollback state kept at each outer boundary, and the rollback to it with that step size
 * halved. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "outer/engine.h"

/* What to change when the inner objective is not finite at the starting point: the initial
 * v, from --v-init or --v-from. */
static void start_advice(nhgd_solver *s) {
  double v_init = 0.0;
  nhgd_options_get_real(s->options, "v-init", &v_init);
  if (s->opt->v_from[0])
    snprintf(s->blame_why, sizeof s->blame_why,
             "the gradient of the inner objective at the starting point (the initial theta, v "
             "from --v-from %.60s) is not finite, which no step size changes: that v is out of "
             "range for problem %s",
             s->opt->v_from, s->pb->name);
  else
    snprintf(s->blame_why, sizeof s->blame_why,
             "the gradient of the inner objective at the starting point (the initial theta, "
             "every entry of v = --v-init %g) is not finite, which no step size changes: lower "
             "the size of --v-init (problem %s)",
             v_init, s->pb->name);
}

/* The value a validation loss is held against: the validation loss at the first outer step,
 * on every row (with --val-batch the full one measured there, not the sampled one, whose
 * noise would move the bound; docs/algorithm.md 1). loss is the first one itself. */
static double start_loss(const nhgd_solver *s, double loss) {
  if (!s->hist.len) return loss;
  const nhgd_record *r = &s->hist.rec[0];
  return isfinite(r->val_loss_full) ? r->val_loss_full : r->val_loss;
}

/* Is x not finite or, with a factor f > 0, above f times the finite start? */
static int out_of_bounds(double x, double start, double f) {
  return !isfinite(x) || (f > 0 && isfinite(start) && fabs(x) > f * fabs(start));
}

/* Collective: the experiment that tells the step sizes apart. The inner loop of outer step k
 * is run once more from the rollback state, but with v as given (v as it was before outer step
 * k - 1 moved it, or the v the run started from). If that diverges too, the inner step size
 * is to blame whatever v does; if not, the updates of v are. Nothing of it stays: no
 * observer, no checkpoint request, the work counter and step counts put back (a rollback that
 * follows restores theta, v and the rest; without one the run stops). *diverges is the
 * verdict, *loss the validation loss reached. */
static int trial_with_v(nhgd_solver *s, const double *v, int *diverges, double *loss) {
  nhgd_inner *in = &s->inner;
  const rollback_state *b = &s->snap;
  const double samples = s->samples, first = in->first_loss, last = in->last_loss;
  const int64_t steps_run = in->steps_run;
  const nhgd_inner_observer observe = in->observe;
  const nhgd_inner_requests none = {0};
  memcpy(in->theta, b->theta, (size_t)s->d * sizeof(double));
  memcpy(s->v, v, (size_t)s->p_local * sizeof(double));
  in->observe = NULL;
  int64_t t = 0;
  nhgd_inner_event ev;
  int rc = nhgd_inner_run(in, s->k, &none, &t, &ev);
  *loss = NAN;
  if (rc && in->diverged) {
    nhgd_error_clear();
    rc = NHGD_OK;
    *diverges = 1;
  } else if (!rc) {
    rc = nhgd_outer_val_loss(s, loss);
    *diverges = out_of_bounds(*loss, start_loss(s, *loss), s->opt->divergence_factor);
  }
  in->observe = observe;
  in->steps_run = steps_run;
  in->first_loss = first;
  in->last_loss = last;
  in->diverged = 0;
  s->samples = samples;
  return rc;
}

/* Halvings of the inner step size an experiment tries at most: those a rollback has left
 * with halve (without it, as a user who halves it a few times would), up to a factor 1e6,
 * below which the inner loop would hardly learn. */
static int halvings_left(const nhgd_solver *s) {
  const int left = s->halve ? s->opt->divergence_retries - (int)s->hist.nrb : 10;
  return left < 1 ? 1 : left > 20 ? 20 : left;
}

/* Collective: the experiments of find_blame, each a remedy tried from the state at the start
 * of outer step k. First v as before outer step k - 1 (a rollback of that update with the
 * outer step size halved tends to it): if the inner loop runs well, the outer step size is to
 * blame. Else the inner step size as many halvings lower as a rollback could make it: if the
 * loop then runs well, it is to blame. Else (k > 1) the v the run started from: if the loop
 * runs well with it, the outer steps before k - 1 moved v too far already, which no rollback
 * undoes (logreg with sgd and --outer-lr 1e6: v's regularisation weights grew by e^38, and
 * --inner-lr was halved to 2e-11 in vain): the run must start again with a lower --outer-lr.
 * Else the inner step size, the one left. */
static int experiment(nhgd_solver *s) {
  const int64_t k = s->k;
  const rollback_state *b = &s->snap;
  int d_prev = 0, d_small = 1, d_start = 1; /* the verdicts: diverges */
  double loss = NAN, loss_small = NAN, loss0 = NAN;
  const double lr = s->inner_opt.lr, lr_small = ldexp(lr, -halvings_left(s));
  NHGD_CHECK(trial_with_v(s, b->vp, &d_prev, &loss));
  if (d_prev && k > 1) {
    s->inner_opt.lr = lr_small;
    const int rc = trial_with_v(s, b->v, &d_small, &loss_small);
    s->inner_opt.lr = lr;
    NHGD_CHECK(rc);
    if (d_small) NHGD_CHECK(trial_with_v(s, b->v0, &d_start, &loss0));
  }
  s->blame_drift = d_prev && d_small && !d_start;
  s->blame = d_prev && !s->blame_drift ? NHGD_LR_INNER : NHGD_LR_OUTER;
  if (!d_prev || k == 1)
    snprintf(s->blame_why, sizeof s->blame_why,
             "with v as before outer step %lld the inner loop of outer step %lld %s (validation "
             "loss %g)",
             (long long)(k - 1), (long long)k, d_prev ? "diverges too" : "runs well", loss);
  else if (!d_small)
    snprintf(s->blame_why, sizeof s->blame_why,
             "with v as before outer step %lld the inner loop of outer step %lld diverges too, "
             "with --inner-lr %g it runs well (validation loss %g)",
             (long long)(k - 1), (long long)k, lr_small, loss_small);
  else
    snprintf(s->blame_why, sizeof s->blame_why,
             "the inner loop of outer step %lld diverges with v as before outer step %lld and "
             "with --inner-lr %g, %s with the v the run started from (validation loss %g)%s",
             (long long)k, (long long)(k - 1), lr_small, d_start ? "and" : "but runs well", loss0,
             d_start ? "" : ": the outer steps before moved v too far, which no rollback undoes");
  return NHGD_OK;
}

/* Collective: the step size a divergence at outer step k is put down to, and why (in
 * s->blame_why). The outer one when v is no longer finite. With the state from before the
 * last outer step kept (either --on-divergence), experiments decide (experiment). Else, after
 * a restart inside an outer step without --on-divergence halve, the outer one when the inner
 * loop of step k - 1 ran well (its loss at the last step at most twice that at the first), so
 * that what changed is v; the inner one otherwise, and whenever no outer step can be undone
 * (k = 0, --outer-lr 0, with halve no state from before the last outer step). */
static int find_blame(nhgd_solver *s) {
  int v_bad = 0;
  for (int64_t j = 0; j < s->p_local; ++j)
    v_bad |= !isfinite(s->v[j]);
  if (s->pb->v_per_sample)
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &v_bad, 1, MPI_INT, MPI_MAX, s->comm));
  const int64_t k = s->k;
  const double last = k > 0 && s->hist.len >= k ? s->hist.rec[k - 1].inner_loss : NAN;
  const double first = s->prev_first_loss;
  const int grew = !(fabs(last) <= 2.0 * fabs(first));
  const int can_outer = k > 0 && s->outer_lr > 0 && (!s->halve || s->snap.has_prev);
  s->blame = can_outer && (v_bad || !grew) ? NHGD_LR_OUTER : NHGD_LR_INNER;
  s->diverged = 1;
  s->blame_drift = 0;
  /* The very first gradient, at the initial theta and v, not finite: no step has been taken,
   * so no step size is to blame; the data being checked at load, v is. */
  s->blame_start = k == 0 && s->inner.diverged == 1 && s->inner.bad_gradient;
  if (s->blame_start)
    start_advice(s);
  else if (k == 0)
    snprintf(s->blame_why, sizeof s->blame_why, "before any outer step");
  else if (v_bad)
    snprintf(s->blame_why, sizeof s->blame_why, "v is not finite");
  else if (can_outer && s->snap.valid && s->snap.has_prev && s->snap.k == k)
    NHGD_CHECK(experiment(s));
  else
    snprintf(s->blame_why, sizeof s->blame_why,
             "the inner loss of outer step %lld went from %g to %g", (long long)(k - 1), first,
             last);
  return NHGD_OK;
}

/* What to change: the step size blamed, and its value in use. */
static void advice(const nhgd_solver *s, char *buf, size_t len) {
  const double lr = s->blame == NHGD_LR_OUTER ? s->outer_lr : s->inner_opt.lr;
  snprintf(buf, len, "lower --%s (now %g)%s", nhgd_lr_name(s->blame), lr,
           s->blame_drift ? " and start the run again" : "");
}

int nhgd_outer_check_divergence(nhgd_solver *s, double loss) {
  const double start = start_loss(s, loss);
  const double f = s->opt->divergence_factor;
  if (!out_of_bounds(loss, start, f)) return NHGD_OK;
  NHGD_CHECK(find_blame(s));
  char rows[64] = "", fix[128];
  if (s->opt->val_batch > 0)
    snprintf(rows, sizeof rows, " on the %lld rows drawn (--val-batch)",
             (long long)s->opt->val_batch);
  advice(s, fix, sizeof fix);
  NHGD_FAIL(NHGD_ERR_NUMERIC,
            "diverged at outer step %lld, inner step %lld: the validation loss%s is %g (%g at the "
            "start%s, --divergence-factor %g); %s: %s; the last checkpoint is kept",
            (long long)s->k, (long long)s->opt->inner.steps, rows, loss, start,
            rows[0] && s->hist.len && start == s->hist.rec[0].val_loss_full ? " on every row" : "",
            f, s->blame_why, fix);
}

int nhgd_outer_inner_diverged(nhgd_solver *s) {
  /* Taken first: find_blame's experiment runs the inner loop again and resets it. */
  const long long at = (long long)(s->inner.diverged - 1);
  NHGD_CHECK(find_blame(s));
  nhgd_error_clear();
  if (s->blame_start)
    NHGD_FAIL(NHGD_ERR_NUMERIC,
              "inner SGD diverged at outer step %lld, inner step %lld (theta is not finite): %s",
              (long long)s->k, at, s->blame_why);
  char fix[128];
  advice(s, fix, sizeof fix);
  NHGD_FAIL(NHGD_ERR_NUMERIC,
            "inner SGD diverged at outer step %lld, inner step %lld (theta is not finite); "
            "%s: %s; the last checkpoint is kept",
            (long long)s->k, at, s->blame_why, fix);
}

int nhgd_outer_hypergrad_diverged(nhgd_solver *s, double umax) {
  double tmax = 0.0;
  for (int64_t j = 0; j < s->d; ++j)
    tmax = !(fabs(s->inner.theta[j]) <= tmax) ? fabs(s->inner.theta[j]) : tmax;
  NHGD_CHECK(find_blame(s));
  char fix[128];
  advice(s, fix, sizeof fix);
  NHGD_FAIL(NHGD_ERR_NUMERIC,
            "the hypergradient at outer step %lld is not finite (u from estimator %s: largest "
            "entry %g; theta: largest entry %g); %s: %s; the last checkpoint is kept",
            (long long)s->k, s->est->name, umax, tmax, s->blame_why, fix);
}

/* Copy n doubles from src to dst for each pair. */
static void copy_pairs(double *const *dst, double *const *src, int pairs, int64_t n) {
  for (int i = 0; i < pairs; ++i)
    memcpy(dst[i], src[i], (size_t)n * sizeof(double));
}

void nhgd_outer_keep_prev(nhgd_solver *s) {
  double *const to[] = {s->snap.vp, s->snap.mp, s->snap.sp}, *const from[] = {s->v, s->adam_m,
                                                                              s->adam_s};
  copy_pairs(to, from, 3, s->p_local);
}

void nhgd_outer_take_snapshot(nhgd_solver *s, int with_prev) {
  rollback_state *b = &s->snap;
  double *const to_r[] = {b->theta, b->u}, *const from_r[] = {s->inner.theta, s->u};
  double *const to_s[] = {b->v, b->m, b->s, b->h}, *const from_s[] = {s->v, s->adam_m, s->adam_s,
                                                                      s->h};
  copy_pairs(to_r, from_r, 2, s->d);
  copy_pairs(to_s, from_s, 4, s->p_local);
  b->k = s->k;
  b->has_prev = with_prev;
  b->have_hypergrad = s->have_hypergrad;
  b->last_loss = s->inner.last_loss;
  b->valid = 1;
}

/* Rank 0 removes the checkpoints after position pos: they belong to the steps a rollback
 * undid, and a restart must not continue from them. */
static int discard_checkpoints(nhgd_solver *s, int64_t k, int64_t t) {
  if (!s->ckpt) return NHGD_OK;
  const int64_t T = s->opt->inner.steps > 0 ? s->opt->inner.steps : 1;
  return nhgd_ckpt_discard_after(s->ckpt, k * T + t);
}

int nhgd_outer_roll_back(nhgd_solver *s, int err, nhgd_record *rec, int *redo) {
  rollback_state *b = &s->snap;
  const nhgd_solver_opts *o = s->opt;
  *redo = 0;
  if (!s->halve) return err;
  if (s->blame_start || s->blame_drift) {
    nhgd_log(NHGD_LOG_WARN, s->blame_start
                                ? "--on-divergence halve: no step size is to blame, no rollback"
                                : "--on-divergence halve: no rollback undoes outer steps before "
                                  "the last, no rollback");
    return err;
  }
  if (!b->valid || s->hist.nrb >= o->divergence_retries) {
    nhgd_log(NHGD_LOG_WARN,
             b->valid ? "--on-divergence halve: all %d rollbacks (--divergence-retries) used"
                      : "--on-divergence halve: no state to roll back to (resumed inside outer "
                        "step from a checkpoint without one; %d rollbacks allowed)",
             o->divergence_retries);
    return err;
  }
  nhgd_log(NHGD_LOG_WARN, "%s", nhgd_error_message());
  nhgd_error_clear();
  const int outer = s->blame == NHGD_LR_OUTER;
  double *lr = outer ? &s->outer_lr : &s->inner_opt.lr;
  const nhgd_rollback_rec r = {s->k, s->blame, *lr, 0.5 * *lr};
  *lr = r.new_lr;
  NHGD_CHECK(nhgd_history_push_rollback(&s->hist, &r));
  /* A fresh estimator: its running state belongs to the steps undone (between outer steps an
   * estimator holds nothing that u does not, which is what a checkpoint there relies on too). */
  nhgd_estimator_destroy(&s->est);
  NHGD_CHECK(nhgd_error_agree(
      s->comm, nhgd_estimator_create(o->estimator, s->options, &s->ctx, NULL, &s->est)));
  double *const to_r[] = {s->inner.theta, s->u}, *const from_r[] = {b->theta, b->u};
  double *const to_s[] = {s->v, s->adam_m, s->adam_s, s->h};
  double *const from_s[] = {outer ? b->vp : b->v, outer ? b->mp : b->m, outer ? b->sp : b->s, b->h};
  copy_pairs(to_r, from_r, 2, s->d);
  copy_pairs(to_s, from_s, 4, s->p_local);
  s->have_hypergrad = b->have_hypergrad;
  s->inner.last_loss = b->last_loss;
  s->inner.diverged = s->diverged = 0;
  s->resume_t = 0;
  s->k = outer ? b->k - 1 : b->k;
  s->hist.len = s->k;
  if (outer) {
    /* Outer step k - 1 is taken again from its record, with the halved step size. */
    *rec = b->k > 0 ? s->hist.rec[s->k] : *rec;
    rec->test_loss = rec->test_acc = NAN; /* val_loss_full stays: it is taken before the update */
    s->inner.first_loss = s->prev_first_loss;
    *redo = 1;
  }
  NHGD_CHECK(discard_checkpoints(s, b->k, outer ? -1 : 0));
  nhgd_log(NHGD_LOG_WARN,
           "--on-divergence halve: rollback %lld of %d: back to %s outer step %lld, --%s halved "
           "from %g to %g",
           (long long)s->hist.nrb, o->divergence_retries, outer ? "the update of" : "the start of",
           (long long)s->k, nhgd_lr_name(r.lr), r.old_lr, r.new_lr);
  if (s->rollback) {
    const nhgd_rollback pub = {r.step, s->k, nhgd_lr_name(r.lr), r.old_lr, r.new_lr};
    s->rollback(&pub, s->rollback_arg);
  }
  return NHGD_OK;
}
