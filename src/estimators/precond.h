/* NHGD's curvature as a preconditioner of the Hessian systems of other estimators (cg, nbo;
 * docs/algorithm.md 5.1): --precond nhgd keeps, inside the estimator, the nhgd estimator's M
 * of the same run (its route, damping and --kfac-refresh, fed by the same observe calls), and
 * applies M^{-1} to as many vectors as the solve needs. --precond none: no preconditioner. */
#ifndef NHGD_ESTIMATORS_PRECOND_H
#define NHGD_ESTIMATORS_PRECOND_H

#include <stdint.h>

#include "estimators/estimator.h"

/* The shared option block "precond": --precond none|nhgd (read by cg and nbo). */
extern const nhgd_option_block nhgd_precond_options;

typedef struct nhgd_precond nhgd_precond;

/* Collective: the preconditioner of estimator who (its name, for messages) with context c;
 * *out = NULL when --precond is none. resume: as for an estimator's init. */
int nhgd_precond_create(nhgd_est_ctx *c, nhgd_section *resume, const char *who, nhgd_precond **out);
void nhgd_precond_destroy(nhgd_precond **p);

/* Collective, as the nhgd estimator's begin/observe: the inner loop of outer step k starts at
 * theta0; the nb local rows of one of its steps at theta. */
int nhgd_precond_begin(nhgd_precond *p, int64_t k, const double *theta0);
int nhgd_precond_observe(nhgd_precond *p, const double *theta, int nb, const int *rows);

/* Collective, after the inner loop: out = M^{-1} x (d entries, replicated; x and out must not
 * overlap). The first call of an outer step is the nhgd estimator's solve (its timers and
 * traffic; out is bit for bit the u of --estimator nhgd for g = x); later calls of the same
 * step reuse its factors (nhgd_efim_reapply: no timer of their own), and a call with a vector
 * bitwise equal to one of the step's last two returns the stored result without applying M^{-1}
 * (a solver that starts from M^{-1} b and hands b to the kernel pays once). */
int nhgd_precond_apply(nhgd_precond *p, const double *theta, const double *x, double *out);

/* Checkpoints: the running state of the current inner loop (in the estimator's section), and
 * back; load_kept at an outer-step boundary, as the estimator ops of the same names. The state
 * is the nhgd estimator's, under its own names (route, steps, stored, width, bytes, D, matrix,
 * samples, kfac_*), which the host's own entries of the section must not use. */
int nhgd_precond_save(nhgd_precond *p, nhgd_section *sec);
int nhgd_precond_load(nhgd_precond *p, nhgd_section *sec, int64_t k);
int nhgd_precond_load_kept(nhgd_precond *p, nhgd_section *sec);

/* When u is not finite: the nhgd estimator's advice (its damping). */
void nhgd_precond_advice(const nhgd_precond *p, char *buf, size_t len);

#endif
