/* EFIM route planning: a flop and byte model per route, calibrated by one timed DGEMM. */
#include "estimators/nhgd/plan.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "estimators/nhgd/kfac.h"
#include "estimators/nhgd/kfac_net.h"

/* Network bandwidth assumed by the model (bytes/s per rank): only the ratio to the DGEMM rate
 * matters, and the routes' communication differs by orders of magnitude. */
#define NHGD_MODEL_BANDWIDTH 2.0e9
/* ScaLAPACK's Cholesky runs at about half the DGEMM rate on these block sizes. */
#define NHGD_MODEL_CHOLESKY_EFFICIENCY 0.5

static const char *const route_names[NHGD_ROUTE_COUNT] = {"online", "accumulate", "gram", "dense",
                                                          "kfac"};

const char *nhgd_route_name(int route) {
  return route >= 0 && route < NHGD_ROUTE_COUNT ? route_names[route] : "?";
}

/* DGEMM rate of one rank, agreed (minimum) over ranks so all make the same choice. */
static int calibrate(MPI_Comm comm, double *rate) {
  const int n = 384;
  double *a = NULL, *c = NULL;
  int rc = nhgd_calloc(&a, (size_t)n * n, sizeof(double), "calibration");
  if (!rc) rc = nhgd_calloc(&c, (size_t)n * n, sizeof(double), "calibration");
  /* Agreed: a rank that failed here must not meet the others' allreduce below with its
   * agreement on the failure (the fault sweep found that hang at 2 ranks). */
  rc = nhgd_error_agree(comm, rc);
  if (rc) {
    nhgd_free(&a);
    nhgd_free(&c);
    return rc;
  }
  for (int i = 0; i < n * n; ++i)
    a[i] = 1.0 / (1 + i % 7);
  double best = INFINITY;
  for (int rep = 0; rep < 3; ++rep) {
    double t0 = MPI_Wtime();
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, a, n, 0.0, c, n);
    double dt = MPI_Wtime() - t0;
    if (dt < best) best = dt;
  }
  nhgd_free(&a);
  nhgd_free(&c);
  double mine = 2.0 * n * n * (double)n / (best > 1e-9 ? best : 1e-9);
  NHGD_MPI_CHECK(MPI_Allreduce(&mine, rate, 1, MPI_DOUBLE, MPI_MIN, comm));
  return NHGD_OK;
}

static int route_of(const char *name) {
  for (int r = 0; r < NHGD_ROUTE_COUNT; ++r)
    if (!strcmp(name, route_names[r])) return r;
  return -1;
}

int nhgd_efim_plan_route(nhgd_est_ctx *c, const nhgd_efim_request *req, nhgd_efim_plan *plan) {
  const int kron = req->kron;
  memset(plan, 0, sizeof *plan);
  const double P = c->size, d = (double)c->d, T = (double)c->inner_steps;
  const double B = (double)req->samples; /* of each step's minibatch, those feeding F */
  const double N = T * B;
  const double m = kron ? c->pb->kron_m : 0, C = kron ? c->pb->kron_c : 0;
  const double w = 1.0 + (kron ? m + C : d); /* doubles per sample in transit */
  NHGD_CHECK(calibrate(c->comm, &plan->gemm_rate));
  NHGD_CHECK(nhgd_mem_budget(c->comm, req->mem_per_rank, &plan->budget));
  const double R = plan->gemm_rate, BW = NHGD_MODEL_BANDWIDTH;
  const double chol = NHGD_MODEL_CHOLESKY_EFFICIENCY;
  const double gather = B * w * 8.0; /* every rank receives every sample */
  /* Workspace every route keeps: U, W (d x B), the packed samples and the B x B system. */
  const double Bw = (double)nhgd_est_batch_rows(c); /* the workspace holds a whole step */
  const double base = 8.0 * (3.0 * d * Bw + 2.0 * Bw * w + Bw * Bw);
  const double dd_local = 8.0 * d * d / P * 1.15; /* block-cyclic d x d, with block rounding */
  const double nn_local = 8.0 * N * N / P * 1.15;
  const double gram_kernel = kron ? 2.0 * N * N * (m + C) : 2.0 * N * N * d;

  plan->flops[NHGD_ROUTE_ONLINE] = T * 4.0 * d * d * B / P + 2.0 * d * d / P + T * 2.0 * d * B * B;
  plan->bytes_comm[NHGD_ROUTE_ONLINE] = gather + 2.0 * 8.0 * d * B;
  plan->bytes_mem[NHGD_ROUTE_ONLINE] = base + dd_local;

  /* Only the lower triangle of F += U U^T is formed: d^2 B flops per step, not 2 d^2 B. */
  plan->flops[NHGD_ROUTE_ACCUMULATE] = T * d * d * B / P + d * d * d / 3.0 / P / chol;
  plan->bytes_comm[NHGD_ROUTE_ACCUMULATE] = gather;
  plan->bytes_mem[NHGD_ROUTE_ACCUMULATE] = base + dd_local;

  plan->flops[NHGD_ROUTE_GRAM] = gram_kernel / P + N * N * N / 3.0 / P / chol + 4.0 * N * d;
  plan->bytes_comm[NHGD_ROUTE_GRAM] = gather;
  plan->bytes_mem[NHGD_ROUTE_GRAM] =
      base + 8.0 * N * w + nn_local + 16.0 * (kron ? (m > C ? m : C) : d) * N / sqrt(P);

  plan->flops[NHGD_ROUTE_DENSE] = T * d * d * B + d * d * d / 3.0;
  plan->bytes_comm[NHGD_ROUTE_DENSE] = gather;
  plan->bytes_mem[NHGD_ROUTE_DENSE] = base + 8.0 * d * d;

  /* kfac (kfac.h): the factors cost m^2 B (A, DSYRK) + C^2 B per step spread over the ranks,
   * the solve C Cholesky factorisations of size m. Replicated A: no traffic during the inner
   * loop, one allreduce of the m^2 / 2 partial sums per outer step, the C systems spread
   * over the ranks. Distributed A: the step's samples all-gathered, the C systems factored
   * on the whole grid one after the other. */
  const double mm_local = 8.0 * m * m / P * 1.15;
  const double kfac_solve_rep = ceil(C / P) * m * m * m / 3.0 / chol + 4.0 * m * C * C;
  /* With --kfac-refresh R the factors are summed (and, replicated, factored) in one outer
   * step of R: their cost is spread over the R steps. */
  const double Rf = req->refresh > 1 ? req->refresh : 1.0;
  const double kfac_rep = (T * (m * m + C * C) * B / P + kfac_solve_rep) / Rf;
  const double kfac_dist = T * (m * m * B + C * C * B) / P / Rf + C * m * m * m / 3.0 / P / chol;
  const double kfac_rep_mem =
      nhgd_kfac_bytes((int)m, (int)C, (int)B, 0, 0.0, req->refresh, req->keep, (int)P);
  const double kfac_dist_mem =
      nhgd_kfac_bytes((int)m, (int)C, (int)B, 1, mm_local, req->refresh, req->keep, (int)P) +
      8.0 * B * w * 2.0;
  int distributed =
      !req->layered && (!strcmp(req->kfac_layout, "distributed") ||
                        (!strcmp(req->kfac_layout, "auto") && kfac_rep_mem > plan->budget));
  plan->kfac_distributed = distributed;
  plan->flops[NHGD_ROUTE_KFAC] = kron ? (distributed ? kfac_dist : kfac_rep) : INFINITY;
  plan->bytes_comm[NHGD_ROUTE_KFAC] = (distributed ? gather : 8.0 * (m * m / 2.0 + C * C) / T) / Rf;
  plan->bytes_mem[NHGD_ROUTE_KFAC] = kron ? (distributed ? kfac_dist_mem : kfac_rep_mem) : 0.0;
  if (req->layered) { /* a network: the factors of each layer, reduced onto its owner */
    const nhgd_problem *pb = c->pb;
    double fl, mem, fac = 0.0;
    int dist[64] = {0};
    const int mode = nhgd_kfac_net_layout_mode(req->kfac_layout);
    if (pb->n_layers >= 1 && pb->n_layers <= 64)
      nhgd_kfac_net_place(pb->n_layers, pb->layer_in, pb->layer_out, c->size, B, mode, plan->budget,
                          dist);
    nhgd_kfac_net_cost(pb->n_layers, pb->layer_in, pb->layer_out, dist, c->size, T, B, &fl, &mem);
    for (int l = 0; l < pb->n_layers; ++l)
      fac += 0.5 * ((double)pb->layer_in[l] * pb->layer_in[l] +
                    (double)pb->layer_out[l] * pb->layer_out[l]);
    plan->flops[NHGD_ROUTE_KFAC] = fl;
    plan->bytes_comm[NHGD_ROUTE_KFAC] = 8.0 * (fac / P + d) / T;
    plan->bytes_mem[NHGD_ROUTE_KFAC] = mem;
  }

  for (int r = 0; r < NHGD_ROUTE_COUNT; ++r)
    plan->seconds[r] = plan->flops[r] / R + T * plan->bytes_comm[r] / BW;

  int forced = route_of(req->route);
  int best = -1;
  const char *why = "--efim-route";
  if (forced == NHGD_ROUTE_KFAC && req->kfac_refusal)
    NHGD_FAIL(NHGD_ERR_ARG, "nhgd: --efim-route kfac does not apply: %s", req->kfac_refusal);
  if (forced >= 0) {
    best = forced;
  } else if (!req->kfac_refusal) {
    /* Where it applies, the Kronecker-factored Fisher costs m^2 terms where the other routes
     * cost d^2 or N^2, and its direction is closer to the exact hypergradient than the full
     * empirical Fisher's (bench/results/README.md): auto takes it. */
    best = NHGD_ROUTE_KFAC;
    why = req->layered ? "auto: the network has the layered Kronecker form and per-layer damping"
                       : "auto: the problem has the Kronecker form and class-independent damping";
  } else {
    why = "auto: cheapest predicted that fits";
    for (int r = 0; r < NHGD_ROUTE_DENSE; ++r) /* dense is a test reference, never chosen */
      if (plan->bytes_mem[r] <= plan->budget &&
          (best < 0 || plan->seconds[r] < plan->seconds[best]))
        best = r;
  }
  nhgd_log(NHGD_LOG_INFO,
           "efim: d = %.0f, N = T*B = %.0f*%.0f = %.0f samples, %s per-sample form; DGEMM %.1f "
           "GFLOP/s per rank, budget %.0f MiB per rank%s%s",
           d, T, B, N, kron ? "Kronecker" : "dense", R / 1e9, plan->budget / 1048576.0,
           req->kfac_refusal ? "; kfac does not apply: " : "",
           req->kfac_refusal ? req->kfac_refusal : "");
  for (int r = 0; r < NHGD_ROUTE_COUNT; ++r) {
    if (r == NHGD_ROUTE_KFAC && req->kfac_refusal) continue;
    nhgd_log(NHGD_LOG_INFO,
             "efim: route %-10s predicted %9.3f s per outer step, %9.3g flops per rank, %9.3g "
             "bytes received per inner step, %8.1f MiB per rank%s",
             route_names[r], plan->seconds[r], plan->flops[r], plan->bytes_comm[r],
             plan->bytes_mem[r] / 1048576.0,
             plan->bytes_mem[r] > plan->budget ? " (does not fit)" : "");
  }
  if (best < 0 || plan->bytes_mem[best] > plan->budget) {
    int r = best >= 0 ? best : NHGD_ROUTE_GRAM;
    if (best < 0) /* the route that scales best with ranks */
      r = plan->bytes_mem[NHGD_ROUTE_ACCUMULATE] < plan->bytes_mem[NHGD_ROUTE_GRAM]
              ? NHGD_ROUTE_ACCUMULATE
              : NHGD_ROUTE_GRAM;
    /* Memory that shrinks with the rank count: the block-cyclic part. */
    double part = r == NHGD_ROUTE_GRAM ? nn_local : dd_local;
    if (r == NHGD_ROUTE_KFAC) part = plan->kfac_distributed ? 2.0 * mm_local : 0.0;
    double fixed = plan->bytes_mem[r] - part, scaled = part * P;
    double pmin = fixed < plan->budget && r != NHGD_ROUTE_DENSE && part > 0.0
                      ? ceil(scaled / (plan->budget - fixed))
                      : -1;
    char hint[160] = "no rank count fits: lower --batch or --inner-steps, or raise --mem-per-rank";
    if (pmin > 0)
      snprintf(hint, sizeof hint,
               "the smallest rank count that fits is %.0f (at this memory per rank)", pmin);
    NHGD_FAIL(NHGD_ERR_MEM,
              "nhgd: route %s needs %.1f MiB per rank on %d ranks but %.1f MiB are available "
              "(--mem-per-rank); %s",
              route_names[r], plan->bytes_mem[r] / 1048576.0, c->size, plan->budget / 1048576.0,
              hint);
  }
  plan->route = best;
  nhgd_log(NHGD_LOG_INFO, "efim: using route %s%s (%s)", route_names[best],
           best != NHGD_ROUTE_KFAC  ? ""
           : req->layered           ? ", one block per layer on its owner rank"
           : plan->kfac_distributed ? ", A block-cyclic"
                                    : ", A replicated, the class systems spread over the ranks",
           why);
  return NHGD_OK;
}
