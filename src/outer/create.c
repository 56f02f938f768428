/* Creation of a solver: its state, the binding of the inner loop, estimator and checkpoint
 * requests, the start from the newest valid checkpoint (skipping those whose content is bad)
 * or afresh, and its destruction. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "io/h5util.h"
#include "outer/engine.h"

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
  NHGD_CHECK(nhgd_outer_val_batch_alloc(s));
  rollback_state *b = &s->snap;
  double **rep[] = {&b->theta, &b->u},
         **sl[] = {&b->v, &b->m, &b->s, &b->h, &b->vp, &b->mp, &b->sp, &b->v0};
  for (size_t i = 0; i < sizeof rep / sizeof rep[0]; ++i)
    NHGD_CHECK(nhgd_calloc(rep[i], d, sizeof(double), "rollback state"));
  for (size_t i = 0; i < sizeof sl / sizeof sl[0]; ++i)
    NHGD_CHECK(nhgd_calloc(sl[i], pl, sizeof(double), "rollback state"));
  return NHGD_OK;
}

/* Inner step observer: the sampled cross term's records, then the estimator's. */
static int observe_step(void *arg, const double *theta, int nb, const int *rows) {
  nhgd_solver *s = arg;
  /* Agreed on before the estimator's collectives (a record that failed on one rank only
   * must not leave the others waiting); only trajectory keeps records, so only it pays. */
  if (s->cross.mode == NHGD_CROSS_TRAJECTORY)
    NHGD_CHECK(nhgd_error_agree(s->comm, nhgd_cross_observe(s, theta, nb, rows)));
  return s->est->ops->needs_observe ? s->est->ops->observe(s->est, theta, nb, rows) : NHGD_OK;
}

static const nhgd_split *val_rows_of(void *arg, int64_t k) {
  return nhgd_outer_val_rows(arg, k);
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
  c->val_rows = val_rows_of;
  c->val_rows_arg = s;
  c->samples = &s->samples;
  c->comm_bytes = &s->comm_bytes;
  c->comm_steps = &s->comm_steps;
  s->req.enabled = o->checkpoint_dir[0] != '\0';
  s->req.every_seconds = o->checkpoint_seconds;
  s->req.every_inner = o->checkpoint_every_inner;
  s->req.halt_after = o->halt_after;
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
  NHGD_CHECK(nhgd_outer_check_val_batch(s->opt, pb->name, data));
  NHGD_CHECK(solver_alloc(s));
  NHGD_CHECK(nhgd_cross_init(s));
  bind(s);
  return pb->ops.init(pb, s->inner.theta, s->v);
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
  s->solver_time = s->eval_time = 0.0;
  s->solver_running = 0;
  s->comm_steps = 0;
  s->inner.last_loss = s->inner.first_loss = s->prev_first_loss = NAN;
  s->t_start = MPI_Wtime();
  s->resume_path[0] = '\0';
  NHGD_CHECK(nhgd_error_agree(s->comm, s->pb->ops.init(s->pb, s->inner.theta, s->v)));
  memcpy(s->inner.theta_init, s->inner.theta, d);
  if (s->opt->v_from[0]) NHGD_CHECK(load_v(s, s->opt->v_from));
  memcpy(s->snap.v0, s->v, pl);
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
    int rc = NHGD_OK;
    if (s->opt->checkpoint_dir[0]) rc = nhgd_outer_setup_checkpoints(s, skip, &file);
    /* A checkpoint that was found but does not open (no /estimator, no /config) is skipped
     * below like one whose content is bad. */
    if (rc && !s->resume_path[0]) return nhgd_error_trace(rc, __FILE__, __LINE__);
    if (!rc) rc = start_from(s, file);
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

/* --efim-samples K takes K of a step's per-sample gradients. With full batches (--batch 0)
 * a step has one per training row, a number known only with the data: the option's own check
 * compares K with a --batch it is given. */
static int check_efim_samples(const nhgd_options *o, const nhgd_solver_opts *so,
                              const nhgd_data *data) {
  int64_t k = 0;
  const int64_t n = data->train.n_global;
  if (so->inner.batch > 0 || nhgd_options_get_int(o, "efim-samples", &k) || k <= n) return NHGD_OK;
  NHGD_FAIL(NHGD_ERR_ARG,
            "option --efim-samples %lld: a step has only %lld per-sample gradients (--batch 0: "
            "one per training row)",
            (long long)k, (long long)n);
}

int nhgd_solver_check_data(const nhgd_options *o, const nhgd_problem *pb) {
  const nhgd_solver_opts *so = nhgd_options_block(o, "solver");
  if (!so || !pb->data) return NHGD_OK; /* nhgd_solver_create says what is missing */
  NHGD_CHECK(nhgd_outer_check_val_batch(so, pb->name, pb->data));
  NHGD_CHECK(check_efim_samples(o, so, pb->data));
  return nhgd_cross_check(so, pb);
}

int nhgd_solver_create(MPI_Comm comm, const nhgd_options *o, const nhgd_data *data,
                       nhgd_problem *pb, nhgd_solver **out) {
  *out = NULL;
  NHGD_CHECK(nhgd_options_validate(o));
  const nhgd_solver_opts *so = nhgd_options_block(o, "solver");
  nhgd_log_init(comm, so ? so->log_level : NHGD_LOG_INFO);
  nhgd_options_warn_unused(o);
  nhgd_solver *s;
  int rc = nhgd_calloc(&s, 1, sizeof *s, "solver");
  NHGD_CHECK(nhgd_error_agree(comm, rc));
  s->comm = MPI_COMM_NULL;
  rc = create(s, comm, o, data, pb);
  NHGD_TRY(rc, nhgd_error_agree(comm, rc), fail);
  memcpy(s->inner.theta_init, s->inner.theta, (size_t)s->d * sizeof(double));
  if (s->opt->v_from[0]) NHGD_TRY(rc, load_v(s, s->opt->v_from), fail);
  memcpy(s->snap.v0, s->v, (size_t)s->p_local * sizeof(double));
  NHGD_TRY(rc, resume_or_start(s), fail);
  if (s->est->ops->needs_observe || s->cross.mode == NHGD_CROSS_TRAJECTORY) {
    s->inner.observe = observe_step;
    s->inner.observe_arg = s;
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

void nhgd_solver_destroy(nhgd_solver **ps) {
  if (!ps || !*ps) return;
  nhgd_solver *s = *ps;
  nhgd_estimator_destroy(&s->est);
  nhgd_grid_destroy(&s->ctx.grid);
  nhgd_ckpt_destroy(&s->ckpt);
  nhgd_inner_free(&s->inner);
  nhgd_cross_free(&s->cross);
  nhgd_outer_val_batch_free(s);
  rollback_state *b = &s->snap;
  double **bufs[] = {&s->u,      &s->gval,   &s->buf,   &s->v,  &s->h,  &s->jt,
                     &s->adam_m, &s->adam_s, &b->theta, &b->u,  &b->v,  &b->m,
                     &b->s,      &b->h,      &b->vp,    &b->mp, &b->sp, &b->v0};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
    nhgd_free(bufs[i]);
  nhgd_history_free(&s->hist);
  nhgd_options_destroy(&s->options);
  if (s->comm != MPI_COMM_NULL) MPI_Comm_free(&s->comm);
  nhgd_free(ps);
}
