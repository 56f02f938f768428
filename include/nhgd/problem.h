/* The problem interface: everything the engine needs to know about a bilevel problem, as a
 * table of closed-form functions. A user defines a new problem by filling one of these. */
#ifndef NHGD_PROBLEM_H
#define NHGD_PROBLEM_H

#include "nhgd/export.h"

#include "nhgd/options.h"

#include <stdint.h>
#include "nhgd/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The bilevel problem solved by the engine:
 *
 *   inner  g(v, theta) = (1/n) sum_i w_i(v) l_i(theta) + R(v, theta)   over the training rows
 *   outer  f(v, theta) = (1/n_val) sum_j f_j(theta) [+ terms in v]      over the validation rows
 *
 * theta has d entries and is replicated on every rank. v has p entries: replicated, or, when
 * v_per_sample = w > 0, w entries per training row, sharded with the rows (every callback
 * then receives this rank's slice v[0 .. w * train.n_local)). The Hessian of R in theta must be
 * diagonal. Row indices passed to callbacks are local (0 .. n_local-1) to the split.
 * Callbacks are not collective unless stated; they return 0 or an nhgd_status. */
typedef struct nhgd_problem nhgd_problem;

/* The callbacks of a problem: filled once per problem (a static const table), copied into
 * the problem by nhgd_problem_create_custom with the size the caller compiled it with, so
 * that callbacks added in later versions read as absent (NULL) for older callers. */
typedef struct nhgd_problem_ops {
  /* Initial values: theta (d) and this rank's v (p, or w * train.n_local if v_per_sample). */
  int (*init)(const nhgd_problem *pb, double *theta, double *v);

  /* Sum over the nb listed training rows of w_i(v) grad l_i(theta), written to g (d, zeroed
   * by the callback), and sum of w_i(v) l_i(theta) to *loss. */
  int (*inner_grad)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                    const int *rows, double *g, double *loss);

  /* Per-sample gradients: column k of S (d x nb, column-major, ld = d) is grad l_{rows[k]}
   * (unweighted) and c[k] = w_{rows[k]}(v). */
  int (*sample_grads)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, double *S, double *c);

  /* Per-sample Hessian factors: Z (d x nb*q, ld = d) with columns k*q .. k*q+q-1 holding Z_k
   * such that w_k Hess l_k(theta) = Z_k Z_k^T (the weight is included). */
  int (*hess_factors)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, double *Z);

  /* Hessian-vector product: HV (d, zeroed by the callback) = sum over the rows of
   * w_i Hess l_i(theta) V. */
  int (*hvp)(const nhgd_problem *pb, const double *theta, const double *v, int nb, const int *rows,
             const double *V, double *HV);

  /* Regulariser: *value = R(v, theta) (may be NULL), grad (may be NULL) += grad_theta R,
   * hdiag (may be NULL) = diagonal of Hess_theta R (d entries, set). */
  int (*reg)(const nhgd_problem *pb, const double *theta, const double *v, double *value,
             double *grad, double *hdiag);

  /* Outer terms over all local rows of split (data->val or data->test, or with --val-batch
   * a split of the validation rows drawn for an outer step, which may hold no row on this
   * rank): *loss_sum = sum of per-row outer losses; if gtheta != NULL, gtheta (d, set) = sum
   * of per-row gradients in theta; *correct (may be NULL) = rows classified right. The engine
   * sums over ranks and divides by the split's n_global. */
  int (*eval)(const nhgd_problem *pb, const nhgd_split *split, const double *theta, const double *v,
              double *loss_sum, double *gtheta, int64_t *correct);

  /* Direct outer gradient grad_v f (this rank's entries, set), or NULL if f does not depend
   * on v. For replicated v the result must be equal on every rank. */
  int (*outer_grad_v)(const nhgd_problem *pb, const double *theta, const double *v, double *gv);

  /* Cross term out = J^T u with J = d^2 g / (d theta d v) at (v, theta): this rank's p
   * entries (or v_per_sample * n_local entries). For replicated v the result must be
   * equal on every rank (a callback that needs data may allreduce over data->comm: then it
   * is collective). */
  int (*cross)(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
               double *out);

  /* Frees ctx; may be NULL. Called by nhgd_problem_destroy. */
  void (*destroy)(nhgd_problem *pb);

  /* Optional Kronecker structure of linear-softmax models (NULL when absent; kron_m and kron_c in
   * nhgd_problem): theta is W (kron_m x kron_c, column-major, d = kron_m * kron_c), the per-sample
   * gradient is s_i = x_i (x) r_i and w_i Hess l_i = (x_i x_i^T) (x) A_i. kron_factors fills, for
   * the nb listed rows, any of (each may be NULL): X (kron_m x nb) the features, R (kron_c x nb)
   * the unweighted residuals r_i, A (kron_c^2 x nb) w_i A_i (column-major kron_c x kron_c per row),
   * c (nb) the weights w_i. The engine then needs O(m + C) numbers per sample instead of O(d) and
   * forms curvature blocks with C times fewer flops. */
  int (*kron_factors)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, double *X, double *R, double *A, double *c);

  /* Optional layered Kronecker form of networks (NULL when absent; n_layers, layer_in and
   * layer_out in nhgd_problem): theta is the
   * concatenation of n_layers matrices W_l (layer_in[l] x layer_out[l], column-major, layer l
   * starting at sum_{k<l} layer_in[k] layer_out[k]), and the per-sample gradient of layer l
   * is grad W_l = a_l g_l^T with a_l the layer's input (a trailing 1 for the bias row) and g_l
   * the gradient of the loss in its pre-activations. layer_factors fills, for the nb listed
   * rows, a[l] (layer_in[l] x nb) and g[l] (layer_out[l] x nb), both unweighted, and c (nb,
   * may be NULL) the weights w_i. The kfac route then keeps one pair of factors per layer.
   * after_grad != 0 says that inner_grad has just run at this theta and v (unchanged since)
   * on a list that holds every one of these rows, so a problem may take the factors from that
   * pass instead of running its own; 0 promises nothing. */
  int (*layer_factors)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                       const int *rows, int after_grad, double *const *a, double *const *g,
                       double *c);

  /* Optional sampled cross term (both or neither; cross_width in nhgd_problem). For problems
   * with per-row v (v_per_sample) whose row i's entries of J^T u depend on row i alone,
   * (J^T u)_i = (1/n) q_i(theta, v, u) with q_i linear in u. cross_keep writes, for the nb
   * listed training rows at theta, cross_width numbers per row (K: cross_width x nb,
   * column-major) from which cross_apply later forms q_i for any u: for the softmax models the
   * residuals r_i, so that q_i = w_i'(v) r_i^T (U^T x_i). after_grad as in layer_factors.
   * cross_apply adds scale[k] * q_{rows[k]}(u) to the v_per_sample entries of row rows[k] in
   * out (rows may repeat; their terms add up in list order). The engine samples rows along the
   * inner trajectory or at its end with these (--cross-rows), instead of a pass over all rows
   * through cross. */
  int (*cross_keep)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                    const int *rows, int after_grad, double *K);
  int (*cross_apply)(const nhgd_problem *pb, const double *v, const double *u, int nb,
                     const int *rows, const double *K, const double *scale, double *out);

  /* Optional: Hessian-vector products of n directions over the same rows in one pass (the
   * rows' forward pass shared): column j of HV (d x n, column-major, zeroed by the callback)
   * is what hvp gives for column j of V. Estimators that solve two systems with one Hessian
   * (nbo) use it; NULL: hvp once per column. */
  int (*hvp_multi)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                   const int *rows, int n, const double *V, double *HV);
} nhgd_problem_ops;

/* A problem: its name, state, data and shape, and its callbacks. Only the library allocates
 * one (nhgd_problem_create, nhgd_problem_create_custom), so fields may be added at the end
 * of the shape in later versions; a caller sets the shape fields after creating a custom
 * problem and reads them in its callbacks, and never copies the struct. */
struct nhgd_problem {
  const char *name;
  void *ctx;             /* the problem's own state */
  const nhgd_data *data; /* bound data; callbacks read data->train/val/test. The solver runs
                            on this view: a problem may bind a view derived from the data it
                            was created with (distill: its own rows as the training split) */
  int64_t d;             /* inner dimension */
  int64_t p;             /* outer dimension (global) */
  int v_per_sample;      /* w > 0: p == w * train.n_global, v sharded with the training rows */
  int hess_rank;         /* q: columns of each per-sample Hessian factor */
  int is_classifier;     /* 1: eval reports accuracy */

  /* Kronecker structure the callbacks provide (see kron_factors and layer_factors). */
  int kron_m, kron_c;
  int n_layers;
  const int *layer_in, *layer_out;
  nhgd_problem_ops ops;
  int cross_width; /* numbers cross_keep keeps per row (with cross_keep and cross_apply) */
};

/* Parameters of the built-in problems. */
typedef struct nhgd_problem_params {
  double noise_sigma;        /* ridge: sigma of the likelihood, default 1 */
  double clean_reg;          /* hyperclean: r in r ||W||^2, default 1e-3 */
  double v_init;             /* initial value of every v entry: ridge/logreg log-weights (default
                                0), hyperclean logits (default 0) */
  char hidden[128];          /* mlp-*: hidden widths, comma-separated (default "256") */
  int activation;            /* mlp-*: NHGD_ACT_TANH (default) or NHGD_ACT_RELU */
  uint64_t init_seed;        /* mlp-*: key of the counter-based initialisation (default 0) */
  int gauss_newton;          /* mlp-*: hvp is the Gauss-Newton product J^T H_out J (PSD) instead of
                                the exact Hessian's (default 0) */
  int64_t distill_per_class; /* distill: synthetic images per class (default 1) */
  int distill_mlp;           /* distill: the inner model is the network of hidden/activation
                                (default 0: a linear softmax) */
} nhgd_problem_params;

enum { NHGD_ACT_TANH = 0, NHGD_ACT_RELU = 1 };

NHGD_API void nhgd_problem_params_default(nhgd_problem_params *pp);

/* Not collective. Create a built-in problem ("ridge", "logreg", "hyperclean", "mlp-hyperclean",
 * "mlp-hpo", "distill") bound to data (distill: to a view of it, see pb->data).
 * Errors: unknown name, or data of the wrong task (ridge needs regression targets, logreg
 * and hyperclean need class labels). The problem is allocated; free with
 * nhgd_problem_destroy. */
NHGD_API int nhgd_problem_create(const char *name, const nhgd_data *data,
                                 const nhgd_problem_params *pp, nhgd_problem **out);

/* Not collective. The same, with the name and parameters from the problem block of run
 * options (--problem, --noise-sigma, --clean-reg, --v-init). */
NHGD_API int nhgd_problem_create_from_options(const nhgd_options *o, const nhgd_data *data,
                                              nhgd_problem **out);

/* Not collective. Create a problem of the caller's: name (at most 63 characters, copied), the
 * data its callbacks read (pb->data), its state ctx (pb->ctx, not owned unless ops->destroy
 * frees it) and its callbacks, ops of ops_size bytes: pass sizeof(nhgd_problem_ops) as the
 * caller compiled it. Callbacks the library knows and the caller's table does not hold are
 * NULL; a table larger than the library's is refused unless its extra callbacks are NULL.
 * init, inner_grad, reg, eval and cross are required. The shape is zero: set pb->d, pb->p and
 * the other shape fields before the problem is used. Free with nhgd_problem_destroy. */
NHGD_API int nhgd_problem_create_custom(const char *name, const nhgd_data *data,
                                        const nhgd_problem_ops *ops, size_t ops_size, void *ctx,
                                        nhgd_problem **out);

/* Not collective. Calls pb->ops.destroy, frees pb, sets *pb to NULL; NULL-safe. */
NHGD_API void nhgd_problem_destroy(nhgd_problem **pb);

#ifdef __cplusplus
}
#endif
#endif
