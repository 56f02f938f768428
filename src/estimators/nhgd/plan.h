/* Choice of the EFIM route: cost model, memory budget, and the refusal of configurations
 * that do not fit. */
#ifndef NHGD_ESTIMATORS_NHGD_PLAN_H
#define NHGD_ESTIMATORS_NHGD_PLAN_H

#include <stdint.h>

#include "estimators/estimator.h"

enum {
  NHGD_ROUTE_ONLINE = 0,
  NHGD_ROUTE_ACCUMULATE,
  NHGD_ROUTE_GRAM,
  NHGD_ROUTE_DENSE,
  NHGD_ROUTE_KFAC,
  NHGD_ROUTE_COUNT
};

const char *nhgd_route_name(int route);

typedef struct nhgd_efim_plan {
  int route;
  double seconds[NHGD_ROUTE_COUNT];    /* predicted per outer step, per rank */
  double flops[NHGD_ROUTE_COUNT];      /* per rank */
  double bytes_comm[NHGD_ROUTE_COUNT]; /* received per rank per inner step */
  double bytes_mem[NHGD_ROUTE_COUNT];  /* per rank */
  int kfac_distributed;                /* kfac: A block-cyclic rather than replicated */
  double gemm_rate;                    /* calibrated flop/s of one rank */
  double budget;                       /* bytes available per rank */
} nhgd_efim_plan;

/* What the planner is told of the run besides its context. */
typedef struct nhgd_efim_request {
  const char *route;        /* auto | online | accumulate | gram | dense | kfac */
  const char *kfac_layout;  /* auto | replicated | distributed */
  double mem_per_rank;      /* MiB (0: from MemAvailable) */
  int kron;                 /* per-sample gradients in Kronecker form */
  const char *kfac_refusal; /* NULL when the kfac route applies, else why not */
  int64_t samples;          /* per-sample gradients of a step that feed F */
  int layered;              /* kfac: one Kronecker block per layer of a network (kfac_net.h) */
  int refresh;              /* kfac: outer steps one set of summed factors serves */
  int keep;                 /* a preconditioner: the solve's factorisation is kept for more
                               applications of M^{-1} in the same outer step */
} nhgd_efim_request;

/* Collective. Predict every route's cost for this run; choose the requested route, or with
 * auto: kfac when it applies (the Kronecker form exists and the damping is the same for
 * every class), else the cheapest route that fits the memory budget; log the prediction and
 * the choice. A configuration that fits nowhere is an NHGD_ERR_MEM error giving the bytes
 * needed, the budget and the smallest rank count that would fit. */
int nhgd_efim_plan_route(nhgd_est_ctx *c, const nhgd_efim_request *req, nhgd_efim_plan *plan);

#endif
