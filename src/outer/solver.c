/* The outer loop: inner SGD, estimator, hypergradient assembly, outer step, progress; the
 * run options; the solver's parts of a checkpoint. */
#include "nhgd/solver.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/log.h"
#include "core/stop.h"
#include "core/util.h"
#include "data/digest.h"
#include "io/h5util.h"
#include "io/output.h"
#include "outer/engine.h"
#include "problems/builtin.h"

/* --on-divergence halve: the state at the start of outer step k, where a rollback of the
 * inner step size returns to, and (has_prev) v and Adam's moments as they were before outer
 * step k - 1 updated them, from where a rollback of the outer step size redoes that update. */
typedef struct rollback_state {
  int valid, has_prev;
  int64_t k;
  int have_hypergrad;
  double last_loss;
  double *theta, *u;                    /* d */
  double *v, *m, *s, *h, *vp, *mp, *sp; /* p_local */
} rollback_state;

struct nhgd_solver {
  MPI_Comm comm; /* a duplicate of the caller's */
  int rank, size;
  nhgd_options *options; /* a copy of the caller's */
  const nhgd_solver_opts *opt;
  const nhgd_data *data;  /* the problem's view of the data (pb->data) */
  const nhgd_data *input; /* the data the solver was given (the view may derive from it) */
  nhgd_problem *pb;
  int64_t d, p, p_local;
  nhgd_inner inner;
  double *v;               /* p_local */
  double *u, *gval;        /* d */
  double *h, *jt;          /* p_local: hypergradient, cross term J^T u */
  double *adam_m, *adam_s; /* p_local */
  double *buf;             /* d + 2: evaluation sums */
  int64_t k;               /* outer steps completed */
  /* Work counter, replicated: per-sample gradients (inner SGD, validation gradients) plus
   * per-sample Hessian(-vector) evaluations (baselines, exact) used so far. NHGD adds
   * nothing: it reuses the inner loop's per-sample gradients. */
  double samples;
  double comm_bytes;  /* payload bytes this rank received from the estimator's collectives */
  int64_t comm_steps; /* inner steps those bytes cover */
  nhgd_est_ctx ctx;
  nhgd_estimator *est;
  nhgd_timers timers;
  double t_start;
  nhgd_history hist;
  int have_hypergrad;
  /* checkpoint and restart */
  nhgd_ckpt *ckpt;
  nhgd_inner_requests req;
  int64_t ckpt_t;    /* inner step of the checkpoint being written or read */
  int ckpt_complete; /* the checkpoint being written ends the run */
  int resumed;       /* state came from a checkpoint */
  int64_t resume_t;  /* inner steps of outer step k already done at restart */
  char resume_path[NHGD_PATH_MAX + 64];
  char digest[24];  /* content digest of the data, hex (checkpoints only) */
  int pending_stop; /* a stop request met at the last inner step: honoured after the step */
  int pending_due;  /* likewise a checkpoint that fell due at the last inner step */
  nhgd_progress_fn progress;
  void *progress_arg;
  /* divergence */
  nhgd_inner_opts inner_opt; /* the inner loop's settings, with the inner step size in use */
  double outer_lr;           /* the base outer step size in use */
  double prev_first_loss;    /* inner loss at the first step of the last completed inner loop */
  int halve;                 /* --on-divergence halve */
  int diverged;              /* the error being returned is a divergence ... */
  nhgd_lr_kind blame;        /* ... put down to this step size */
  char blame_why[160];
  rollback_state snap;
  nhgd_rollback_fn rollback;
  void *rollback_arg;
};

/* ---- the solver's options ---- */

#define F(field) offsetof(nhgd_solver_opts, field), sizeof(((nhgd_solver_opts *)0)->field)
#define NORANGE 1, 0
#define TRAJ NHGD_OPT_TRAJECTORY
static nhgd_option_spec solver_specs[] = {
    {"estimator", NHGD_OPT_CHOICE, F(estimator), "nhgd", NORANGE, NULL /* from the registry */,
     "estimator of u = H^-1 grad_theta f (none: u = 0, plain inner SGD for timing baselines)",
     TRAJ},
    {"v-from", NHGD_OPT_STR, F(v_from), "", NORANGE, NULL,
     "start from /v of this HDF5 file (\"\": every entry = --v-init)", 0},
    {"outer-steps", NHGD_OPT_I64, F(outer_steps), "30", 1, 1e12, NULL, "outer steps K", 0},
    {"outer-opt", NHGD_OPT_CHOICE, F(outer_opt), "adam", NORANGE, "sgd|adam", "outer optimiser",
     TRAJ},
    {"outer-lr", NHGD_OPT_REAL, F(outer_lr), "0.1", 0, 1e12, NULL, "outer step size", TRAJ},
    {"outer-schedule", NHGD_OPT_CHOICE, F(outer_schedule), "const", NORANGE, "const|invsqrt|inv",
     "outer step-size schedule: lr, lr/sqrt(1+decay*k), lr/(1+decay*k)", TRAJ},
    {"outer-decay", NHGD_OPT_REAL, F(outer_decay), "0.1", 0, 1e12, NULL, "outer schedule decay",
     TRAJ},
    {"adam-beta1", NHGD_OPT_REAL, F(adam_beta1), "0.9", 0, 0.999999, NULL, "Adam beta1", TRAJ},
    {"adam-beta2", NHGD_OPT_REAL, F(adam_beta2), "0.999", 0, 0.99999999, NULL, "Adam beta2", TRAJ},
    {"adam-eps", NHGD_OPT_REAL, F(adam_eps), "1e-8", 1e-300, 1, NULL, "Adam epsilon", TRAJ},
    {"inner-steps", NHGD_OPT_I64, F(inner.steps), "20", 0, 1e12, NULL, "inner SGD steps T", TRAJ},
    {"batch", NHGD_OPT_I64, F(inner.batch), "256", 0, 2147483647, NULL,
     "global minibatch size B, drawn with replacement (0: full batch, every row once)", TRAJ},
    {"inner-lr", NHGD_OPT_REAL, F(inner.lr), "0.1", 1e-300, 1e12, NULL, "inner step size", TRAJ},
    {"inner-schedule", NHGD_OPT_CHOICE, F(inner.schedule), "const", NORANGE, "const|inv|cosine",
     "inner step-size schedule: lr, lr/(1+decay*t), cosine from lr to 0 over T", TRAJ},
    {"inner-decay", NHGD_OPT_REAL, F(inner.decay), "0.01", 0, 1e12, NULL, "inner schedule decay",
     TRAJ},
    {"warm-start", NHGD_OPT_BOOL, F(inner.warm_start), "1", NORANGE, NULL,
     "start each inner loop from the last theta (0: from the initial theta)", TRAJ},
    {"block-size", NHGD_OPT_INT, F(block_size), "0", 0, 4096, NULL,
     "block-cyclic block size (0: automatic)", 0},
    {"grid-rows", NHGD_OPT_INT, F(grid_rows), "0", 0, 1 << 20, NULL,
     "rows of the process grid (0: automatic, near-square)", 0},
    {"kron", NHGD_OPT_BOOL, F(kron), "1", NORANGE, NULL,
     "use the Kronecker structure of softmax problems (0: generic per-sample factors)", TRAJ},
    {"cross-mode", NHGD_OPT_CHOICE, F(cross_mode), "end", NORANGE, "end|average",
     "evaluate J at the last inner iterate or at the average of the inner iterates", TRAJ},
    {"checkpoint-dir", NHGD_OPT_STR, F(checkpoint_dir), "", NORANGE, NULL,
     "folder for checkpoints (\"\": no checkpoints; signals then end the run)", 0},
    {"checkpoint-every", NHGD_OPT_INT, F(checkpoint_every), "1", 0, 1 << 30, NULL,
     "outer steps between checkpoints (0: only when stopped and at the end)", 0},
    {"checkpoint-every-inner", NHGD_OPT_INT, F(checkpoint_every_inner), "0", 0, 1 << 30, NULL,
     "inner steps between checkpoints inside an inner loop (0: none)", 0},
    {"checkpoint-seconds", NHGD_OPT_REAL, F(checkpoint_seconds), "0", 0, 1e9, NULL,
     "seconds between checkpoints, at the next inner step (0: off)", 0},
    {"keep", NHGD_OPT_INT, F(keep), "3", 1, 1 << 20, NULL, "checkpoints kept in --checkpoint-dir",
     0},
    {"restart", NHGD_OPT_STR, F(restart), "auto", NORANGE, NULL,
     "auto: continue from the newest valid checkpoint in --checkpoint-dir; never: start "
     "afresh (refused if the folder holds checkpoints); or the path of one checkpoint",
     0},
    {"halt-after", NHGD_OPT_I64, F(halt_after), "0", 0, 1e15, NULL,
     "checkpoint and stop (exit 75) after this many inner steps of this process (0: never)", 0},
    {"seed", NHGD_OPT_U64, F(inner.seed), "0", NORANGE, NULL, "seed of the minibatch sampler",
     TRAJ},
    {"eval-every", NHGD_OPT_INT, F(eval_every), "1", 0, 1 << 30, NULL,
     "evaluate on the test split every this many outer steps (0: never)", 0},
    {"log-level", NHGD_OPT_INT, F(log_level), "2", 0, 3, NULL, "0 error, 1 warn, 2 info, 3 debug",
     0},
    {"divergence-factor", NHGD_OPT_REAL, F(divergence_factor), "1e6", 0, 1e300, NULL,
     "stop (exit 1, the last checkpoint kept) when the validation loss is not finite or above "
     "this multiple of its value at the first outer step (0: only when not finite)",
     0},
    {"on-divergence", NHGD_OPT_CHOICE, F(on_divergence), "stop", NORANGE, "stop|halve",
     "on divergence stop (exit 1), or roll back to the start of the outer step (or before the "
     "outer step that moved v too far) and halve the step size blamed: --inner-lr or --outer-lr",
     0},
    {"divergence-retries", NHGD_OPT_INT, F(divergence_retries), "3", 0, 1 << 20, NULL,
     "rollbacks allowed in a run with --on-divergence halve; the next divergence stops it", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F
#undef NORANGE
#undef TRAJ

static int solver_check(const void *block, const nhgd_options *all) {
  const nhgd_solver_opts *o = block;
  if (!o->checkpoint_dir[0] && o->halt_after > 0)
    NHGD_FAIL(NHGD_ERR_ARG, "option --halt-after needs --checkpoint-dir (nothing to resume from)");
  /* Only the default may go without a folder: anything else would be silently ignored. */
  if (!o->checkpoint_dir[0] && strcmp(o->restart, "auto"))
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --restart %s needs --checkpoint-dir (the folder the run's checkpoints go "
              "to; --restart FILE continues from FILE and writes there)",
              o->restart);
  return NHGD_OK;
}

int nhgd_options_create_run(nhgd_options **out) {
  solver_specs[0].choices = nhgd_estimator_names();
  const nhgd_option_block solver_block = {"solver", solver_specs, sizeof(nhgd_solver_opts),
                                          solver_check};
  NHGD_CHECK(nhgd_options_create(out));
  int rc = nhgd_options_add_block(*out, &nhgd_problem_options);
  if (!rc) rc = nhgd_options_add_block(*out, &solver_block);
  if (!rc) rc = nhgd_estimator_add_options(*out);
  if (rc) nhgd_options_destroy(out);
  return rc;
}

/* ---- evaluation ---- */

/* Collective: evaluate split (val or test) at (theta, v): mean loss, accuracy (NaN for
 * regression) and, if g != NULL, the mean outer gradient in theta (replicated). */
static int evaluate(nhgd_solver *s, const nhgd_split *split, double *loss, double *acc, double *g) {
  const nhgd_problem *pb = s->pb;
  const int64_t d = s->d;
  double *buf = s->buf; /* d gradient entries, loss, correct */
  int64_t correct = 0;
  nhgd_timer_start(&s->timers, NHGD_T_EVAL);
  int rc = pb->eval(pb, split, s->inner.theta, s->v, &buf[d], g ? buf : NULL, &correct);
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

/* Read /v of an earlier output (or any file with a 1-D /v of p entries) on rank 0 and hand
 * every rank its entries. */
static int load_v(nhgd_solver *s, const char *path) {
  double *all = NULL;
  int rc = NHGD_OK;
  NHGD_CHECK(nhgd_calloc(&all, (size_t)s->p, sizeof(double), "v from file"));
  if (s->rank == 0) rc = nhgd_h5_read_vector(path, "/v", s->p, all);
  rc = nhgd_error_agree(s->comm, rc);
  if (!rc && MPI_Bcast(all, (int)s->p, MPI_DOUBLE, 0, s->comm) != MPI_SUCCESS)
    rc = nhgd_error_set(NHGD_ERR_MPI, __FILE__, __LINE__, "MPI_Bcast of v failed");
  if (!rc) {
    int64_t off = s->pb->v_per_sample ? s->data->train.lo * s->pb->v_per_sample : 0;
    memcpy(s->v, all + off, (size_t)s->p_local * sizeof(double));
  }
  nhgd_free(&all);
  return rc;
}

/* ---- checkpoint parts ---- */

static int64_t v_offset(const nhgd_solver *s) {
  return s->pb->v_per_sample ? s->data->train.lo * s->pb->v_per_sample : 0;
}
static int64_t v_count(const nhgd_solver *s) {
  return s->pb->v_per_sample ? s->p_local : (s->rank == 0 ? s->p : 0);
}

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
    NHGD_CHECK(vec[i].sliced ? nhgd_section_put_slice(sec, vec[i].name, s->p, v_offset(s),
                                                      v_count(s), vec[i].x)
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
    NHGD_CHECK(vec[i].sliced
                   ? nhgd_section_get_slice(sec, vec[i].name, s->p, v_offset(s), len, vec[i].x)
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
  const int64_t d = s->d, voff = v_offset(s), vcnt = v_count(s);
  NHGD_CHECK(nhgd_section_put_int(sec, "outer_step", s->k));
  NHGD_CHECK(nhgd_section_put_int(sec, "inner_step", s->ckpt_t));
  NHGD_CHECK(nhgd_section_put_int(sec, "complete", s->ckpt_complete));
  NHGD_CHECK(nhgd_section_put_real(sec, "elapsed", MPI_Wtime() - s->t_start));
  NHGD_CHECK(nhgd_section_put_real(sec, "last_inner_loss", s->inner.last_loss));
  NHGD_CHECK(nhgd_section_put_real(sec, "samples", s->samples));
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
  if (s->snap.valid) NHGD_CHECK(put_rollback_state(s, sec));
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
  if (version >= 2 && !(s->samples >= 0))
    NHGD_FAIL(NHGD_ERR_DATA, "attribute samples %g is not a count", s->samples);
  const int64_t dd = s->d, voff = v_offset(s);
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
  NHGD_CHECK(nhgd_history_get(&s->hist, sec, "history", k, version));
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
  s->ckpt_complete = (int)comp;
  return NHGD_OK;
}

/* The estimator's running state, in /estimator; it matters only inside an inner loop. */
static int save_estimator(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  return s->est->save ? s->est->save(s->est, sec) : NHGD_OK;
}

static int load_estimator(void *self, nhgd_section *sec) {
  nhgd_solver *s = self;
  if (s->ckpt_t == 0) return s->est->load_kept ? s->est->load_kept(s->est, sec) : NHGD_OK;
  if (!s->est->load) return NHGD_OK;
  return s->est->load(s->est, sec, s->k);
}

/* Collective: write the checkpoint after inner step t of outer step k (t = 0: at the
 * boundary after k outer steps). */
static int write_checkpoint(nhgd_solver *s, int64_t t, int complete) {
  nhgd_timer_start(&s->timers, NHGD_T_IO);
  s->ckpt_t = t;
  s->ckpt_complete = complete;
  char path[NHGD_PATH_MAX + 64];
  /* Positions never repeat: inside an inner loop t < T (a checkpoint due at t = T is written
   * after the outer step, at the next boundary), at a boundary t = 0. */
  const int64_t T = s->opt->inner.steps > 0 ? s->opt->inner.steps : 1;
  int rc = nhgd_ckpt_write(s->ckpt, s->k * T + t, s->options, path, sizeof path);
  s->req.last_time = MPI_Wtime();
  nhgd_timer_stop(&s->timers, NHGD_T_IO);
  NHGD_CHECK(rc);
  nhgd_log(NHGD_LOG_INFO, "checkpoint %s written (outer step %lld, inner step %lld%s)", path,
           (long long)s->k, (long long)t, complete ? ", run complete" : "");
  return NHGD_OK;
}

/* ---- creation ---- */

static int solver_alloc(nhgd_solver *s) {
  const size_t d = (size_t)s->d, pl = (size_t)(s->p_local > 0 ? s->p_local : 1);
  NHGD_CHECK(nhgd_inner_init(&s->inner, s->d, &s->opt->inner, s->data));
  NHGD_CHECK(nhgd_calloc(&s->u, d, sizeof(double), "u"));
  NHGD_CHECK(nhgd_calloc(&s->gval, d, sizeof(double), "validation gradient"));
  NHGD_CHECK(nhgd_calloc(&s->buf, d + 2, sizeof(double), "evaluation sums"));
  NHGD_CHECK(nhgd_calloc(&s->v, pl, sizeof(double), "v"));
  NHGD_CHECK(nhgd_calloc(&s->h, pl, sizeof(double), "hypergradient"));
  NHGD_CHECK(nhgd_calloc(&s->jt, pl, sizeof(double), "cross term J^T u"));
  NHGD_CHECK(nhgd_calloc(&s->adam_m, pl, sizeof(double), "Adam first moment"));
  NHGD_CHECK(nhgd_calloc(&s->adam_s, pl, sizeof(double), "Adam second moment"));
  if (strcmp(s->opt->on_divergence, "halve")) return NHGD_OK;
  rollback_state *b = &s->snap;
  double **rep[] = {&b->theta, &b->u},
         **sl[] = {&b->v, &b->m, &b->s, &b->h, &b->vp, &b->mp, &b->sp};
  for (size_t i = 0; i < sizeof rep / sizeof rep[0]; ++i)
    NHGD_CHECK(nhgd_calloc(rep[i], d, sizeof(double), "rollback state"));
  for (size_t i = 0; i < sizeof sl / sizeof sl[0]; ++i)
    NHGD_CHECK(nhgd_calloc(sl[i], pl, sizeof(double), "rollback state"));
  return NHGD_OK;
}

static int observe_step(void *arg, const double *theta, int nb, const int *rows) {
  nhgd_estimator *est = arg;
  return est->observe(est, theta, nb, rows);
}

/* Bind the pieces: the inner loop, the estimator's context, the checkpoint requests. */
static void bind(nhgd_solver *s) {
  const nhgd_solver_opts *o = s->opt;
  nhgd_inner *in = &s->inner;
  in->comm = s->comm;
  in->rank = s->rank;
  s->inner_opt = o->inner;
  s->outer_lr = o->outer_lr;
  s->halve = !strcmp(o->on_divergence, "halve");
  s->prev_first_loss = in->first_loss = NAN;
  in->opt = &s->inner_opt;
  in->data = s->data;
  in->pb = s->pb;
  in->v = s->v;
  in->timers = &s->timers;
  in->samples = &s->samples;
  in->average = !strcmp(o->cross_mode, "average");
  nhgd_est_ctx *c = &s->ctx;
  c->comm = s->comm;
  c->rank = s->rank;
  c->size = s->size;
  c->d = s->d;
  c->pb = s->pb;
  c->data = s->data;
  c->v = s->v;
  c->u_prev = s->u;
  c->seed = o->inner.seed;
  c->inner_steps = o->inner.steps;
  c->batch = o->inner.batch;
  c->kron = o->kron;
  c->block_size = o->block_size;
  c->grid_rows = o->grid_rows;
  c->timers = &s->timers;
  c->samples = &s->samples;
  c->comm_bytes = &s->comm_bytes;
  c->comm_steps = &s->comm_steps;
  s->req.enabled = o->checkpoint_dir[0] != '\0';
  s->req.every_seconds = o->checkpoint_seconds;
  s->req.every_inner = o->checkpoint_every_inner;
  s->req.halt_after = o->halt_after;
}

/* Collective: the checkpoint writer and its parts; the checkpoint to continue from, opened
 * (*file NULL when there is none). */
static int setup_checkpoints(nhgd_solver *s, int skip, nhgd_ckpt_file **file) {
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
  NHGD_CHECK(nhgd_ckpt_open(s->ckpt, path, s->options, file));
  snprintf(s->resume_path, sizeof s->resume_path, "%s", path);
  return NHGD_OK;
}

static int create(nhgd_solver *s, MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                  nhgd_problem *pb) {
  int same = MPI_UNEQUAL;
  MPI_Comm_compare(comm, data->comm, &same);
  if (same != MPI_IDENT && same != MPI_CONGRUENT)
    NHGD_FAIL(NHGD_ERR_ARG, "the solver's communicator must hold the ranks the data was loaded "
                            "on, in the same order");
  NHGD_MPI_CHECK(MPI_Comm_dup(comm, &s->comm));
  MPI_Comm_rank(s->comm, &s->rank);
  MPI_Comm_size(s->comm, &s->size);
  NHGD_CHECK(nhgd_options_copy(o, &s->options));
  s->opt = nhgd_options_block(s->options, "solver");
  if (!s->opt)
    NHGD_FAIL(NHGD_ERR_ARG, "the options have no solver block: make them with "
                            "nhgd_options_create_run");
  /* The solver runs on the problem's view of the data: the data itself, or (distill) a view
   * whose training split is the problem's own rows. */
  if (pb->data != data && (!pb->data || pb->data->size != data->size))
    NHGD_FAIL(NHGD_ERR_ARG, "problem %s is bound to other data than the solver's", pb->name);
  s->input = data;
  data = pb->data;
  s->data = data;
  s->pb = pb;
  s->d = pb->d;
  s->p = pb->p;
  s->p_local = pb->v_per_sample ? (int64_t)data->train.n_local * pb->v_per_sample : pb->p;
  s->t_start = MPI_Wtime();
  if (pb->v_per_sample < 0 ||
      (pb->v_per_sample && pb->p != data->train.n_global * pb->v_per_sample))
    NHGD_FAIL(NHGD_ERR_ARG,
              "problem %s: per-sample v needs p = %d entries for each of %lld training rows, has "
              "%lld",
              pb->name, pb->v_per_sample, (long long)data->train.n_global, (long long)pb->p);
  if (s->d > (int64_t)1 << 30 || s->p > (int64_t)1 << 30)
    NHGD_FAIL(NHGD_ERR_ARG, "problem too large: d = %lld, p = %lld", (long long)s->d,
              (long long)s->p);
  NHGD_CHECK(solver_alloc(s));
  bind(s);
  return pb->init(pb, s->inner.theta, s->v);
}

/* Collective: the state of a fresh start (after a checkpoint whose content was bad had been
 * partly read). */
static int reset_state(nhgd_solver *s) {
  const size_t d = (size_t)s->d * sizeof(double), pl = (size_t)s->p_local * sizeof(double);
  memset(s->inner.theta_sum, 0, d);
  memset(s->u, 0, d);
  memset(s->h, 0, pl);
  memset(s->adam_m, 0, pl);
  memset(s->adam_s, 0, pl);
  s->hist.len = s->hist.nrb = 0;
  s->inner_opt.lr = s->opt->inner.lr;
  s->outer_lr = s->opt->outer_lr;
  s->snap.valid = 0;
  s->k = s->ckpt_t = 0;
  s->ckpt_complete = s->have_hypergrad = 0;
  s->samples = s->comm_bytes = 0.0;
  s->comm_steps = 0;
  s->inner.last_loss = s->inner.first_loss = s->prev_first_loss = NAN;
  s->t_start = MPI_Wtime();
  s->resume_path[0] = '\0';
  NHGD_CHECK(nhgd_error_agree(s->comm, s->pb->init(s->pb, s->inner.theta, s->v)));
  memcpy(s->inner.theta_init, s->inner.theta, d);
  if (s->opt->v_from[0]) NHGD_CHECK(load_v(s, s->opt->v_from));
  return NHGD_OK;
}

/* Collective: the estimator, and the state of the checkpoint to continue from if any. With
 * --restart auto a checkpoint whose checksums hold but whose content is bad (a missing or
 * short dataset, a value out of range, a Fletcher32 mismatch) is skipped with a warning that
 * names it and what is wrong, for the next older one. */
/* Collective: the estimator (from the checkpoint's section when file is not NULL) and the
 * state of the checkpoint; file is closed. */
static int start_from(nhgd_solver *s, nhgd_ckpt_file *file) {
  int rc =
      nhgd_estimator_create(s->opt->estimator, s->options, &s->ctx,
                            file ? nhgd_ckpt_section(s->ckpt, file, "estimator") : NULL, &s->est);
  rc = nhgd_error_agree(s->comm, rc);
  if (!rc && file) {
    nhgd_timer_start(&s->timers, NHGD_T_IO);
    rc = nhgd_ckpt_load(s->ckpt, file);
    nhgd_timer_stop(&s->timers, NHGD_T_IO);
  }
  nhgd_ckpt_close(&file);
  return rc;
}

static int resume_or_start(nhgd_solver *s) {
  const int fallback = !strcmp(s->opt->restart, "auto");
  for (int skip = 0;; ++skip) {
    nhgd_ckpt_file *file = NULL;
    if (s->opt->checkpoint_dir[0]) NHGD_CHECK(setup_checkpoints(s, skip, &file));
    int rc = start_from(s, file);
    if (!rc || !s->resume_path[0]) return rc;
    if (rc == NHGD_ERR_DATA || rc == NHGD_ERR_HDF5) nhgd_error_context("%s: ", s->resume_path);
    if (!fallback || (rc != NHGD_ERR_DATA && rc != NHGD_ERR_HDF5))
      return nhgd_error_trace(rc, __FILE__, __LINE__);
    nhgd_log(NHGD_LOG_WARN, "skipping checkpoint (content): %s", nhgd_error_message());
    nhgd_error_clear();
    nhgd_estimator_destroy(&s->est);
    NHGD_CHECK(reset_state(s));
  }
}

int nhgd_solver_load_image(nhgd_solver *s, const void *image, size_t size) {
  if (!s->ckpt) NHGD_FAIL(NHGD_ERR_ARG, "nhgd_solver_load_image needs --checkpoint-dir");
  nhgd_estimator_destroy(&s->est);
  NHGD_CHECK(reset_state(s));
  snprintf(s->resume_path, sizeof s->resume_path, "checkpoint image");
  nhgd_ckpt_file *file = NULL;
  int rc = nhgd_ckpt_open_image(s->ckpt, s->resume_path, image, size, s->options, &file);
  if (!rc) rc = start_from(s, file);
  if (rc) {
    /* Leave a usable solver behind: a fresh estimator over a fresh state. */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", nhgd_error_message());
    nhgd_estimator_destroy(&s->est);
    int again = reset_state(s);
    if (!again)
      again = nhgd_error_agree(
          s->comm, nhgd_estimator_create(s->opt->estimator, s->options, &s->ctx, NULL, &s->est));
    if (again) return again;
    nhgd_error_set(rc, __FILE__, __LINE__, "%s", msg);
  }
  return rc;
}

int nhgd_solver_create(MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                       nhgd_problem *pb, nhgd_solver **out) {
  *out = NULL;
  NHGD_CHECK(nhgd_options_validate(o));
  const nhgd_solver_opts *so = nhgd_options_block(o, "solver");
  nhgd_log_init(comm, so ? so->log_level : NHGD_LOG_INFO);
  nhgd_solver *s;
  int rc = nhgd_calloc(&s, 1, sizeof *s, "solver");
  NHGD_CHECK(nhgd_error_agree(comm, rc));
  s->comm = MPI_COMM_NULL;
  rc = create(s, comm, o, data, pb);
  NHGD_TRY(rc, nhgd_error_agree(comm, rc), fail);
  memcpy(s->inner.theta_init, s->inner.theta, (size_t)s->d * sizeof(double));
  if (s->opt->v_from[0]) NHGD_TRY(rc, load_v(s, s->opt->v_from), fail);
  NHGD_TRY(rc, resume_or_start(s), fail);
  if (s->est->needs_observe) {
    s->inner.observe = observe_step;
    s->inner.observe_arg = s->est;
  }
  if (s->resume_path[0]) {
    s->resume_t = s->ckpt_t;
    s->resumed = 1;
    nhgd_log(NHGD_LOG_INFO, "restarted from %s: outer step %lld, inner step %lld%s", s->resume_path,
             (long long)s->k, (long long)s->ckpt_t,
             s->ckpt_complete ? " (the run was complete)" : "");
  }
  s->req.last_time = MPI_Wtime();
  *out = s;
  return NHGD_OK;
fail:
  nhgd_solver_destroy(&s);
  return rc;
}

/* ---- the outer loop ---- */

/* Collective: the step size a divergence at outer step k is put down to, and why (in
 * s->blame_why). The outer one when v is no longer finite, or when the inner loop of step
 * k - 1 ran well (its loss at the last step at most twice that at the first), so that what
 * changed is v; the inner one otherwise, and whenever no outer step can be undone (k = 0,
 * --outer-lr 0, with halve no state from before the last outer step). */
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
  if (k == 0)
    snprintf(s->blame_why, sizeof s->blame_why, "before any outer step");
  else if (v_bad)
    snprintf(s->blame_why, sizeof s->blame_why, "v is not finite");
  else
    snprintf(s->blame_why, sizeof s->blame_why,
             "the inner loss of outer step %lld went from %g to %g", (long long)(k - 1), first,
             last);
  return NHGD_OK;
}

static double lr_in_use(const nhgd_solver *s, nhgd_lr_kind k) {
  return k == NHGD_LR_OUTER ? s->outer_lr : s->inner_opt.lr;
}

/* Is x not finite or, with a factor f > 0, above f times the finite start? */
static int out_of_bounds(double x, double start, double f) {
  return !isfinite(x) || (f > 0 && isfinite(start) && fabs(x) > f * fabs(start));
}

/* Collective. The validation loss (replicated, so the verdict is the same on every rank) must
 * stay finite and, with --divergence-factor, within that multiple of its first value; the
 * message names the step size blamed (see find_blame). */
static int check_divergence(nhgd_solver *s, double loss) {
  const double start = s->hist.len ? s->hist.rec[0].val_loss : loss;
  const double f = s->opt->divergence_factor;
  if (!out_of_bounds(loss, start, f)) return NHGD_OK;
  NHGD_CHECK(find_blame(s));
  NHGD_FAIL(NHGD_ERR_NUMERIC,
            "diverged at outer step %lld, inner step %lld: the validation loss is %g (%g at the "
            "start, --divergence-factor %g); %s: lower --%s (now %g); the last checkpoint is kept",
            (long long)s->k, (long long)s->opt->inner.steps, loss, start, f, s->blame_why,
            nhgd_lr_name(s->blame), lr_in_use(s, s->blame));
}

/* Inner loop, then u and h = grad_v f - J^T u at the last iterate. Fills rec. */
static int hypergradient(nhgd_solver *s, nhgd_record *rec) {
  const nhgd_problem *pb = s->pb;
  nhgd_inner *in = &s->inner;
  /* After a restart inside an inner loop, continue it where it stopped. */
  int64_t t = s->resume_t;
  s->resume_t = 0;
  if (t == 0 && s->est->begin) {
    const double *theta0 = s->opt->inner.warm_start ? in->theta : in->theta_init;
    NHGD_CHECK(s->est->begin(s->est, s->k, theta0));
  }
  for (;;) {
    nhgd_inner_event ev;
    int rc = nhgd_inner_run(in, s->k, &s->req, &t, &ev);
    if (rc && in->diverged) {
      NHGD_CHECK(find_blame(s));
      nhgd_error_clear();
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "inner SGD diverged at outer step %lld, inner step %lld (theta is not finite); "
                "%s: lower --%s (now %g); the last checkpoint is kept",
                (long long)s->k, (long long)(in->diverged - 1), s->blame_why,
                nhgd_lr_name(s->blame), lr_in_use(s, s->blame));
    }
    NHGD_CHECK(rc);
    if (ev == NHGD_INNER_DONE) break;
    if (t >= s->opt->inner.steps) {
      /* The loop is done: the request is met at the boundary after this outer step, whose
       * checkpoint would otherwise have the same position as this one. */
      s->pending_stop |= ev == NHGD_INNER_STOP;
      s->pending_due = 1;
      break;
    }
    NHGD_CHECK(write_checkpoint(s, t, 0));
    if (ev == NHGD_INNER_STOP) return NHGD_STOPPED;
  }
  NHGD_CHECK(evaluate(s, &s->data->val, &rec->val_loss, &rec->val_acc, s->gval));
  NHGD_CHECK(check_divergence(s, rec->val_loss));
  s->samples += (double)s->data->val.n_global;
  NHGD_CHECK(s->est->solve(s->est, in->theta, s->gval, s->u));
  nhgd_timer_start(&s->timers, NHGD_T_HYPERGRAD);
  int rc = NHGD_OK;
  if (pb->outer_grad_v)
    rc = pb->outer_grad_v(pb, in->theta, s->v, s->h);
  else
    memset(s->h, 0, (size_t)s->p_local * sizeof(double));
  /* J at the last iterate, or at the Polyak average of the inner iterates. */
  const double *theta_j = in->theta;
  if (!rc && in->average && s->opt->inner.steps > 0) {
    for (int64_t j = 0; j < s->d; ++j)
      in->theta_sum[j] /= (double)s->opt->inner.steps;
    theta_j = in->theta_sum;
  }
  if (!rc) rc = pb->cross(pb, theta_j, s->v, s->u, s->jt);
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
  if (!isfinite(rec->hypergrad_norm))
    NHGD_FAIL(NHGD_ERR_NUMERIC, "the hypergradient at outer step %lld is not finite",
              (long long)s->k);
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

/* Copy n doubles from src to dst for each pair. */
static void copy_pairs(double *const *dst, double *const *src, int pairs, int64_t n) {
  for (int i = 0; i < pairs; ++i)
    memcpy(dst[i], src[i], (size_t)n * sizeof(double));
}

/* The state at the start of outer step s->k becomes the rollback state (with_prev: v and the
 * moments before the last outer step, copied there by the caller, are kept with it). */
static void take_snapshot(nhgd_solver *s, int with_prev) {
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

/* Collective, after a divergence (error err, blamed step size s->blame): with halve and a
 * rollback left, return to the rollback state with the blamed step size halved and return
 * NHGD_OK (*redo: the outer step of *rec is to be taken again from there); else err. */
static int roll_back(nhgd_solver *s, int err, nhgd_record *rec, int *redo) {
  rollback_state *b = &s->snap;
  const nhgd_solver_opts *o = s->opt;
  *redo = 0;
  if (!s->halve) return err;
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
  if (s->est->needs_observe) s->inner.observe_arg = s->est;
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
    rec->test_loss = rec->test_acc = NAN;
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

/* Collective: the outer step from the hypergradient of rec, the test evaluation, the record,
 * and the checkpoint or stop that falls due after it. */
static int end_outer_step(nhgd_solver *s, nhgd_record *rec) {
  const nhgd_solver_opts *o = s->opt;
  const int64_t K = o->outer_steps;
  if (s->halve) {
    double *const to[] = {s->snap.vp, s->snap.mp, s->snap.sp}, *const from[] = {s->v, s->adam_m,
                                                                                s->adam_s};
    copy_pairs(to, from, 3, s->p_local);
  }
  nhgd_outer_step(o, s->outer_lr, s->k, s->p_local, s->adam_m, s->adam_s, s->v, s->h);
  NHGD_CHECK(sync_replicated(s));
  ++s->k;
  s->prev_first_loss = s->inner.first_loss;
  if (s->data->has_test && o->eval_every > 0 && (s->k % o->eval_every == 0 || s->k == K))
    NHGD_CHECK(evaluate(s, &s->data->test, &rec->test_loss, &rec->test_acc, NULL));
  rec->wall_time = MPI_Wtime() - s->t_start;
  rec->samples = s->samples;
  NHGD_CHECK(nhgd_history_push(&s->hist, rec));
  log_progress(s, rec, K);
  if (s->halve) take_snapshot(s, 1);
  if (!s->ckpt) return NHGD_OK;
  int stop = 0, timed = 0;
  NHGD_CHECK(boundary_requests(s, &stop, &timed));
  stop |= o->halt_after > 0 && s->inner.steps_run >= o->halt_after;
  stop |= s->pending_stop;
  timed |= s->pending_due;
  s->pending_stop = s->pending_due = 0;
  if (stop || timed || s->k == K || (o->checkpoint_every > 0 && s->k % o->checkpoint_every == 0))
    NHGD_CHECK(write_checkpoint(s, 0, s->k == K));
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
  if (s->halve && !s->snap.valid && s->resume_t == 0) take_snapshot(s, 0);
  while (s->k < K) {
    nhgd_record rec = {.step = s->k, .test_loss = NAN, .test_acc = NAN};
    s->diverged = 0;
    int rc = hypergradient(s, &rec), redo = 0;
    if (rc == NHGD_STOPPED) return NHGD_STOPPED;
    if (rc && s->diverged) {
      NHGD_CHECK(roll_back(s, rc, &rec, &redo));
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
  nhgd_record rec = {.step = s->k, .test_loss = NAN, .test_acc = NAN};
  NHGD_CHECK(hypergradient(s, &rec));
  if (s->data->has_test)
    NHGD_CHECK(evaluate(s, &s->data->test, &rec.test_loss, &rec.test_acc, NULL));
  rec.wall_time = MPI_Wtime() - s->t_start;
  rec.samples = s->samples;
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
      .v_offset = v_offset(s),
      .v_count = v_count(s),
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

void nhgd_solver_destroy(nhgd_solver **ps) {
  if (!ps || !*ps) return;
  nhgd_solver *s = *ps;
  nhgd_estimator_destroy(&s->est);
  nhgd_grid_destroy(&s->ctx.grid);
  nhgd_ckpt_destroy(&s->ckpt);
  nhgd_inner_free(&s->inner);
  rollback_state *b = &s->snap;
  double **bufs[] = {&s->u,      &s->gval,   &s->buf,   &s->v,  &s->h, &s->jt,
                     &s->adam_m, &s->adam_s, &b->theta, &b->u,  &b->v, &b->m,
                     &b->s,      &b->h,      &b->vp,    &b->mp, &b->sp};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_history_free(&s->hist);
  nhgd_options_destroy(&s->options);
  if (s->comm != MPI_COMM_NULL) MPI_Comm_free(&s->comm);
  nhgd_free(ps);
}
