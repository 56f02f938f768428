/* --precond: the option block and, for now, only `none` (the nhgd preconditioner is being
 * built; asking for it is refused with a message). */
#include "estimators/precond.h"

#include <stddef.h>
#include <string.h>

#include "core/util.h"

typedef struct precond_opts {
  char kind[8]; /* none | nhgd */
} precond_opts;

int nhgd_precond_create(nhgd_est_ctx *c, nhgd_section *resume, const char *who,
                        nhgd_precond **out) {
  (void)resume;
  *out = NULL;
  const precond_opts *o = nhgd_options_block(c->options, "precond");
  if (!o || !strcmp(o->kind, "none")) return NHGD_OK;
  NHGD_FAIL(NHGD_ERR_ARG, "%s: --precond %s is not available in this build", who, o->kind);
}

void nhgd_precond_destroy(nhgd_precond **p) {
  *p = NULL;
}

int nhgd_precond_begin(nhgd_precond *p, int64_t k, const double *theta0) {
  (void)p, (void)k, (void)theta0;
  return NHGD_OK;
}

int nhgd_precond_observe(nhgd_precond *p, const double *theta, int nb, const int *rows) {
  (void)p, (void)theta, (void)nb, (void)rows;
  return NHGD_OK;
}

int nhgd_precond_apply(nhgd_precond *p, const double *theta, const double *x, double *out) {
  (void)p, (void)theta, (void)x, (void)out;
  NHGD_FAIL(NHGD_ERR_INTERNAL, "precond: no preconditioner");
}

int nhgd_precond_save(nhgd_precond *p, nhgd_section *sec) {
  (void)p, (void)sec;
  return NHGD_OK;
}

int nhgd_precond_load(nhgd_precond *p, nhgd_section *sec, int64_t k) {
  (void)p, (void)sec, (void)k;
  return NHGD_OK;
}

int nhgd_precond_load_kept(nhgd_precond *p, nhgd_section *sec) {
  (void)p, (void)sec;
  return NHGD_OK;
}

void nhgd_precond_advice(const nhgd_precond *p, char *buf, size_t len) {
  (void)p;
  if (len) buf[0] = '\0';
}

#define F(field) offsetof(precond_opts, field), sizeof(((precond_opts *)0)->field)
static const nhgd_option_spec precond_specs[] = {
    {"precond", NHGD_OPT_CHOICE, F(kind), "none", 1, 0, "none|nhgd",
     "cg, nbo: precondition the Hessian systems by NHGD's M of the same run, started from "
     "M^-1 b (none: plain)",
     NHGD_OPT_TRAJECTORY},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F

static const nhgd_option_scope precond_scopes[] = {{NULL, "estimator=cg|nbo"}, {NULL, NULL}};
const nhgd_option_block nhgd_precond_options = {"precond", precond_specs, sizeof(precond_opts),
                                                NULL, precond_scopes};
