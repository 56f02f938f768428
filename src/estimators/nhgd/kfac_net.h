/* The K-FAC route of the nhgd estimator for networks (docs/algorithm.md 4.6): the Fisher is
 * approximated block-diagonally over layers, each block by tau_l G_l (x) A_l, and the damped
 * system of each block is solved exactly on the layer's owner rank.
 *
 * For layer l with inputs a (in_l, a trailing 1 for the bias) and pre-activation gradients
 * g (out_l), and Fisher weights w_s:
 *   A_l = sum_s w_s a a^T,  G_l = sum_s w_s g g^T,
 *   tau_l = trace(F_l) / (trace(G_l) trace(A_l)), trace(F_l) = sum_s w_s |a|^2 |g|^2,
 * so that the trace of tau_l G_l (x) A_l equals the trace of the layer's empirical Fisher
 * block. With D_l the layer's part of the damping D = Hess R + lambda_F:
 *   D_l = delta I (one value on the layer): G = Q_G L_G Q_G^T, A = Q T Q^T (tridiagonal T,
 *     Householder Q), Y = Q^T Gamma Q_G, and one SPD tridiagonal system
 *     (tau lambda_c T + delta I) y_c = Y_c per column: U = Q Y Q_G^T. (Diagonalising A as
 *     well gives the same U at about twice the cost.)
 *   D_l = I (x) D_x (depends on the input row only): G = Q L Q^T and one SPD system
 *     (tau lambda_c A + D_x) per output direction c, as the single-layer route does;
 *   otherwise the route does not apply.
 * Only F ~= blockdiag_l tau_l G_l (x) A_l is an approximation; each solve is exact.
 *
 * Communication: none during the inner loop (each rank sums its own samples with DSYRK).
 * After the last inner step the partial sums of layer l are reduced onto its owner (MPI
 * reduce, not allreduce), the owners being chosen by a longest-processing-time rule on the
 * cost of the decompositions. The owner decomposes G_l and reduces A_l to tridiagonal form
 * and broadcasts the result; every rank then solves its share of the layer's columns, and
 * one allreduce of u (d numbers) sums the shares and hands u to every rank.
 *
 * A layer whose A is too large to keep whole on every rank (the placement, below) has A
 * block-cyclic on the grid of all ranks instead: each inner step all-gathers the step's
 * scaled inputs (in_l numbers per sample) and every rank adds them to its own blocks; after
 * the loop pdsyevd gives A = V diag(sigma) V^T on the grid, and with D_l = delta I
 *   U = V [((V^T Gamma Q_G) ./ (tau sigma lambda^T + delta)) Q_G^T],
 * V^T Gamma by one allreduce (in_l x out_l), the rest on each rank's own blocks, summed by
 * the allreduce of u. G_l stays with its owner as above. */
#ifndef NHGD_ESTIMATORS_NHGD_KFAC_NET_H
#define NHGD_ESTIMATORS_NHGD_KFAC_NET_H

#include <mpi.h>
#include <stdint.h>

#include "io/section.h"

struct nhgd_grid;
struct nhgd_bcmat;

typedef struct nhgd_kfac_net {
  MPI_Comm comm;
  int rank, size;
  int L;
  int *in, *out;   /* per layer */
  int64_t *off;    /* offset of layer l in theta */
  int64_t d;       /* sum of in_l out_l */
  int *owner;      /* rank that reduces and solves layer l */
  double **A, **G; /* per layer: partial sums, lower triangles (on the owner, after the
                      reduction: the sums) */
  double *trF;     /* per layer partial */
  double **red;    /* per layer: packed [A lower, G lower, trace F] for the reduction (on the
                      owner, after it: the sums, kept until the next reduction) */
  int refresh;     /* outer steps one decomposition serves (--kfac-refresh) */
  int have;        /* the owners' red holds sums to decompose (the same on every rank) */
  int *valid;      /* per layer: bc holds the decomposition of those sums (every rank) */
  MPI_Request *req;
  int pending;
  int failed;   /* a local failure not yet agreed on */
  double bytes; /* payload this rank received from the solve's reductions */
  /* workspace */
  double *S;   /* max(in, out) x bmax: scaled columns of one batch */
  double **bc; /* per layer: the owner's record of the decomposed factors (broadcast) */
  /* Layers with A block-cyclic (dist[l]): A summed on the grid, V and sigma its eigen-
   * decomposition, trA its trace at that decomposition (replicated). */
  int *dist;
  const struct nhgd_grid *grid;
  struct nhgd_bcmat **Ab, **Vb;
  double **sig, *trA;
  double *Zg;           /* max dist in x bmax: a step's scaled inputs from every rank */
  double *nrm;          /* bmax: |a|^2 of this rank's samples of a block-cyclic layer */
  int *cnt, *dsp, *nbs; /* P: doubles each rank sends in that all-gather, where, samples */
  double *Yr, *Wr, *bw; /* max dist in x out: V^T Gamma, the rows for V W; bcmat work */
  double *Y;            /* in x ceil(out / P): this rank's share of a layer's rotated columns */
  double *Yall;         /* in x out: a layer solved whole on its owner (damping per input row) */
  double *Sys;          /* in x in: one system of that case */
  double *tri;          /* 2 in: one tridiagonal system */
  double *wk;
  int *iwk;
  int lwork, liwork;
  double *u; /* d + 1: this rank's layers of u, and a failure flag */
} nhgd_kfac_net;

/* Not collective: allocate for L layers of the given shapes and batches of at most bmax
 * local samples; the layers' owners are chosen here (the same on every rank). refresh: the
 * outer steps one decomposition serves (1: every step). */
int nhgd_kfac_net_init(nhgd_kfac_net *k, MPI_Comm comm, int L, const int *in, const int *out,
                       int bmax, int refresh, const int *dist, const struct nhgd_grid *grid,
                       int block);

/* The placement mode of a --kfac-layout value (auto 0, replicated 1, distributed 2). */
int nhgd_kfac_net_layout_mode(const char *layout);

/* Placement (mode 0: auto, 1: every A whole on every rank, 2: every A block-cyclic): dist[l]
 * = 1 for the layers whose A is block-cyclic. Auto keeps every A whole unless that needs more
 * than budget bytes per rank, and then makes A block-cyclic layer by layer, the largest
 * first, until it fits. Returns the bytes per rank of the placement (P ranks, at most B
 * samples per step); the same on every rank. */
double nhgd_kfac_net_place(int L, const int *in, const int *out, int P, double B, int mode,
                           double budget, int *dist);

void nhgd_kfac_net_free(nhgd_kfac_net *k);

/* Not collective: start a new inner loop (every partial sum to zero). */
void nhgd_kfac_net_reset(nhgd_kfac_net *k);

/* Fold nb of this rank's samples into the sums. a[l] (in_l x nb) and g[l] (out_l x nb) are
 * the layer factors, w (nb) the Fisher weights. Collective when a layer is block-cyclic
 * (every rank calls it once per step, nb = 0 allowed), else local. */
int nhgd_kfac_net_add(nhgd_kfac_net *k, int nb, double *const *a, double *const *g,
                      const double *w);

/* Collective: start the reductions onto the owners (nothing may be added after it), or
 * drop a started one (not collective when none is pending). */
int nhgd_kfac_net_start_reduce(nhgd_kfac_net *k);
void nhgd_kfac_net_cancel_reduce(nhgd_kfac_net *k);

/* Collective: u = M^{-1} g with M = blockdiag_l tau_l G_l (x) A_l + diag(D) (D: d entries > 0,
 * per layer either one value or one value per input row). u on every rank. fresh: the sums of
 * this inner loop are reduced and decomposed; otherwise the factors last reduced serve again
 * (with --kfac-refresh), decomposed only where the form of D calls for another record, and
 * with the damping of this step. */
int nhgd_kfac_net_solve(nhgd_kfac_net *k, const double *D, const double *g, double *u, int fresh);

/* NULL when D (d entries) has the per-layer form the exact solve needs, else why not (the
 * message names the layer). */
const char *nhgd_kfac_net_damping_refusal(int L, const int *in, const int *out, const double *D,
                                          char *buf, int len);

/* Collective: the partial sums into a checkpoint section, and back (another number of ranks
 * gives every saved partial's sum to rank 0). */
int nhgd_kfac_net_save(nhgd_kfac_net *k, nhgd_section *sec);
int nhgd_kfac_net_load(nhgd_kfac_net *k, nhgd_section *sec);

/* Not collective: the placement a checkpoint section recorded into dist (L entries); 0 when
 * it records none. */
int nhgd_kfac_net_placement(nhgd_section *resume, int L, int *dist);

/* Collective: with refresh > 1, only the sums last reduced (which outlive an inner loop), for
 * a restart at an outer-step boundary; a section without them leaves none (have = 0). */
int nhgd_kfac_net_load_kept(nhgd_kfac_net *k, nhgd_section *sec);

/* For the route planner: flops per rank per outer step (factor updates over T steps of B
 * samples spread over P ranks, and the busiest owner's solve), and bytes per rank. */
void nhgd_kfac_net_cost(int L, const int *in, const int *out, const int *dist, int P, double T,
                        double B, double *flops, double *bytes);

#endif
