/* The run options: table of names, defaults, ranges and help; parsing and validation. */
#include "nhgd/options.h"

#include <stddef.h>
#include <string.h>

#include "core/optable.h"
#include "nhgd/errors.h"

#define F(field) offsetof(nhgd_options, field), sizeof(((nhgd_options *)0)->field)
#define NORANGE 1, 0

static const nhgd_opt_spec run_specs[] = {
    {"data", OPT_STR, F(data), "fashion_mnist.h5", NORANGE, NULL, "input HDF5 file"},
    {"problem", OPT_CHOICE, F(problem), "hyperclean", NORANGE, "ridge|logreg|hyperclean",
     "bilevel problem"},
    {"estimator", OPT_CHOICE, F(estimator), "nhgd", NORANGE, "nhgd|exact|cg|neumann|soba|none",
     "estimator of u = H^-1 grad_theta f (none: u = 0, plain inner SGD for timing baselines)"},
    {"output", OPT_STR, F(output), "nhgd_out.h5", NORANGE, NULL, "output HDF5 file"},
    {"metrics", OPT_STR, F(metrics), "", NORANGE, NULL,
     "JSON-lines metrics file, one line per outer step (\"\": none)"},
    {"v-from", OPT_STR, F(v_from), "", NORANGE, NULL,
     "start from /v of this HDF5 file (\"\": every entry = --v-init)"},
    {"outer-steps", OPT_I64, F(outer_steps), "30", 1, 1e12, NULL, "outer steps K"},
    {"outer-opt", OPT_CHOICE, F(outer_opt), "adam", NORANGE, "sgd|adam", "outer optimiser"},
    {"outer-lr", OPT_REAL, F(outer_lr), "0.1", 0, 1e12, NULL, "outer step size"},
    {"outer-schedule", OPT_CHOICE, F(outer_schedule), "const", NORANGE, "const|invsqrt|inv",
     "outer step-size schedule: lr, lr/sqrt(1+decay*k), lr/(1+decay*k)"},
    {"outer-decay", OPT_REAL, F(outer_decay), "0.1", 0, 1e12, NULL, "outer schedule decay"},
    {"adam-beta1", OPT_REAL, F(adam_beta1), "0.9", 0, 0.999999, NULL, "Adam beta1"},
    {"adam-beta2", OPT_REAL, F(adam_beta2), "0.999", 0, 0.99999999, NULL, "Adam beta2"},
    {"adam-eps", OPT_REAL, F(adam_eps), "1e-8", 1e-300, 1, NULL, "Adam epsilon"},
    {"inner-steps", OPT_I64, F(inner_steps), "20", 0, 1e12, NULL, "inner SGD steps T"},
    {"batch", OPT_I64, F(batch), "256", 0, 2147483647, NULL,
     "global minibatch size B, drawn with replacement (0: full batch, every row once)"},
    {"inner-lr", OPT_REAL, F(inner_lr), "0.1", 1e-300, 1e12, NULL, "inner step size"},
    {"inner-schedule", OPT_CHOICE, F(inner_schedule), "const", NORANGE, "const|inv|cosine",
     "inner step-size schedule: lr, lr/(1+decay*t), cosine from lr to 0 over T"},
    {"inner-decay", OPT_REAL, F(inner_decay), "0.01", 0, 1e12, NULL, "inner schedule decay"},
    {"warm-start", OPT_BOOL, F(warm_start), "1", NORANGE, NULL,
     "start each inner loop from the last theta (0: from the initial theta)"},
    {"noise-sigma", OPT_REAL, F(noise_sigma), "1", 1e-300, 1e300, NULL,
     "ridge: noise standard deviation sigma of the likelihood"},
    {"clean-reg", OPT_REAL, F(clean_reg), "1e-3", 0, 1e300, NULL,
     "hyperclean: r in the regulariser r ||W||^2"},
    {"v-init", OPT_REAL, F(v_init), "0", -1e6, 1e6, NULL, "initial value of every entry of v"},
    {"block-size", OPT_INT, F(block_size), "0", 0, 4096, NULL,
     "block-cyclic block size (0: automatic)"},
    {"grid-rows", OPT_INT, F(grid_rows), "0", 0, 1 << 20, NULL,
     "rows of the process grid (0: automatic, near-square)"},
    {"hess-chunk", OPT_INT, F(hess_chunk), "32", 1, 1 << 20, NULL,
     "training rows per rank per all-gather when forming the exact Hessian"},
    {"kron", OPT_BOOL, F(kron), "1", NORANGE, NULL,
     "use the Kronecker structure of softmax problems (0: generic per-sample factors)"},
    {"efim-route", OPT_CHOICE, F(efim_route), "auto", NORANGE, "auto|online|accumulate|gram|dense",
     "nhgd: how M^-1 g is kept (auto: cheapest by the cost model; dense: test reference)"},
    {"efim-damping", OPT_REAL, F(efim_damping), "0.01", 0, 1e300, NULL,
     "nhgd: lambda_F added to the diagonal D = Hess R + lambda_F I"},
    {"efim-weight-exp", OPT_REAL, F(efim_weight_exp), "1", 0, 16, NULL,
     "nhgd: per-sample Fisher weight c = w^exp of the inner sample weight w"},
    {"efim-mode", OPT_CHOICE, F(efim_mode), "mean", NORANGE, "mean|ema",
     "nhgd: F is the mean over the inner loop, or a moving average over its steps"},
    {"efim-beta", OPT_REAL, F(efim_beta), "0.9", -1e300, 1e300, NULL,
     "nhgd: moving-average factor, in (0, 1) (with --efim-mode ema)"},
    {"hvp-steps", OPT_INT, F(hvp_steps), "20", 1, 1 << 20, NULL,
     "cg: conjugate-gradient iterations Q; neumann: terms Q of the series"},
    {"hvp-batch", OPT_I64, F(hvp_batch), "0", 0, 2147483647, NULL,
     "training rows of the sampled Hessian (0: all rows): cg one draw per solve, neumann a fresh draw per term"},
    {"hvp-warm", OPT_BOOL, F(hvp_warm), "1", NORANGE, NULL,
     "cg: start from the previous outer step's u (0: from u = 0)"},
    {"neumann-eta", OPT_REAL, F(neumann_eta), "0.1", 1e-300, 1e12, NULL,
     "neumann: step eta of u = eta sum_q prod_j (I - eta H_j) g (needs eta < 2 / lambda_max(H))"},
    {"soba-rho", OPT_REAL, F(soba_rho), "0.05", 1e-300, 1e12, NULL,
     "soba: step rho of z -= rho (H_batch z - g) after every inner step (needs rho < 2 / "
     "lambda_max(H))"},
    {"cross-mode", OPT_CHOICE, F(cross_mode), "end", NORANGE, "end|average",
     "evaluate J at the last inner iterate or at the average of the inner iterates"},
    {"overlap", OPT_BOOL, F(overlap), "1", NORANGE, NULL,
     "nhgd: gather step t's per-sample gradients while SGD takes step t+1"},
    {"mem-per-rank", OPT_REAL, F(mem_per_rank), "0", 0, 1e12, NULL,
     "MiB of memory one rank may use (0: 90% of MemAvailable / ranks on the node)"},
    {"checkpoint-dir", OPT_STR, F(checkpoint_dir), "", NORANGE, NULL,
     "folder for checkpoints (\"\": no checkpoints; signals then end the run)"},
    {"checkpoint-every", OPT_INT, F(checkpoint_every), "1", 0, 1 << 30, NULL,
     "outer steps between checkpoints (0: only when stopped and at the end)"},
    {"checkpoint-every-inner", OPT_INT, F(checkpoint_every_inner), "0", 0, 1 << 30, NULL,
     "inner steps between checkpoints inside an inner loop (0: none)"},
    {"checkpoint-seconds", OPT_REAL, F(checkpoint_seconds), "0", 0, 1e9, NULL,
     "seconds between checkpoints, at the next inner step (0: off)"},
    {"keep", OPT_INT, F(keep), "3", 1, 1 << 20, NULL, "checkpoints kept in --checkpoint-dir"},
    {"restart", OPT_STR, F(restart), "auto", NORANGE, NULL,
     "auto: continue from the newest valid checkpoint in --checkpoint-dir; never: start "
     "afresh (refused if the folder holds checkpoints); or the path of one checkpoint"},
    {"halt-after", OPT_I64, F(halt_after), "0", 0, 1e15, NULL,
     "checkpoint and stop (exit 75) after this many inner steps of this process (0: never)"},
    {"seed", OPT_U64, F(seed), "0", NORANGE, NULL, "seed of the minibatch sampler"},
    {"eval-every", OPT_INT, F(eval_every), "1", 0, 1 << 30, NULL,
     "evaluate on the test split every this many outer steps (0: never)"},
    {"log-level", OPT_INT, F(log_level), "2", 0, 3, NULL, "0 error, 1 warn, 2 info, 3 debug"},
    {NULL, OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL}};

void nhgd_options_default(nhgd_options *o) {
  memset(o, 0, sizeof *o);
  nhgd_optable_defaults(run_specs, o);
}

int nhgd_options_parse(nhgd_options *o, int argc, char **argv, int *help) {
  if (help) *help = 0;
  const char *cfg = nhgd_optable_config_path(argc, argv, "NHGD_CONFIG");
  if (cfg && *cfg) NHGD_CHECK(nhgd_optable_file(run_specs, o, cfg));
  NHGD_CHECK(nhgd_optable_env(run_specs, o, "NHGD_"));
  NHGD_CHECK(nhgd_optable_argv(run_specs, o, argc, argv, help));
  return NHGD_OK;
}

int nhgd_options_validate(const nhgd_options *o) {
  if (!o->data[0]) NHGD_FAIL(NHGD_ERR_ARG, "option --data: an input file is required");
  if (!o->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "option --output: an output file is required");
  if (!o->checkpoint_dir[0] && o->halt_after > 0)
    NHGD_FAIL(NHGD_ERR_ARG, "option --halt-after needs --checkpoint-dir (nothing to resume from)");
  if (!strcmp(o->efim_mode, "ema") && !(o->efim_beta > 0.0 && o->efim_beta < 1.0))
    NHGD_FAIL(NHGD_ERR_ARG,
              "option --efim-beta %g: the moving average needs beta in (0, 1): the recursive "
              "inverse update divides by beta (beta = 0 divides by zero and keeps only the last "
              "step), and beta = 1 never lets a sample in",
              o->efim_beta);
  return NHGD_OK;
}

void nhgd_options_help(FILE *out) {
  nhgd_optable_help(run_specs, out);
}

void nhgd_options_foreach(const nhgd_options *o,
                          void (*fn)(const char *name, const char *value, void *arg), void *arg) {
  char buf[NHGD_PATH_MAX + 64];
  for (const nhgd_opt_spec *s = run_specs; s->name; ++s) {
    nhgd_optable_format(s, o, buf, sizeof buf);
    fn(s->name, buf, arg);
  }
}
