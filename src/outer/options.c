/* The solver's option block (--estimator, the outer and inner loops, checkpoints,
 * divergence) and the option set of a run: the problems', the solver's and every
 * estimator's blocks. */
#include <stddef.h>
#include <string.h>

#include "estimators/estimator.h"
#include "outer/options.h"
#include "problems/builtin.h"

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
    {"outer-opt", NHGD_OPT_CHOICE, F(outer_opt), "adam", NORANGE, "sgd|adam|lazy-adam",
     "outer optimiser (lazy-adam: Adam that leaves the entries of v with a zero hypergradient "
     "and their moments untouched)",
     TRAJ},
    {"outer-lr", NHGD_OPT_REAL, F(outer_lr), "0.1", 0, 1e12, NULL, "outer step size", TRAJ},
    {"outer-schedule", NHGD_OPT_CHOICE, F(outer_schedule), "const", NORANGE, "const|invsqrt|inv",
     "outer step-size schedule: lr, lr/sqrt(1+decay*k), lr/(1+decay*k)", TRAJ},
    {"outer-decay", NHGD_OPT_REAL, F(outer_decay), "0.1", 0, 1e12, NULL, "outer schedule decay",
     TRAJ},
    {"adam-beta1", NHGD_OPT_REAL, F(adam_beta1), "0.9", 0, 1, NULL, "Adam beta1",
     TRAJ | NHGD_OPT_MAX_OPEN},
    {"adam-beta2", NHGD_OPT_REAL, F(adam_beta2), "0.999", 0, 1, NULL, "Adam beta2",
     TRAJ | NHGD_OPT_MAX_OPEN},
    {"adam-eps", NHGD_OPT_REAL, F(adam_eps), "1e-8", 0, 1, NULL, "Adam epsilon",
     TRAJ | NHGD_OPT_MIN_OPEN},
    {"inner-steps", NHGD_OPT_I64, F(inner.steps), "20", 0, 1e12, NULL, "inner SGD steps T", TRAJ},
    {"batch", NHGD_OPT_I64, F(inner.batch), "256", 0, 2147483647, NULL,
     "global minibatch size B, drawn with replacement (0: full batch, every row once)", TRAJ},
    {"val-batch", NHGD_OPT_I64, F(val_batch), "0", 0, 2147483647, NULL,
     "validation rows drawn without replacement at each outer step for grad_theta f and "
     "val_loss (0: every validation row)",
     TRAJ},
    {"inner-lr", NHGD_OPT_REAL, F(inner.lr), "0.1", 0, 1e12, NULL, "inner step size",
     TRAJ | NHGD_OPT_MIN_OPEN},
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
    {"cross-rows", NHGD_OPT_CHOICE, F(cross_rows), "all", NORANGE, "all|trajectory|end",
     "training rows of the cross term J^T u for per-row v (hyperclean, mlp-hyperclean): all "
     "(one pass over every row), trajectory (the rows inner SGD drew, at the iterates it drew "
     "them) or end (--cross-samples rows drawn at the last iterate); unbiased estimates",
     TRAJ},
    {"cross-samples", NHGD_OPT_I64, F(cross_samples), "4096", 1, 1e12, NULL,
     "rows drawn without replacement for --cross-rows end (at most the training rows)", TRAJ},
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
     "evaluate on the test split (and, with --val-batch, on every validation row) every this "
     "many outer steps (0: never)",
     0},
    {"log-level", NHGD_OPT_INT, F(log_level), "2", 0, 3, NULL, "0 error, 1 warn, 2 info, 3 debug",
     0},
    {"divergence-factor", NHGD_OPT_REAL, F(divergence_factor), "1e6", 0, 1e300, NULL,
     "stop (exit 1, the last checkpoint kept) when the validation loss is not finite or above "
     "this multiple of its value at the first outer step (with --val-batch: the loss on the rows "
     "drawn against the first step's on every row; 0: only when not finite)",
     0},
    {"on-divergence", NHGD_OPT_CHOICE, F(on_divergence), "stop", NORANGE, "stop|halve",
     "on divergence stop (exit 1), or roll back to the start of the outer step (or before the "
     "outer step that moved v too far) and halve the step size blamed (--outer-lr if the inner "
     "loop runs well with the previous v, else --inner-lr; no rollback when older outer steps "
     "moved v too far)",
     0},
    {"divergence-retries", NHGD_OPT_INT, F(divergence_retries), "3", 0, 1 << 20, NULL,
     "rollbacks allowed in a run with --on-divergence halve; the next divergence stops it", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F
#undef NORANGE
#undef TRAJ

/* Options that only one setting of another reads. */
static const nhgd_option_scope solver_scopes[] = {
    {"adam-beta1,adam-beta2,adam-eps", "outer-opt=adam|lazy-adam"},
    {"outer-decay", "outer-schedule=invsqrt|inv"},
    {"inner-decay", "inner-schedule=inv"},
    {"divergence-retries", "on-divergence=halve"},
    {"cross-samples", "cross-rows=end"},
    {NULL, NULL}};

static int solver_check(const void *block, const nhgd_options *all) {
  const nhgd_solver_opts *o = block;
  if (strcmp(o->cross_rows, "all") && !strcmp(o->cross_mode, "average"))
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --cross-rows %s cannot go with --cross-mode average: the sampled cross "
              "term is taken at the iterates the rows were drawn at (trajectory) or at the last "
              "one (end); use --cross-mode end, or --cross-rows all to average the iterates",
              o->cross_rows);
  if (!strcmp(o->cross_rows, "trajectory") && o->inner.steps == 0)
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --cross-rows trajectory needs inner steps to draw rows from (--inner-steps "
              "is 0): use --cross-rows end or all");
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
                                          solver_check, solver_scopes};
  NHGD_CHECK(nhgd_options_create(out));
  int rc = nhgd_options_add_block(*out, &nhgd_problem_options);
  if (!rc) rc = nhgd_options_add_block(*out, &solver_block);
  if (!rc) rc = nhgd_estimator_add_options(*out);
  if (rc) nhgd_options_destroy(out);
  return rc;
}
