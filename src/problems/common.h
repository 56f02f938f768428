/* Private declarations shared by the built-in problems: row-block scratch, row gathering,
 * the shared callbacks and the multinomial-logistic (softmax) kernels (softmax.c). */
#ifndef NHGD_PROBLEMS_COMMON_H
#define NHGD_PROBLEMS_COMMON_H

#include <math.h>
#include <stdint.h>

#include "nhgd/problem.h"

/* Rows processed per BLAS-3 call: bounds scratch memory at about m * 1024 doubles while
 * keeping the matrix products large enough to run near peak. */
#define NHGD_PB_BLOCK 1024

/* Scratch of one problem, grown on demand to at most NHGD_PB_BLOCK rows. Callbacks receive a
 * const problem but may use this scratch: a problem must not be used by two threads at
 * once. */
typedef struct nhgd_pb_scratch {
  int cap;     /* rows the buffers hold */
  int m;       /* features */
  int C;       /* columns of the per-row products (classes; 1 for ridge) */
  double *xb;  /* m x cap: gathered feature columns */
  double *za;  /* C x cap: logits, then probabilities, then residuals */
  double *zb;  /* C x cap: products with a direction (hvp, cross) */
  double *zw;  /* 2C x cap: logits and products with a direction from one GEMM (cross) */
  double *wu;  /* m x 2C: [W U], the model and a direction side by side (cross) */
  double *rw;  /* cap: per-row weights */
  double *rl;  /* cap: per-row losses or residuals */
  int32_t *yc; /* cap: gathered labels */
  double *yr;  /* cap: gathered targets */
} nhgd_pb_scratch;

/* Per-row weight w_i(v) of local training row i; NULL stands for w_i = 1. */
typedef double (*nhgd_row_weight)(const double *v, int row);

/* The unweighted residuals of the rows of the softmax models' last inner_grad call, kept for
 * cross_keep (which the engine calls right after inner_grad with the same rows). */
typedef struct nhgd_pb_kept {
  int cap, nb;
  double *r; /* C x cap */
  int *rows; /* cap */
} nhgd_pb_kept;

/* State of every built-in problem. */
typedef struct nhgd_pb_ctx {
  nhgd_pb_scratch s;
  nhgd_pb_kept kept;
  nhgd_row_weight row_weight;   /* the softmax models' w_i(v): hyperclean's sigmoid(v_i) */
  nhgd_row_weight row_weight_d; /* and its derivative dw_i/dv_i (the sampled cross term) */
  double sigma;                 /* ridge */
  double clean_reg;             /* hyperclean, mlp-hyperclean */
  double v_init;
  char hidden[128]; /* mlp-*: hidden widths */
  int activation;   /* mlp-*: NHGD_ACT_* */
  int gauss_newton; /* mlp-*: hvp gives the Gauss-Newton product */
  uint64_t init_seed;
  struct mlp_net *net; /* mlp-*: the network's shape and scratch */
  int64_t distill_per_class;
  int distill_mlp;              /* distill: the inner model is a network */
  struct distill_view *distill; /* distill: the view of the data with the synthetic rows */
} nhgd_pb_ctx;

/* Make room for nb rows (nb <= NHGD_PB_BLOCK). */
int nhgd_pb_reserve(nhgd_pb_scratch *s, int nb);
void nhgd_pb_scratch_free(nhgd_pb_scratch *s);

/* Copy the nb listed local rows of split (features, and whichever targets exist) into the
 * scratch. Fails with NHGD_ERR_ARG on a row index outside 0 .. n_local-1. */
int nhgd_pb_gather(const nhgd_split *sp, int nb, const int *rows, nhgd_pb_scratch *s);

/* Check the arguments common to the batched callbacks. */
int nhgd_pb_check_batch(const nhgd_problem *pb, int nb, const int *rows);

/* Shared callbacks of the built-in problems. */
int nhgd_pb_init(const nhgd_problem *pb, double *theta, double *v);
void nhgd_pb_destroy_ctx(nhgd_problem *pb);
/* R = r ||theta||^2 (r = --clean-reg), independent of v: hyperclean and distill. */
int nhgd_pb_reg_clean(const nhgd_problem *pb, const double *theta, const double *v, double *value,
                      double *grad, double *hdiag);

/* 1 / (1 + exp(-v)), written so that exp never overflows whatever the sign of v. */
static inline double nhgd_pb_sigmoid(double v) {
  if (v >= 0) return 1.0 / (1.0 + exp(-v));
  const double e = exp(v);
  return e / (1.0 + e);
}

/* ---- softmax kernels (softmax.c); per-row quantities are stored C x nb, ld = C ---- */

/* Z = W^T X_b: logits of nb rows (X_b is m x nb, ld m; W is m x C, ld m). */
void nhgd_softmax_logits(int m, int C, int nb, const double *xb, const double *W, double *Z);

/* Turn the logits in Z into probabilities in place, with the row maximum subtracted so that
 * huge logits stay finite. ce (may be NULL) receives the cross-entropy of each row computed
 * by log-sum-exp; *correct (may be NULL) is increased by the rows whose argmax is y. */
void nhgd_softmax_probs(int C, int nb, double *Z, const int32_t *y, double *ce, int64_t *correct);

/* P_i <- scale_i (p_i - e_{y_i}) in place; scale NULL means 1. */
void nhgd_softmax_residuals(int C, int nb, double *P, const int32_t *y, const double *scale);

/* G = beta G + X_b R^T (m x C): the summed gradient of rows with residuals R. */
void nhgd_softmax_grad(int m, int C, int nb, const double *xb, const double *R, double beta,
                       double *G);

/* Callbacks of the linear-softmax models; rows are weighted by the context's row_weight. */
int nhgd_softmax_inner_grad(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, double *g, double *loss);
int nhgd_softmax_sample_grads(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *S, double *c);
int nhgd_softmax_hess_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *Z);
int nhgd_softmax_hvp(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                     const int *rows, const double *V, double *HV);
/* hvp_multi: n directions over the same rows, each block's forward pass shared. Column j
 * equals nhgd_softmax_hvp of column j bit for bit. */
int nhgd_softmax_hvp_multi(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                           const int *rows, int n, const double *V, double *HV);
int nhgd_softmax_kron_factors(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                              const int *rows, double *X, double *R, double *A, double *c);
/* The sampled cross term of the softmax models with per-row weights (see cross_keep and
 * cross_apply in nhgd/problem.h): K holds the residuals r_i (cross_width = C), and
 * q_i = w_i'(v) r_i^T (U^T x_i) with w' the context's row_weight_d. */
int nhgd_softmax_cross_keep(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                            const int *rows, int after_grad, double *K);
int nhgd_softmax_cross_apply(const nhgd_problem *pb, const double *v, const double *u, int nb,
                             const int *rows, const double *K, const double *scale, double *out);
/* Unweighted cross-entropy over all local rows of split (v is not used). */
int nhgd_softmax_eval(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
                      const double *v, double *loss_sum, double *gtheta, int64_t *correct);

#endif
