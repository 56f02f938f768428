/* Registry of the built-in problems and their parameters (the problem option block). */
#include "problems/builtin.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "nhgd/errors.h"

void nhgd_problem_params_default(nhgd_problem_params *pp) {
  if (!pp) return;
  pp->noise_sigma = 1.0;
  pp->clean_reg = 1e-3;
  pp->v_init = 0.0;
  snprintf(pp->hidden, sizeof pp->hidden, "256");
  pp->activation = NHGD_ACT_TANH;
  pp->init_seed = 0;
  pp->gauss_newton = 0;
  pp->distill_per_class = 1;
  pp->distill_mlp = 0;
}

/* The problem block of the run options: which problem, and its parameters. */
typedef struct problem_opts {
  char name[32];
  nhgd_problem_params pp;
  char activation[8];
  char hvp[16];
  char distill_model[8];
} problem_opts;

#define F(field) offsetof(problem_opts, field), sizeof(((problem_opts *)0)->field)
static const nhgd_option_spec problem_specs[] = {
    {"problem", NHGD_OPT_CHOICE, F(name), "hyperclean", 1, 0,
     "ridge|logreg|hyperclean|mlp-hyperclean|mlp-hpo|distill", "bilevel problem",
     NHGD_OPT_TRAJECTORY},
    {"noise-sigma", NHGD_OPT_REAL, F(pp.noise_sigma), "1", 1e-150, 1e150, NULL,
     "ridge: noise standard deviation sigma of the likelihood (the loss divides by sigma^2, "
     "which must stay a double and not vanish)",
     NHGD_OPT_TRAJECTORY},
    {"clean-reg", NHGD_OPT_REAL, F(pp.clean_reg), "1e-3", 0, 1e300, NULL,
     "hyperclean, mlp-hyperclean, distill: r in the regulariser r ||theta||^2",
     NHGD_OPT_TRAJECTORY},
    {"v-init", NHGD_OPT_REAL, F(pp.v_init), "0", -1e6, 1e6, NULL,
     "initial value of every entry of v", NHGD_OPT_TRAJECTORY},
    {"hidden", NHGD_OPT_STR, F(pp.hidden), "256", 1, 0, NULL,
     "mlp-* and distill with the mlp model: widths of the hidden layers, comma-separated (e.g. "
     "256,128)",
     NHGD_OPT_TRAJECTORY},
    {"activation", NHGD_OPT_CHOICE, F(activation), "tanh", 1, 0, "tanh|relu",
     "mlp-*: activation of the hidden layers", NHGD_OPT_TRAJECTORY},
    {"distill-per-class", NHGD_OPT_I64, F(pp.distill_per_class), "1", 1, 1e9, NULL,
     "distill: synthetic images per class (the outer variable)", NHGD_OPT_TRAJECTORY},
    {"distill-model", NHGD_OPT_CHOICE, F(distill_model), "linear", 1, 0, "linear|mlp",
     "distill: the inner model trained on the synthetic images, a linear softmax or the network "
     "of --hidden and --activation",
     NHGD_OPT_TRAJECTORY},
    {"mlp-hvp", NHGD_OPT_CHOICE, F(hvp), "exact", 1, 0, "exact|gauss-newton",
     "mlp-*: Hessian-vector products (cg, neumann, soba, exact) by the exact R-operator or the "
     "Gauss-Newton product (positive semi-definite)",
     NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F

/* A network shape that cannot be built is a usage error, found before any data is read. */
static int problem_check(const void *block, const nhgd_options *all) {
  (void)all;
  const problem_opts *po = block;
  if (strncmp(po->name, "mlp-", 4) &&
      (strcmp(po->name, "distill") || strcmp(po->distill_model, "mlp")))
    return NHGD_OK;
  int widths[15], count;
  return nhgd_mlp_parse_hidden(po->pp.hidden, widths, 15, &count);
}

/* Which problems (and, for the products of a network, which estimators) read each option;
 * the others apply to every problem. */
#define NETWORK "problem=mlp-hyperclean|mlp-hpo;problem=distill,distill-model=mlp"
#define HVP_EST "estimator=cg|neumann|soba|exact"
static const nhgd_option_scope problem_scopes[] = {
    {"noise-sigma", "problem=ridge"},
    {"clean-reg", "problem=hyperclean|mlp-hyperclean|distill"},
    {"hidden,activation", NETWORK},
    {"distill-per-class,distill-model", "problem=distill"},
    {"mlp-hvp",
     "problem=mlp-hyperclean|mlp-hpo," HVP_EST ";problem=distill,distill-model=mlp," HVP_EST},
    {NULL, NULL}};
#undef NETWORK
#undef HVP_EST

const nhgd_option_block nhgd_problem_options = {"problem", problem_specs, sizeof(problem_opts),
                                                problem_check, problem_scopes};

typedef struct nhgd_problem_entry {
  const char *name;
  nhgd_task task;
  int (*setup)(nhgd_problem *pb);
  int kron; /* declares a Kronecker form: 1 of softmax per-sample gradients, 2 layer-wise */
} nhgd_problem_entry;

static const nhgd_problem_entry nhgd_problem_table[] = {
    {"ridge", NHGD_TASK_REGRESSION, nhgd_problem_setup_ridge, 0},
    {"logreg", NHGD_TASK_CLASSIFICATION, nhgd_problem_setup_logreg, 1},
    {"hyperclean", NHGD_TASK_CLASSIFICATION, nhgd_problem_setup_hyperclean, 1},
    {"mlp-hyperclean", NHGD_TASK_CLASSIFICATION, nhgd_problem_setup_mlp_hyperclean, 2},
    {"mlp-hpo", NHGD_TASK_CLASSIFICATION, nhgd_problem_setup_mlp_hpo, 2},
    {"distill", NHGD_TASK_CLASSIFICATION, nhgd_problem_setup_distill, 1},
};
#define NHGD_N_PROBLEMS ((int)(sizeof nhgd_problem_table / sizeof nhgd_problem_table[0]))
#define NHGD_KNOWN_PROBLEMS "ridge, logreg, hyperclean, mlp-hyperclean, mlp-hpo, distill"

static const char *task_name(nhgd_task t) {
  return t == NHGD_TASK_CLASSIFICATION ? "classification (class labels)"
                                       : "regression (real-valued targets)";
}

/* The callbacks index arrays without further checks, so a malformed hand-built data set must
 * be caught here rather than as an out-of-bounds read later. */
static int check_split(const char *pname, const nhgd_data *data, const nhgd_split *sp,
                       const char *sname) {
  if (sp->n_local < 0 || sp->n_global < sp->n_local)
    NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s has inconsistent row counts", pname, sname);
  if (sp->n_local == 0) return NHGD_OK;
  if (sp->m != data->m)
    NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s has %d features, the data %d", pname, sname,
              sp->m, data->m);
  if (!sp->X) NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s has no features", pname, sname);
  if (data->task == NHGD_TASK_CLASSIFICATION) {
    if (!sp->y_class)
      NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s has no class labels", pname, sname);
    for (int i = 0; i < sp->n_local; i++)
      if (sp->y_class[i] < 0 || sp->y_class[i] >= data->n_classes)
        NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s row %lld has label %d outside 0..%d",
                  pname, sname, (long long)(sp->lo + i), (int)sp->y_class[i], data->n_classes - 1);
  } else if (!sp->y_real) {
    NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': split %s has no regression targets", pname, sname);
  }
  return NHGD_OK;
}

/* The library's allocation of a problem, with room for its name. */
typedef struct problem_box {
  nhgd_problem pb;
  char name[64];
} problem_box;

static int problem_alloc(const char *name, nhgd_problem **out) {
  problem_box *box;
  if (strlen(name) >= sizeof box->name)
    NHGD_FAIL(NHGD_ERR_ARG, "problem name '%.40s...' is longer than %zu characters", name,
              sizeof box->name - 1);
  NHGD_CHECK(nhgd_calloc(&box, 1, sizeof *box, "problem"));
  memcpy(box->name, name, strlen(name) + 1);
  box->pb.name = box->name;
  *out = &box->pb;
  return NHGD_OK;
}

int nhgd_problem_create_custom(const char *name, const nhgd_data *data, const nhgd_problem_ops *ops,
                               size_t ops_size, void *ctx, nhgd_problem **out) {
  if (!out) NHGD_FAIL(NHGD_ERR_ARG, "nhgd_problem_create_custom: out is NULL");
  *out = NULL;
  if (!name || !name[0]) NHGD_FAIL(NHGD_ERR_ARG, "nhgd_problem_create_custom: no name given");
  if (!data) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': no data given", name);
  if (!ops || ops_size < sizeof(void (*)(void)))
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': no callback table given (ops_size %zu)", name, ops_size);
  /* A table from a newer header: only callbacks this library knows may be set. */
  for (size_t b = sizeof *ops; b < ops_size; ++b)
    if (((const unsigned char *)ops)[b])
      NHGD_FAIL(NHGD_ERR_ARG,
                "problem '%s': the callback table (%zu bytes) sets callbacks this library "
                "(%zu bytes) does not know: build against the installed nhgd headers",
                name, ops_size, sizeof *ops);
  nhgd_problem_ops own;
  memset(&own, 0, sizeof own);
  memcpy(&own, ops, ops_size < sizeof own ? ops_size : sizeof own);
  const char *missing = !own.init         ? "init"
                        : !own.inner_grad ? "inner_grad"
                        : !own.reg        ? "reg"
                        : !own.eval       ? "eval"
                        : !own.cross      ? "cross"
                                          : NULL;
  if (missing) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': callback %s is required", name, missing);
  if (!own.cross_keep != !own.cross_apply)
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': callbacks cross_keep and cross_apply come together",
              name);
  nhgd_problem *pb;
  NHGD_CHECK(problem_alloc(name, &pb));
  pb->ctx = ctx;
  pb->data = data;
  pb->ops = own;
  *out = pb;
  return NHGD_OK;
}

int nhgd_problem_create(const char *name, const nhgd_data *data, const nhgd_problem_params *pp,
                        nhgd_problem **out) {
  if (!out) NHGD_FAIL(NHGD_ERR_ARG, "nhgd_problem_create: out is NULL");
  *out = NULL;
  if (!name)
    NHGD_FAIL(NHGD_ERR_ARG, "no problem name given (known problems: " NHGD_KNOWN_PROBLEMS ")");
  if (!data) NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': no data given", name);
  const nhgd_problem_entry *e = NULL;
  for (int k = 0; k < NHGD_N_PROBLEMS; k++)
    if (strcmp(name, nhgd_problem_table[k].name) == 0) e = &nhgd_problem_table[k];
  if (!e)
    NHGD_FAIL(NHGD_ERR_ARG, "unknown problem '%s' (known problems: " NHGD_KNOWN_PROBLEMS ")", name);

  const char *where = data->path[0] ? data->path : "given";
  if (data->task != e->task)
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s' needs %s data, but the %s data is a %s task", e->name,
              e->task == NHGD_TASK_CLASSIFICATION ? "classification" : "regression", where,
              task_name(data->task));
  if (data->m < 1) NHGD_FAIL(NHGD_ERR_DATA, "problem '%s': the data has no features", e->name);
  if (data->task == NHGD_TASK_CLASSIFICATION && data->n_classes < 2)
    NHGD_FAIL(NHGD_ERR_DATA, "problem '%s' needs at least 2 classes, the %s data has %d", e->name,
              where, data->n_classes);
  NHGD_CHECK(check_split(e->name, data, &data->train, "train"));
  NHGD_CHECK(check_split(e->name, data, &data->val, "val"));
  if (data->has_test) NHGD_CHECK(check_split(e->name, data, &data->test, "test"));

  nhgd_problem_params defaults;
  nhgd_problem_params_default(&defaults);
  if (!pp) pp = &defaults;
  if (!(isfinite(pp->noise_sigma) && pp->noise_sigma > 0))
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': noise_sigma must be positive and finite, got %g",
              e->name, pp->noise_sigma);
  if (!(isfinite(pp->clean_reg) && pp->clean_reg >= 0))
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': clean_reg must be >= 0 and finite, got %g", e->name,
              pp->clean_reg);
  if (pp->activation != NHGD_ACT_TANH && pp->activation != NHGD_ACT_RELU)
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': unknown activation %d (tanh %d, relu %d)", e->name,
              pp->activation, NHGD_ACT_TANH, NHGD_ACT_RELU);
  if (!isfinite(pp->v_init))
    NHGD_FAIL(NHGD_ERR_ARG, "problem '%s': v_init must be finite, got %g", e->name, pp->v_init);

  nhgd_problem *pb = NULL;
  nhgd_pb_ctx *ctx = NULL;
  int rc = NHGD_OK;
  NHGD_TRY(rc, problem_alloc(e->name, &pb), fail);
  NHGD_TRY(rc, nhgd_calloc(&ctx, 1, sizeof *ctx, "problem state"), fail);
  ctx->sigma = pp->noise_sigma;
  ctx->clean_reg = pp->clean_reg;
  ctx->v_init = pp->v_init;
  snprintf(ctx->hidden, sizeof ctx->hidden, "%s", pp->hidden);
  ctx->activation = pp->activation;
  ctx->init_seed = pp->init_seed;
  ctx->gauss_newton = pp->gauss_newton != 0;
  ctx->distill_per_class = pp->distill_per_class;
  ctx->distill_mlp = pp->distill_mlp != 0;
  ctx->s.m = data->m;
  ctx->s.C = data->task == NHGD_TASK_CLASSIFICATION ? data->n_classes : 1;
  pb->ctx = ctx;
  pb->data = data;
  pb->ops.destroy = nhgd_pb_destroy_ctx;
  ctx = NULL;
  NHGD_TRY(rc, e->setup(pb), fail);
  *out = pb;
  return NHGD_OK;
fail:
  nhgd_free(&ctx);
  nhgd_problem_destroy(&pb);
  return rc;
}

void nhgd_problem_destroy(nhgd_problem **pb) {
  if (!pb || !*pb) return;
  if ((*pb)->ops.destroy) (*pb)->ops.destroy(*pb);
  problem_box *box = (problem_box *)*pb;
  nhgd_free(&box);
  *pb = NULL;
}

int nhgd_problem_builtin_kron(const char *name) {
  for (int i = 0; i < NHGD_N_PROBLEMS; ++i)
    if (!strcmp(nhgd_problem_table[i].name, name)) return nhgd_problem_table[i].kron;
  return -1;
}

int nhgd_problem_create_from_options(const nhgd_options *o, const nhgd_data *data,
                                     nhgd_problem **out) {
  const problem_opts *po = nhgd_options_block(o, "problem");
  if (!po)
    NHGD_FAIL(NHGD_ERR_ARG, "the options have no problem block (use nhgd_options_create_run)");
  nhgd_problem_params pp = po->pp;
  pp.activation = strcmp(po->activation, "relu") ? NHGD_ACT_TANH : NHGD_ACT_RELU;
  pp.gauss_newton = !strcmp(po->hvp, "gauss-newton");
  pp.distill_mlp = !strcmp(po->distill_model, "mlp");
  /* The network's initialisation follows the run's seed. */
  int64_t seed = 0;
  if (!nhgd_options_get_int(o, "seed", &seed)) pp.init_seed = (uint64_t)seed;
  return nhgd_problem_create(po->name, data, &pp, out);
}
