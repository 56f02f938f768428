/* The solver's parts of a checkpoint: the outer state, the inner position, theta and the
 * rollback state at the file's root, the estimator's running state in /estimator; the
 * checkpoint writer they are registered with, and the write of one checkpoint. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "data/digest.h"
#include "outer/engine.h"

/* The vectors of the rollback state, as checkpoint datasets: replicated (d) or sliced like v. */
typedef struct {
  const char *name;
  double *x;
  int sliced;
} snap_vec;

static int snap_vectors(rollback_state *b, snap_vec *vec) {
  const snap_vec all[] = {{"rollback_theta", b->theta, 0},   {"rollback_u", b->u, 0},
                          {"rollback_v", b->v, 1},           {"rollback_adam_m", b->m, 1},
                          {"rollback_adam_s", b->s, 1},      {"rollback_hypergradient", b->h, 1},
                          {"rollback_prev_v", b->vp, 1},     {"rollback_prev_adam_m", b->mp, 1},
                          {"rollback_prev_adam_s", b->sp, 1}};
  const int n = (int)(sizeof all / sizeof all[0]);
  memcpy(vec, all, sizeof all);
  return n;
}

/* Collective: the rollback state into a checkpoint, so that a run resumed inside an outer step
 * can still return to its start. */
static int put_rollback_state(nhgd_solver *s, nhgd_section *sec) {
  rollback_state *b = &s->snap;
  NHGD_CHECK(nhgd_section_put_int(sec, "rollback_k", b->k));
  NHGD_CHECK(nhgd_section_put_int(sec, "rollback_has_prev", b->has_prev));
  NHGD_CHECK(nhgd_section_put_int(sec, "rollback_have_hypergradient", b->have_hypergrad));
  NHGD_CHECK(nhgd_section_put_real(sec, "rollback_last_inner_loss", b->last_loss));
  snap_vec vec[9];
  const int n = snap_vectors(b, vec);
  for (int i = 0; i < n; ++i)
    NHGD_CHECK(vec[i].sliced
                   ? nhgd_section_put_slice(sec, vec[i].name, s->p, nhgd_outer_v_offset(s),
                                            nhgd_outer_v_count(s), vec[i].x)
                   : nhgd_section_put_vector(sec, vec[i].name, s->d, vec[i].x));
  return NHGD_OK;
}

/* Collective: the rollback state of a checkpoint at outer step k, checked. */
static int get_rollback_state(nhgd_solver *s, nhgd_section *sec, int64_t k) {
  rollback_state *b = &s->snap;
  int64_t bk, prev, have;
  NHGD_CHECK(nhgd_section_get_int(sec, "rollback_k", &bk));
  NHGD_CHECK(nhgd_section_get_int(sec, "rollback_has_prev", &prev));
  NHGD_CHECK(nhgd_section_get_int(sec, "rollback_have_hypergradient", &have));
  NHGD_CHECK(nhgd_section_get_real(sec, "rollback_last_inner_loss", &b->last_loss));
  if (bk != k || (prev != 0 && prev != 1) || (prev && k == 0) || (have != 0 && have != 1))
    NHGD_FAIL(NHGD_ERR_DATA,
              "the rollback state (outer step %lld, has_prev %lld, have_hypergradient %lld) does "
              "not fit outer step %lld",
              (long long)bk, (long long)prev, (long long)have, (long long)k);
  snap_vec vec[9];
  const int n = snap_vectors(b, vec);
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t len = vec[i].sliced ? s->p_local : s->d;
    NHGD_CHECK(vec[i].sliced ? nhgd_section_get_slice(sec, vec[i].name, s->p,
                                                      nhgd_outer_v_offset(s), len, vec[i].x)
                             : nhgd_section_get_vector(sec, vec[i].name, len, vec[i].x));
    for (int64_t j = 0; j < len; ++j)
      bad |= !isfinite(vec[i].x[j]);
  }
  if (bad) nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__, "the rollback state is not finite");
  NHGD_CHECK(nhgd_section_agree(sec, bad ? NHGD_ERR_DATA : NHGD_OK));
  b->k = bk;
  b->has_prev = (int)prev;
  b->have_hypergrad = (int)have;
  b->valid = 1;
  return NHGD_OK;
}

/* The outer state, the inner position and theta, at the file's root. */
static int save_outer(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  const int64_t d = s->d, voff = nhgd_outer_v_offset(s), vcnt = nhgd_outer_v_count(s);
  NHGD_CHECK(nhgd_section_put_int(sec, "outer_step", s->k));
  NHGD_CHECK(nhgd_section_put_int(sec, "inner_step", s->ckpt_t));
  NHGD_CHECK(nhgd_section_put_int(sec, "complete", s->ckpt_complete));
  NHGD_CHECK(nhgd_section_put_real(sec, "elapsed", MPI_Wtime() - s->t_start));
  NHGD_CHECK(nhgd_section_put_real(sec, "last_inner_loss", s->inner.last_loss));
  NHGD_CHECK(nhgd_section_put_real(sec, "samples", s->samples));
  NHGD_CHECK(nhgd_section_put_real(sec, "solver_time", s->solver_time));
  NHGD_CHECK(nhgd_section_put_real(sec, "eval_time", s->eval_time));
  NHGD_CHECK(nhgd_section_put_int(sec, "d", s->d));
  NHGD_CHECK(nhgd_section_put_int(sec, "p", s->p));
  NHGD_CHECK(nhgd_section_put_int(sec, "n_train", s->data->train.n_global));
  NHGD_CHECK(nhgd_section_put_int(sec, "n_val", s->data->val.n_global));
  NHGD_CHECK(nhgd_section_put_string(sec, "estimator", s->est->name));
  NHGD_CHECK(nhgd_section_put_string(sec, "data_file", s->data->path));
  NHGD_CHECK(nhgd_section_put_string(sec, "data_digest", s->digest));
  NHGD_CHECK(nhgd_section_put_vector(sec, "theta", d, s->inner.theta));
  NHGD_CHECK(nhgd_section_put_vector(sec, "theta_init", d, s->inner.theta_init));
  NHGD_CHECK(nhgd_section_put_vector(sec, "theta_sum", d, s->inner.theta_sum));
  NHGD_CHECK(nhgd_section_put_slice(sec, "v", s->p, voff, vcnt, s->v));
  NHGD_CHECK(nhgd_section_put_slice(sec, "adam_m", s->p, voff, vcnt, s->adam_m));
  NHGD_CHECK(nhgd_section_put_slice(sec, "adam_s", s->p, voff, vcnt, s->adam_s));
  /* The last hypergradient and u, so that the output of a finished run can be rewritten. */
  NHGD_CHECK(nhgd_section_put_int(sec, "have_hypergradient", s->have_hypergrad));
  NHGD_CHECK(nhgd_section_put_slice(sec, "hypergradient", s->p, voff, vcnt, s->h));
  NHGD_CHECK(nhgd_section_put_vector(sec, "u", d, s->u));
  /* The step sizes in use and the rollbacks that halved them (format 4). */
  NHGD_CHECK(nhgd_section_put_real(sec, "inner_lr", s->inner_opt.lr));
  NHGD_CHECK(nhgd_section_put_real(sec, "outer_lr", s->outer_lr));
  NHGD_CHECK(nhgd_section_put_real(sec, "first_inner_loss", s->inner.first_loss));
  NHGD_CHECK(nhgd_section_put_real(sec, "prev_first_inner_loss", s->prev_first_loss));
  NHGD_CHECK(nhgd_section_put_int(sec, "rollbacks", s->hist.nrb));
  NHGD_CHECK(nhgd_history_put_rollbacks(&s->hist, sec, "rollback_log"));
  /* Only a run that rolls back needs it after a restart (the blame experiments do without). */
  if (s->halve && s->snap.valid) NHGD_CHECK(put_rollback_state(s, sec));
  NHGD_CHECK(nhgd_cross_save(s, sec));
  return nhgd_history_put(&s->hist, sec, "history");
}

/* The state read from a checkpoint must be finite (Adam's second moment also >= 0). */
static int check_state(const nhgd_solver *s) {
  const struct {
    const char *name;
    const double *x;
    int64_t n;
  } vec[] = {{"theta", s->inner.theta, s->d},
             {"theta_init", s->inner.theta_init, s->d},
             {"theta_sum", s->inner.theta_sum, s->d},
             {"u", s->u, s->d},
             {"v", s->v, s->p_local},
             {"adam_m", s->adam_m, s->p_local},
             {"adam_s", s->adam_s, s->p_local},
             {"hypergradient", s->h, s->p_local}};
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; ++i)
    for (int64_t j = 0; j < vec[i].n; ++j)
      if (!isfinite(vec[i].x[j]) || (i == 6 && vec[i].x[j] < 0))
        NHGD_FAIL(NHGD_ERR_DATA, "dataset %s: entry %lld is %g", vec[i].name,
                  (long long)(j + (i >= 4 && s->pb->v_per_sample ? s->data->train.lo : 0)),
                  vec[i].x[j]);
  return NHGD_OK;
}

static int load_outer(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  int64_t k, tt, comp, d, p, ntr, nval, version, have;
  double elapsed;
  NHGD_CHECK(nhgd_section_get_int(sec, "format_version", &version));
  NHGD_CHECK(nhgd_section_get_int(sec, "outer_step", &k));
  NHGD_CHECK(nhgd_section_get_int(sec, "inner_step", &tt));
  NHGD_CHECK(nhgd_section_get_int(sec, "complete", &comp));
  NHGD_CHECK(nhgd_section_get_int(sec, "d", &d));
  NHGD_CHECK(nhgd_section_get_int(sec, "p", &p));
  NHGD_CHECK(nhgd_section_get_int(sec, "n_train", &ntr));
  NHGD_CHECK(nhgd_section_get_int(sec, "n_val", &nval));
  NHGD_CHECK(nhgd_section_get_real(sec, "elapsed", &elapsed));
  NHGD_CHECK(nhgd_section_get_real(sec, "last_inner_loss", &s->inner.last_loss));
  /* Format 1 had no work counter: it stays unknown (NaN) for the rest of the run. */
  s->samples = NAN;
  if (version >= 2) NHGD_CHECK(nhgd_section_get_real(sec, "samples", &s->samples));
  /* Before format 5 the clocks were not kept: unknown (NaN) likewise. */
  s->solver_time = s->eval_time = NAN;
  if (version >= 5) {
    NHGD_CHECK(nhgd_section_get_real(sec, "solver_time", &s->solver_time));
    NHGD_CHECK(nhgd_section_get_real(sec, "eval_time", &s->eval_time));
  }
  if (d != s->d || p != s->p || ntr != s->data->train.n_global || nval != s->data->val.n_global)
    NHGD_FAIL(NHGD_ERR_ARG,
              "the checkpoint is of another problem or data: d = %lld, p = %lld, %lld train and "
              "%lld validation rows; this run has %lld, %lld, %lld and %lld",
              (long long)d, (long long)p, (long long)ntr, (long long)nval, (long long)s->d,
              (long long)s->p, (long long)s->data->train.n_global,
              (long long)s->data->val.n_global);
  if (version >= 3) {
    char file[NHGD_PATH_MAX], digest[64];
    NHGD_CHECK(nhgd_section_get_string(sec, "data_file", file, sizeof file));
    NHGD_CHECK(nhgd_section_get_string(sec, "data_digest", digest, sizeof digest));
    if (strcmp(digest, s->digest))
      NHGD_FAIL(NHGD_ERR_ARG,
                "checkpoint %s was written for the data in %s (digest %s), but --data %s holds "
                "other data (digest %s): continue with the same data, or use another "
                "--checkpoint-dir",
                s->resume_path, file, digest, s->data->path, s->digest);
  }
  /* Every field in range before anything is taken from it. */
  if (k < 0 || k > ((int64_t)1 << 40))
    NHGD_FAIL(NHGD_ERR_DATA, "attribute outer_step %lld is out of range", (long long)k);
  if (tt < 0 || tt > s->opt->inner.steps)
    NHGD_FAIL(NHGD_ERR_DATA, "attribute inner_step %lld is outside [0, --inner-steps %lld]",
              (long long)tt, (long long)s->opt->inner.steps);
  if (comp != 0 && comp != 1)
    NHGD_FAIL(NHGD_ERR_DATA, "attribute complete %lld is not 0 or 1", (long long)comp);
  if (!isfinite(elapsed) || elapsed < 0)
    NHGD_FAIL(NHGD_ERR_DATA, "attribute elapsed %g is not a time", elapsed);
  /* NaN: a run resumed from a checkpoint that had no counter (format 1), which writes it on
   * as unknown, as it does the clocks below. */
  if (!(isnan(s->samples) || (s->samples >= 0 && isfinite(s->samples))))
    NHGD_FAIL(NHGD_ERR_DATA, "attribute samples %g is not a count", s->samples);
  /* NaN: a run resumed from a checkpoint that had no clocks. */
  if (!(isnan(s->solver_time) || (s->solver_time >= 0 && s->solver_time <= elapsed)) ||
      !(isnan(s->eval_time) || (s->eval_time >= 0 && s->eval_time <= elapsed)))
    NHGD_FAIL(NHGD_ERR_DATA,
              "attributes solver_time %g and eval_time %g are not times within elapsed %g",
              s->solver_time, s->eval_time, elapsed);
  const int64_t dd = s->d, voff = nhgd_outer_v_offset(s);
  NHGD_CHECK(nhgd_section_get_vector(sec, "theta", dd, s->inner.theta));
  NHGD_CHECK(nhgd_section_get_vector(sec, "theta_init", dd, s->inner.theta_init));
  NHGD_CHECK(nhgd_section_get_vector(sec, "theta_sum", dd, s->inner.theta_sum));
  NHGD_CHECK(nhgd_section_get_slice(sec, "v", s->p, voff, s->p_local, s->v));
  NHGD_CHECK(nhgd_section_get_slice(sec, "adam_m", s->p, voff, s->p_local, s->adam_m));
  NHGD_CHECK(nhgd_section_get_slice(sec, "adam_s", s->p, voff, s->p_local, s->adam_s));
  NHGD_CHECK(nhgd_section_get_int(sec, "have_hypergradient", &have));
  NHGD_CHECK(nhgd_section_get_slice(sec, "hypergradient", s->p, voff, s->p_local, s->h));
  NHGD_CHECK(nhgd_section_get_vector(sec, "u", dd, s->u));
  s->have_hypergrad = (int)have;
  /* Fields older formats lack: the counter (format 1) and the clocks unknown, every
   * validation row used (before format 5). */
  const nhgd_record missing = {.samples = NAN,
                               .val_rows = s->data->val.n_global,
                               .val_loss_full = NAN,
                               .solver_time = NAN,
                               .eval_time = NAN};
  NHGD_CHECK(nhgd_history_get(&s->hist, sec, "history", k, version, &missing));
  NHGD_CHECK(nhgd_section_agree(sec, check_state(s)));
  if (version >= 4) {
    int64_t nrb;
    double ilr, olr;
    NHGD_CHECK(nhgd_section_get_real(sec, "inner_lr", &ilr));
    NHGD_CHECK(nhgd_section_get_real(sec, "outer_lr", &olr));
    NHGD_CHECK(nhgd_section_get_int(sec, "rollbacks", &nrb));
    NHGD_CHECK(nhgd_section_get_real(sec, "first_inner_loss", &s->inner.first_loss));
    NHGD_CHECK(nhgd_section_get_real(sec, "prev_first_inner_loss", &s->prev_first_loss));
    /* Rollbacks only ever halve the step sizes of the options (which the checkpoint agrees
     * with): anything else is damage. */
    if (!(ilr > 0 && ilr <= s->opt->inner.lr) || !(olr >= 0 && olr <= s->opt->outer_lr))
      NHGD_FAIL(NHGD_ERR_DATA,
                "attributes inner_lr %g and outer_lr %g are not within (0, --inner-lr %g] and "
                "[0, --outer-lr %g]",
                ilr, olr, s->opt->inner.lr, s->opt->outer_lr);
    NHGD_CHECK(nhgd_history_get_rollbacks(&s->hist, sec, "rollback_log", nrb));
    s->inner_opt.lr = ilr;
    s->outer_lr = olr;
    if (s->snap.theta && nhgd_section_has(sec, "rollback_k"))
      NHGD_CHECK(get_rollback_state(s, sec, k));
  }
  s->k = k;
  s->t_start = MPI_Wtime() - elapsed;
  s->ckpt_t = tt;
  NHGD_CHECK(nhgd_cross_load(s, sec));
  s->ckpt_complete = (int)comp;
  return NHGD_OK;
}

/* The estimator's running state, in /estimator; it matters only inside an inner loop. */
static int save_estimator(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  return s->est->ops->save ? s->est->ops->save(s->est, sec) : NHGD_OK;
}

static int load_estimator(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  if (s->ckpt_t == 0) return s->est->ops->load_kept ? s->est->ops->load_kept(s->est, sec) : NHGD_OK;
  if (!s->est->ops->load) return NHGD_OK;
  return s->est->ops->load(s->est, sec, s->k);
}

int nhgd_outer_setup_checkpoints(nhgd_solver *s, int skip, nhgd_ckpt_file **file) {
  const nhgd_solver_opts *o = s->opt;
  *file = NULL;
  if (!s->ckpt) {
    NHGD_CHECK(nhgd_ckpt_create(s->comm, o->checkpoint_dir, o->keep, &s->ckpt));
    NHGD_CHECK(nhgd_ckpt_add_part(s->ckpt, NULL, s, save_outer, load_outer));
    NHGD_CHECK(nhgd_ckpt_add_part(s->ckpt, "estimator", s, save_estimator, load_estimator));
    uint64_t digest;
    NHGD_CHECK(nhgd_data_digest(s->input, &digest));
    snprintf(s->digest, sizeof s->digest, "%016" PRIx64, digest);
  }
  char path[NHGD_PATH_MAX + 64];
  NHGD_CHECK(nhgd_ckpt_find(s->ckpt, o->restart, skip, path, sizeof path));
  if (!path[0]) return NHGD_OK;
  /* Named before it is opened: a file that does not open as a checkpoint (a group missing)
   * is skipped like one whose content is bad. */
  snprintf(s->resume_path, sizeof s->resume_path, "%s", path);
  return nhgd_ckpt_open(s->ckpt, path, s->options, file);
}

int nhgd_outer_write_checkpoint(nhgd_solver *s, int64_t t, int complete) {
  /* Checkpoints are neither the method's work nor measurement. */
  const int clock = nhgd_outer_clock_stop(s);
  nhgd_timer_start(&s->timers, NHGD_T_IO);
  s->ckpt_t = t;
  s->ckpt_complete = complete;
  char path[NHGD_PATH_MAX + 64];
  /* Positions never repeat: inside an inner loop t < T (a checkpoint due at t = T is written
   * after the outer step, at the next boundary), at a boundary t = 0. */
  const int64_t T = s->opt->inner.steps > 0 ? s->opt->inner.steps : 1;
  /* A rollback returns to the start of outer step snap.k (the inner step size halved) or to
   * the update of the one before (the outer one): the checkpoints it would continue from after
   * a kill stay until newer ones exist. */
  const rollback_state *b = &s->snap;
  const int halve = s->halve && b->valid;
  nhgd_ckpt_protect(s->ckpt, halve ? b->k * T : -1, halve && b->has_prev ? b->k * T - 1 : -1);
  /* After a rollback the positions of the undone steps are taken again: under new names. */
  int rc = nhgd_ckpt_write(s->ckpt, s->k * T + t, (int)s->hist.nrb, s->options, path, sizeof path);
  s->req.last_time = MPI_Wtime();
  nhgd_timer_stop(&s->timers, NHGD_T_IO);
  if (clock) nhgd_outer_clock_start(s);
  NHGD_CHECK(rc);
  nhgd_log(NHGD_LOG_INFO, "checkpoint %s written (outer step %lld, inner step %lld%s)", path,
           (long long)s->k, (long long)t, complete ? ", run complete" : "");
  return NHGD_OK;
}
