/* Estimator registry: maps --estimator names to implementations. */
#include <string.h>

#include "core/util.h"
#include "estimators/baseline.h"
#include "outer/engine.h"

typedef int (*nhgd_estimator_init_fn)(nhgd_estimator *est, nhgd_engine *e);

static const struct {
  const char *name;
  nhgd_estimator_init_fn init;
} registry[] = {{"exact", nhgd_estimator_exact_init}, {"nhgd", nhgd_estimator_nhgd_init},
                {"cg", nhgd_estimator_cg_init},       {"neumann", nhgd_estimator_neumann_init},
                {"soba", nhgd_estimator_soba_init},   {"none", nhgd_estimator_none_init}};

int nhgd_estimator_create(nhgd_engine *e, nhgd_estimator **out) {
  *out = NULL;
  for (size_t i = 0; i < sizeof registry / sizeof registry[0]; ++i) {
    if (strcmp(registry[i].name, e->opt.estimator) != 0) continue;
    nhgd_estimator *est;
    NHGD_CHECK(nhgd_calloc(&est, 1, sizeof *est, "estimator"));
    est->name = registry[i].name;
    int rc = registry[i].init(est, e);
    rc = nhgd_error_agree(e->comm, rc);
    if (rc) {
      nhgd_estimator_destroy(&est);
      return nhgd_error_trace(rc, __FILE__, __LINE__);
    }
    *out = est;
    return NHGD_OK;
  }
  NHGD_FAIL(NHGD_ERR_ARG, "unknown estimator '%s'", e->opt.estimator);
}

void nhgd_estimator_destroy(nhgd_estimator **est) {
  if (!est || !*est) return;
  if ((*est)->destroy) (*est)->destroy(*est);
  nhgd_free(est);
}
