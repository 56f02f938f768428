/* Estimator registry: --estimator names, their option blocks and constructors; the grid,
 * batch and memory helpers of the estimator context. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/estimator.h"
#include "estimators/precond.h"

static const nhgd_estimator_desc *const registry[] = {
    &nhgd_estimator_nhgd, &nhgd_estimator_exact, &nhgd_estimator_cg,  &nhgd_estimator_neumann,
    &nhgd_estimator_soba, &nhgd_estimator_nbo,   &nhgd_estimator_none};
#define NREG (sizeof registry / sizeof registry[0])

const char *nhgd_estimator_names(void) {
  static char names[256];
  if (!names[0])
    for (size_t i = 0; i < NREG; ++i) {
      if (i) strcat(names, "|");
      strcat(names, registry[i]->name);
    }
  return names;
}

int nhgd_estimator_add_options(nhgd_options *o) {
  NHGD_CHECK(nhgd_options_add_block(o, &nhgd_hvp_options));
  NHGD_CHECK(nhgd_options_add_block(o, &nhgd_precond_options));
  for (size_t i = 0; i < NREG; ++i)
    if (registry[i]->options) NHGD_CHECK(nhgd_options_add_block(o, registry[i]->options));
  return NHGD_OK;
}

int nhgd_mem_budget(MPI_Comm comm, double mib, double *bytes) {
  double mine = mib * 1048576.0;
  if (mine <= 0.0) {
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      MPI_Comm_size(node, &local);
      MPI_Comm_free(&node);
    }
    double avail = nhgd_mem_available();
    if (avail <= 0.0) avail = 4.0 * 1073741824.0; /* unknown system: assume 4 GiB */
    mine = 0.9 * avail / local;
  }
  NHGD_MPI_CHECK(MPI_Allreduce(&mine, bytes, 1, MPI_DOUBLE, MPI_MIN, comm));
  return NHGD_OK;
}

int nhgd_est_check_memory(nhgd_est_ctx *c, const char *who, const char *what, double bytes,
                          const char *hint) {
  double mib = 0.0, budget = 0.0, most = bytes;
  if (c->options) nhgd_options_get_real(c->options, "mem-per-rank", &mib);
  NHGD_CHECK(nhgd_mem_budget(c->comm, mib, &budget));
  NHGD_MPI_CHECK(MPI_Allreduce(&bytes, &most, 1, MPI_DOUBLE, MPI_MAX, c->comm));
  nhgd_log(NHGD_LOG_DEBUG, "%s: %s need %.3f MiB per rank, %.3f MiB available", who, what,
           most / 1048576.0, budget / 1048576.0);
  if (most > budget)
    NHGD_FAIL(NHGD_ERR_MEM,
              "%s: %s need %.3g MiB per rank on %d ranks but %.3g MiB are available "
              "(--mem-per-rank%s); %s",
              who, what, most / 1048576.0, c->size, budget / 1048576.0,
              mib > 0.0 ? "" : " 0: 90% of MemAvailable over the ranks of a node", hint);
  return NHGD_OK;
}

void nhgd_est_hessian_advice(const nhgd_estimator *est, char *buf, size_t len) {
  const nhgd_est_ctx *c = est->ctx;
  const char *problem = c->pb->name;
  double r = 0.0;
  if (!strcmp(problem, "hyperclean") || !strcmp(problem, "mlp-hyperclean") ||
      !strcmp(problem, "distill")) {
    nhgd_options_get_real(c->options, "clean-reg", &r);
    snprintf(buf, len,
             "the Hessian of the inner objective is nearly singular here: raise --clean-reg "
             "(now %g), the curvature the regulariser adds",
             r);
  } else {
    snprintf(buf, len,
             "the Hessian of the inner objective is nearly singular here (problem %s: its "
             "regulariser exp(v) vanishes where v is very negative)",
             problem);
  }
}

int nhgd_est_grid(nhgd_est_ctx *c, nhgd_grid **g) {
  if (!c->grid) NHGD_CHECK(nhgd_grid_create(c->comm, c->grid_rows, &c->grid));
  *g = c->grid;
  return NHGD_OK;
}

int64_t nhgd_est_batch_rows(const nhgd_est_ctx *c) {
  return c->batch ? c->batch : c->data->train.n_global;
}

int nhgd_estimator_create(const char *name, const nhgd_options *o, nhgd_est_ctx *c,
                          nhgd_section *resume, nhgd_estimator **out) {
  *out = NULL;
  for (size_t i = 0; i < NREG; ++i) {
    const nhgd_estimator_desc *desc = registry[i];
    if (strcmp(desc->name, name) != 0) continue;
    nhgd_estimator *est;
    /* Agreed: every estimator's set-up is collective. */
    NHGD_CHECK(nhgd_error_agree(c->comm, nhgd_calloc(&est, 1, sizeof *est, "estimator")));
    est->name = desc->name;
    est->ctx = c;
    est->ops = &desc->ops;
    c->options = o;
    c->opt = desc->options ? nhgd_options_block(o, desc->options->name) : NULL;
    int rc = desc->state_size ? nhgd_calloc(&est->state, 1, desc->state_size, desc->name) : 0;
    /* Agreed: a failure on one rank must not leave the others in init's collectives. */
    rc = nhgd_error_agree(c->comm, rc);
    if (!rc && desc->init) rc = desc->init(est, c, resume);
    /* State that lives through an inner loop must be restartable: a checkpoint may come at
     * any inner step. */
    if (!rc && est->ops->needs_observe && (!est->ops->save || !est->ops->load))
      rc = nhgd_error_set(NHGD_ERR_INTERNAL, __FILE__, __LINE__,
                          "estimator %s observes the inner loop but cannot be checkpointed",
                          desc->name);
    rc = nhgd_error_agree(c->comm, rc);
    if (rc) {
      nhgd_estimator_destroy(&est);
      return nhgd_error_trace(rc, __FILE__, __LINE__);
    }
    *out = est;
    return NHGD_OK;
  }
  NHGD_FAIL(NHGD_ERR_ARG, "unknown estimator '%s'", name);
}

void nhgd_estimator_destroy(nhgd_estimator **est) {
  if (!est || !*est) return;
  if ((*est)->state && (*est)->ops->release) (*est)->ops->release(*est);
  nhgd_free(&(*est)->state);
  nhgd_free(est);
}
