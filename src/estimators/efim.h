/* Choice of the EFIM route: cost model, memory budget, and the refusal of configurations
 * that do not fit. */
#ifndef NHGD_ESTIMATORS_EFIM_H
#define NHGD_ESTIMATORS_EFIM_H

#include <stdint.h>

#include "estimators/estimator.h"

/* The option block of the nhgd estimator (its table is in nhgd.c). */
typedef struct nhgd_efim_opts {
  char route[16];      /* auto | online | accumulate | gram | dense */
  double damping;      /* lambda_F added to D */
  double weight_exp;   /* c_s = w_s^exp */
  char mode[8];        /* mean | ema */
  double beta;         /* ema: in (0, 1) */
  int overlap;         /* fold step t into the EFIM while SGD takes step t+1 */
  double mem_per_rank; /* MiB a rank may use (0: from MemAvailable) */
} nhgd_efim_opts;

enum {
  NHGD_ROUTE_ONLINE = 0,
  NHGD_ROUTE_ACCUMULATE,
  NHGD_ROUTE_GRAM,
  NHGD_ROUTE_DENSE,
  NHGD_ROUTE_COUNT
};

const char *nhgd_route_name(int route);

typedef struct nhgd_efim_plan {
  int route;
  double seconds[NHGD_ROUTE_COUNT];    /* predicted per outer step, per rank */
  double flops[NHGD_ROUTE_COUNT];      /* per rank */
  double bytes_comm[NHGD_ROUTE_COUNT]; /* received per rank per inner step */
  double bytes_mem[NHGD_ROUTE_COUNT];  /* per rank */
  double gemm_rate;                    /* calibrated flop/s of one rank */
  double budget;                       /* bytes available per rank */
} nhgd_efim_plan;

/* Collective. Predict every route's cost for this run; choose the route named by route
 * (auto: the cheapest that fits the memory budget); log the prediction and the choice. A
 * configuration that fits nowhere is an NHGD_ERR_MEM error giving the bytes needed, the
 * budget and the smallest rank count that would fit. */
int nhgd_efim_plan_route(nhgd_est_ctx *c, const nhgd_efim_opts *o, const char *route, int kron,
                         nhgd_efim_plan *plan);

/* Collective. Bytes of memory one rank may use: mib or, when 0, 90 % of MemAvailable divided
 * by the ranks on this node. Equal on all ranks (the minimum). */
int nhgd_mem_budget(MPI_Comm comm, double mib, double *bytes);

#endif
