/* The K-FAC route of the nhgd estimator (docs/algorithm.md 4.4): the Fisher of a linear
 * softmax layer approximated by tau G (x) A, accumulated alongside inner SGD, and the damped
 * system solved exactly through the eigen-decomposition of G.
 *
 * For per-sample gradients s = r (x) x (theta[j + c m] = W[j][c]) and weights w_s:
 *   A = sum_s w_s x x^T (m x m),  G = sum_s w_s r r^T (C x C)        (--kfac-g empirical)
 *                                 G = sum_s w_s (diag p - p p^T)      (--kfac-g model)
 *   tau = trace(F) / (trace(G) trace(A)),  trace(F) = sum_s w_s |x|^2 |r|^2 (empirical) or
 *         sum_s w_s |x|^2 (1 - |p|^2) (model),
 * so that trace(tau G (x) A) = trace(F); tau is kept apart from the factors (it multiplies
 * the eigenvalues of G). The system M u = g with M = tau G (x) A + I_C (x) D_x, D_x the
 * diagonal damping of one class block (Hess R + lambda_F, the same for every class), is
 * then solved EXACTLY: with G = Q Lambda Q^T and U, Gamma the m x C reshapes of u and g,
 * tau A U~ Lambda + D_x U~ = Gamma Q for U~ = U Q, one SPD system (tau lambda_c A + D_x) per
 * class direction c. Only F ~= tau G (x) A is an approximation.
 *
 * Layouts of A: replicated (each rank sums its own samples into an m x m partial with DSYRK,
 * no communication during the inner loop; one allreduce of the partials per outer step; the
 * C systems are spread over the ranks and factored with LAPACK) or distributed (A summed
 * block-cyclically from the samples all-gathered at every step, so no rank holds it; the C
 * systems factored one after the other with ScaLAPACK on the whole grid). G and trace(F) are
 * always per-rank partials summed at the solve.
 *
 * With refresh R > 1 (--kfac-refresh) the factors are summed only in the inner loops of
 * outer steps 0, R, 2R, ...; the sums (A, G, trace F) are kept and serve the steps in
 * between, which sum nothing. The decomposition of G and tau are kept with them; in the
 * replicated layout so are the Cholesky factors of the class systems this rank solves, reused
 * while the damping D_x is unchanged and refactored from the kept A when it changes. The
 * distributed layout keeps only the sums (A stays block-cyclic) and factors its systems at
 * every solve. A restart keeps the sums and recomputes the rest from them, by the same code,
 * so a resumed run stays bit-identical.
 *
 * As a preconditioner (estimators/precond.h) M^{-1} is applied several times per outer step:
 * nhgd_kfac_reapply solves again with what the step's solve prepared. The replicated layout
 * then keeps its Cholesky factors also with refresh 1 (nhgd_kfac_keep_factors), so a repeated
 * solve costs two triangular solves per class system; the distributed layout refactors its C
 * class systems at every solve, repeated or not (keeping C block-cyclic factors would take C
 * times the memory of A, which that layout exists to spread). */
#ifndef NHGD_ESTIMATORS_NHGD_KFAC_H
#define NHGD_ESTIMATORS_NHGD_KFAC_H

#include <math.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "linalg/bcmat.h"
#include "io/section.h"

typedef struct nhgd_kfac {
  MPI_Comm comm;
  int rank, size;
  int m, C;
  int model_g;     /* G from the model's class covariance instead of r r^T */
  int distributed; /* A block-cyclic instead of replicated partials */
  double *A;       /* replicated: this rank's partial sum (m x m, lower triangle) */
  nhgd_bcmat *Abc; /* distributed: the sum itself */
  nhgd_bcmat *Wbc; /* distributed: the system of one class direction */
  double *G;       /* C x C partial sum (lower triangle) */
  double trF;      /* partial sum of trace(F) */
  int refresh;     /* outer steps one set of summed factors serves */
  int have;        /* refresh > 1: the kept sums below are set (the same on every rank) */
  int decomposed;  /* Q, lam and tau hold the decomposition of the kept sums */
  int factored;    /* replicated, Lf set: Lf hold the factors for the damping Dk */
  double *Ak;      /* kept sum of A (replicated; refresh == 1: the same buffer as A) */
  double *Gk;      /* refresh > 1: kept sum of G (C x C, full) */
  double trFk;     /* refresh > 1: kept sum of trace(F) */
  double tau;      /* of the kept sums */
  double *Lf;      /* replicated, refresh > 1 or kept: Cholesky factors of this rank's systems */
  double *Dk;      /* the damping they were formed with (m) */
  int failed;      /* a local failure not yet agreed on (agreed at the next collective) */
  double bytes;    /* payload this rank received from the solve's reductions */
  MPI_Request req; /* the reduction of the partials, when started early */
  int pending;
  /* workspace */
  double *Xs, *Rs;       /* scaled columns of one batch: m x bmax, C x bmax */
  double *red;           /* allreduce buffer */
  double *S;             /* m x m system (replicated layout) */
  double *Q, *lam, *wk;  /* eigen-decomposition of G */
  double *Gt, *Ut, *col; /* m x C: Gamma Q, U~; m: one column */
  double *diagA;         /* m */
  int *sys;              /* class directions whose system needs a factorisation */
  int lwork;
} nhgd_kfac;

/* Not collective (call it on every rank): allocate for m features, C classes and batches of
 * at most bmax local samples, with the factors summed every refresh outer steps. grid is the
 * BLACS grid of the distributed layout (NULL for replicated), nb its block size. */
int nhgd_kfac_init(nhgd_kfac *k, MPI_Comm comm, int m, int C, int bmax, int model_g,
                   int distributed, int refresh, const nhgd_grid *grid, int nb);
void nhgd_kfac_free(nhgd_kfac *k);
/* Not collective: keep the Cholesky factors of this rank's class systems also with refresh 1
 * (replicated layout; nothing to do in the distributed one), for nhgd_kfac_reapply. */
int nhgd_kfac_keep_factors(nhgd_kfac *k);

/* Not collective: start a new inner loop, one that sums its own factors (fresh: every
 * partial sum to zero) or one that reuses the kept sums (fresh 0: nothing may be added; the
 * block-cyclic A keeps the kept sum). */
void nhgd_kfac_reset(nhgd_kfac *k, int fresh);

/* Not collective: fold nb of this rank's samples into the partial sums of G and trace(F),
 * and, in the replicated layout, of A. X (m x nb) features, R (C x nb) residuals, Am
 * (C*C x nb) c_s (diag p - p p^T) with c the inner weights (model G only, else NULL), c
 * (nb) the inner weights, w (nb) the Fisher weights w_s. */
void nhgd_kfac_add_local(nhgd_kfac *k, int nb, const double *X, const double *R, const double *Am,
                         const double *c, const double *w);

/* Not collective (distributed layout): A += sum over nb gathered samples w_s x x^T; P holds
 * nb packed samples of width doubles each, [sqrt(w_s), x (m), ...]. Every rank passes the
 * same samples and updates only its own blocks. */
int nhgd_kfac_add_gathered(nhgd_kfac *k, int nb, const double *P, int width);

/* Collective: start the reduction of the partial sums (after the last inner step: it then
 * completes while the solver evaluates the validation gradient). Nothing may be added after
 * it. nhgd_kfac_cancel_reduce waits for it and drops it (not collective when none). */
int nhgd_kfac_start_reduce(nhgd_kfac *k);
void nhgd_kfac_cancel_reduce(nhgd_kfac *k);

/* Collective: u = M^{-1} g with M = tau G (x) A + I_C (x) diag(Dx) (Dx: m entries, > 0),
 * from this inner loop's sums (fresh) or the kept ones (fresh 0; they must be there). */
int nhgd_kfac_solve(nhgd_kfac *k, const double *Dx, const double *g, double *u, int fresh);
/* Collective: u = M^{-1} g again with the factors the last nhgd_kfac_solve prepared and the
 * same Dx (no reduction, no decomposition; with kept factors no factorisation either in the
 * replicated layout). The same u as nhgd_kfac_solve would give for this g, bit for bit. */
int nhgd_kfac_reapply(nhgd_kfac *k, const double *Dx, const double *g, double *u);

/* Collective: the running sums into a checkpoint section, and back. The partials are stored
 * per rank; a run resumed on another number of ranks gives every partial sum to rank 0. */
int nhgd_kfac_save(nhgd_kfac *k, nhgd_section *sec);
int nhgd_kfac_load(nhgd_kfac *k, nhgd_section *sec);
/* Collective: only the kept sums (a restart at an outer-step boundary, refresh > 1); a
 * section without them leaves none (the next inner loop then sums fresh factors). */
int nhgd_kfac_load_kept(nhgd_kfac *k, nhgd_section *sec);

/* The lower triangle of the column-major n x n a, column by column, into p (and back). */
void nhgd_kfac_pack_lower(int n, const double *a, double *p);
void nhgd_kfac_unpack_lower(int n, const double *p, double *a);

/* Collective (every rank of the section's file). A per-rank partial sum of n entries as
 * rank's slice of a dataset of size * n, and back: a run resumed on another number of ranks
 * (saved != size) gives rank 0 the sum of every saved partial and the others zeros. */
int nhgd_kfac_put_partial(int rank, int size, nhgd_section *sec, const char *name, int64_t n,
                          const double *x);
int nhgd_kfac_get_partial(int rank, int size, nhgd_section *sec, const char *name, int64_t n,
                          int saved, double *x);

/* Bytes one rank keeps for the factors and the solve (for the route planner), on P ranks; keep:
 * the factors of the class systems are kept (nhgd_kfac_keep_factors). */
double nhgd_kfac_bytes(int m, int C, int bmax, int distributed, double matrix_bytes, int refresh,
                       int keep, int P);

/* What a Kronecker factor that is not finite, or too large to factorise, means, and what
 * mends it (damping does not). */
#define NHGD_KFAC_OVERFLOW                                                                         \
  "the Kronecker factors are not finite or too large to factorise (the per-sample gradients "      \
  "overflowed: theta has grown too large), which no damping mends: lower --inner-lr"
/* Whether an entry of a damped system (a factor entry times its scale) can be factorised: the
 * Cholesky and tridiagonal solvers form products of two entries, which overflow from
 * sqrt(DBL_MAX) on (entries near 1e300 came from an mlp whose weights had grown, finite). */
#define NHGD_KFAC_USABLE(x) (fabs(x) < 1.3407807929942596e154)
/* Entries of a damped system from which the factors are put down to theta's growth: outer
 * products of per-sample gradients of 1e20 and more, which no sane model or data gives (an
 * mlp-hyperclean at --inner-lr 1e3 reached 5e62 on 2 ranks, 5e63 on 1). */
#define NHGD_KFAC_GROWN 1e40

/* Not collective: what a damped Kronecker system that failed to factorise means and what
 * mends it, into buf: amax is its largest entry (a factor entry times its scale), delta the
 * smallest damping on its diagonal. Factors past NHGD_KFAC_GROWN (an mlp whose weights grew
 * under a huge --inner-lr: a damping of 1e100 lets them factorise, and the run diverges
 * still) are the inner step size's doing; below, damping lifts a system merely singular. */
void nhgd_kfac_not_pd(double amax, double delta, char *buf, size_t len);
/* The larger of m and |x|, NaN once either is (the largest entry of a system, kept NaN). */
static inline double nhgd_kfac_absmax(double m, double x) {
  return !(fabs(x) <= m) ? fabs(x) : m;
}

#endif
