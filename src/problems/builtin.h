/* The registry's view of the built-in problems: the problem option block, the Kronecker form
 * each declares, and each problem's constructor. */
#ifndef NHGD_PROBLEMS_BUILTIN_H
#define NHGD_PROBLEMS_BUILTIN_H

#include <stdint.h>

#include "nhgd/options.h"
#include "nhgd/problem.h"
#include "problems/common.h"

/* The problem block of the run options (--problem, --noise-sigma, --clean-reg, --v-init). */
extern const nhgd_option_block nhgd_problem_options;
/* The Kronecker form the built-in problem name declares: 1 of a softmax model's per-sample
 * gradients, 2 layer-wise (networks), 0 none; -1 if the name is unknown. */
int nhgd_problem_builtin_kron(const char *name);

/* ---- constructors: fill the callbacks and dimensions of pb (ctx and data already set) ---- */
int nhgd_problem_setup_ridge(nhgd_problem *pb);
int nhgd_problem_setup_logreg(nhgd_problem *pb);
int nhgd_problem_setup_hyperclean(nhgd_problem *pb);
int nhgd_problem_setup_mlp_hyperclean(nhgd_problem *pb);
int nhgd_problem_setup_mlp_hpo(nhgd_problem *pb);
int nhgd_problem_setup_distill(nhgd_problem *pb);
/* The network of --hidden and --activation as distill's inner model, on the view distill has
 * bound (pb->data: the synthetic rows as the training split, their features v): rows
 * unweighted, R = r ||theta||^2, and J^T u = d/dx_i <grad_theta g, u> by the R-operator. */
int nhgd_problem_setup_mlp_distill(nhgd_problem *pb);
/* Free a network's state (ctx->net). */
void nhgd_mlp_free(nhgd_pb_ctx *ctx);

/* Parse --hidden ("256,128"): at most max positive widths into widths, their number into
 * *count; an empty list, a zero or malformed width is an NHGD_ERR_ARG error naming it. */
int nhgd_mlp_parse_hidden(const char *text, int *widths, int max, int *count);

#endif
