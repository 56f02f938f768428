/* --precond: the option block, and NHGD's M as a preconditioner: an nhgd estimator over a
 * private copy of the host estimator's context, fed by the host's begin and observe calls,
 * its solve the first application of M^{-1} in an outer step and nhgd_efim_reapply the later
 * ones. */
#include "estimators/precond.h"

#include <stddef.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/nhgd/nhgd.h"

#define NHGD_PRECOND_MEMO 2

typedef struct precond_opts {
  char kind[8]; /* none | nhgd */
} precond_opts;

struct nhgd_precond {
  /* The host's context with the nhgd block as its options, its own process grid, and its
   * inner steps counted apart: the host counts the steps its traffic covers, once. */
  nhgd_est_ctx ctx;
  int64_t steps;
  nhgd_estimator *est;
  int solved; /* M of the current outer step is complete (its first application is done) */
  /* The applications of the current outer step kept for a repeat: a solver that starts from
   * M^{-1} b and then hands b to the kernel (whose first z is M^{-1} b again) pays once. */
  int64_t d;
  int nmemo, next;
  double *memo_x[NHGD_PRECOND_MEMO], *memo_y[NHGD_PRECOND_MEMO];
};

int nhgd_precond_create(nhgd_est_ctx *c, nhgd_section *resume, const char *who,
                        nhgd_precond **out) {
  *out = NULL;
  const precond_opts *o = c->options ? nhgd_options_block(c->options, "precond") : NULL;
  if (!o || !strcmp(o->kind, "none")) return NHGD_OK;
  nhgd_precond *p;
  /* Agreed: the estimator's set-up below is collective. */
  NHGD_CHECK(nhgd_error_agree(c->comm, nhgd_calloc(&p, 1, sizeof *p, "preconditioner")));
  p->d = c->d;
  for (int i = 0; i < NHGD_PRECOND_MEMO; ++i) {
    int rc = nhgd_calloc(&p->memo_x[i], (size_t)c->d, sizeof(double), "preconditioner memo");
    if (!rc) rc = nhgd_calloc(&p->memo_y[i], (size_t)c->d, sizeof(double), "preconditioner memo");
    rc = nhgd_error_agree(c->comm, rc);
    if (rc) {
      nhgd_precond_destroy(&p);
      return nhgd_error_trace(rc, __FILE__, __LINE__);
    }
  }
  p->ctx = *c;
  p->ctx.grid = NULL;
  p->ctx.precond = 1;
  p->ctx.comm_steps = &p->steps;
  nhgd_log(NHGD_LOG_INFO,
           "%s: preconditioned by NHGD's M of the same run (--precond nhgd: its --efim-* and "
           "--kfac-* options apply)",
           who);
  int rc = nhgd_estimator_create("nhgd", c->options, &p->ctx, resume, &p->est);
  if (rc) {
    nhgd_precond_destroy(&p);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  *out = p;
  return NHGD_OK;
}

void nhgd_precond_destroy(nhgd_precond **p) {
  if (!p || !*p) return;
  nhgd_estimator_destroy(&(*p)->est);
  for (int i = 0; i < NHGD_PRECOND_MEMO; ++i) {
    nhgd_free(&(*p)->memo_x[i]);
    nhgd_free(&(*p)->memo_y[i]);
  }
  nhgd_grid_destroy(&(*p)->ctx.grid);
  nhgd_free(p);
}

int nhgd_precond_begin(nhgd_precond *p, int64_t k, const double *theta0) {
  p->solved = p->nmemo = p->next = 0;
  return p->est->ops->begin(p->est, k, theta0);
}

int nhgd_precond_observe(nhgd_precond *p, const double *theta, int nb, const int *rows) {
  return p->est->ops->observe(p->est, theta, nb, rows);
}

int nhgd_precond_apply(nhgd_precond *p, const double *theta, const double *x, double *out) {
  const size_t bytes = (size_t)p->d * sizeof(double);
  /* x is replicated, so every rank finds the same entry (or none) and takes the same path. */
  for (int i = 0; i < p->nmemo; ++i)
    if (!memcmp(p->memo_x[i], x, bytes)) {
      memcpy(out, p->memo_y[i], bytes);
      return NHGD_OK;
    }
  if (p->solved) {
    NHGD_CHECK(nhgd_efim_reapply(p->est, x, out));
  } else {
    NHGD_CHECK(p->est->ops->solve(p->est, theta, x, out));
    p->solved = 1;
  }
  memcpy(p->memo_x[p->next], x, bytes);
  memcpy(p->memo_y[p->next], out, bytes);
  p->next = (p->next + 1) % NHGD_PRECOND_MEMO;
  if (p->nmemo < NHGD_PRECOND_MEMO) ++p->nmemo;
  return NHGD_OK;
}

int nhgd_precond_save(nhgd_precond *p, nhgd_section *sec) {
  return p->est->ops->save(p->est, sec);
}

int nhgd_precond_load(nhgd_precond *p, nhgd_section *sec, int64_t k) {
  p->solved = p->nmemo = p->next = 0;
  return p->est->ops->load(p->est, sec, k);
}

int nhgd_precond_load_kept(nhgd_precond *p, nhgd_section *sec) {
  p->solved = p->nmemo = p->next = 0;
  return p->est->ops->load_kept(p->est, sec);
}

void nhgd_precond_advice(const nhgd_precond *p, char *buf, size_t len) {
  if (len) buf[0] = '\0';
  if (p && p->est->ops->advice) p->est->ops->advice(p->est, buf, len);
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
