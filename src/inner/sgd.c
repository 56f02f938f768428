/* Data-parallel inner SGD: global minibatches from the counter RNG, one allreduce a step. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "core/signals.h"
#include "io/checkpoint.h"
#include "nhgd/errors.h"
#include "outer/engine.h"

double nhgd_inner_lr(const nhgd_options *o, int64_t t, int64_t T) {
  if (!strcmp(o->inner_schedule, "inv")) return o->inner_lr / (1.0 + o->inner_decay * (double)t);
  if (!strcmp(o->inner_schedule, "cosine"))
    return o->inner_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)t / (double)T));
  return o->inner_lr;
}

/* Local rows of the global minibatch of (k, t): every rank draws the same B global indices
 * and keeps those it owns, so the trajectory does not depend on the number of ranks. */
static int draw_batch(const nhgd_engine *e, int64_t k, int64_t t, int *rows) {
  const nhgd_split *tr = &e->data->train;
  int nb = 0;
  if (e->opt.batch == 0) { /* full batch: every row once, deterministic gradient descent */
    for (int i = 0; i < tr->n_local; ++i)
      rows[i] = i;
    return tr->n_local;
  }
  for (int64_t slot = 0; slot < e->opt.batch; ++slot) {
    int64_t i = (int64_t)nhgd_rng_below(e->opt.seed, NHGD_STREAM_BATCH, (uint64_t)k, (uint64_t)t,
                                        (uint64_t)slot, (uint64_t)tr->n_global);
    if (i >= tr->lo && i < tr->lo + tr->n_local) rows[nb++] = (int)(i - tr->lo);
  }
  return nb;
}

int nhgd_inner_loop(nhgd_engine *e, int64_t k, int64_t t0) {
  const int64_t T = e->opt.inner_steps, d = e->d;
  const nhgd_problem *pb = e->pb;
  const int ckpt = e->opt.checkpoint_dir[0] != '\0';
  /* d gradient entries, then the loss, a stop request, a timed-checkpoint request and a
   * failure flag: they ride on the gradient's allreduce, so every rank sees them at the same
   * step without a collective of their own. */
  double *g = e->scratch;
  double loss_acc = e->last_inner_loss;
  const int average = !strcmp(e->opt.cross_mode, "average");
  if (t0 == 0) {
    if (!e->opt.warm_start) memcpy(e->theta, e->theta_init, (size_t)d * sizeof(double));
    if (average) memset(e->theta_sum, 0, (size_t)d * sizeof(double));
  }
  for (int64_t t = t0; t < T; ++t) {
    nhgd_timer_start(&e->timers, NHGD_T_SAMPLING);
    int nb = draw_batch(e, k, t, e->rows);
    nhgd_timer_stop(&e->timers, NHGD_T_SAMPLING);

    nhgd_timer_start(&e->timers, NHGD_T_INNER_GRAD);
    int rc = pb->inner_grad(pb, e->theta, e->v, nb, e->rows, g, &g[d]);
    nhgd_timer_stop(&e->timers, NHGD_T_INNER_GRAD);
    g[d + 3] = rc ? 1.0 : 0.0; /* a failure anywhere, also carried by the allreduce */
    g[d + 1] = ckpt && nhgd_signal_count() > 0 ? 1.0 : 0.0;
    g[d + 2] = ckpt && e->rank == 0 && e->opt.checkpoint_seconds > 0 &&
                       MPI_Wtime() - e->last_ckpt_time >= e->opt.checkpoint_seconds
                   ? 1.0
                   : 0.0;

    nhgd_timer_start(&e->timers, NHGD_T_ALLREDUCE);
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, g, (int)d + 4, MPI_DOUBLE, MPI_SUM, e->comm));
    nhgd_timer_stop(&e->timers, NHGD_T_ALLREDUCE);
    /* Every rank saw the same flag: agree on the message only when something failed. */
    if (g[d + 3] > 0.0) NHGD_CHECK(nhgd_error_agree(e->comm, rc));

    if (e->est && e->est->needs_observe)
      NHGD_CHECK(e->est->observe(e->est, e, e->theta, nb, e->rows));

    nhgd_timer_start(&e->timers, NHGD_T_INNER_GRAD);
    const double invB = 1.0 / (double)(e->opt.batch ? e->opt.batch : e->data->train.n_global);
    for (int64_t j = 0; j < d; ++j)
      g[j] *= invB;
    loss_acc = g[d] * invB;
    NHGD_CHECK(pb->reg(pb, e->theta, e->v, NULL, g, NULL));
    const double lr = nhgd_inner_lr(&e->opt, t, T);
    int finite = 1;
    for (int64_t j = 0; j < d; ++j) {
      e->theta[j] -= lr * g[j];
      finite &= isfinite(e->theta[j]);
    }
    if (average)
      for (int64_t j = 0; j < d; ++j)
        e->theta_sum[j] += e->theta[j];
    nhgd_timer_stop(&e->timers, NHGD_T_INNER_GRAD);
    /* theta is replicated and identical everywhere, so every rank reaches the same verdict. */
    if (!finite)
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "inner SGD diverged at outer step %lld, inner step %lld (theta is not finite): "
                "lower --inner-lr (now %g)",
                (long long)k, (long long)t, e->opt.inner_lr);
    ++e->steps_run;
    e->samples += e->opt.batch ? (double)e->opt.batch : (double)e->data->train.n_global;
    if (!ckpt) continue;
    const int stop = g[d + 1] > 0.0 || (e->opt.halt_after > 0 && e->steps_run >= e->opt.halt_after);
    const int due = g[d + 2] > 0.0 || (e->opt.checkpoint_every_inner > 0 &&
                                       (t + 1) % e->opt.checkpoint_every_inner == 0);
    if (stop || due) {
      e->last_inner_loss = loss_acc;
      NHGD_CHECK(nhgd_checkpoint_write(e, t + 1, 0));
      if (stop) return NHGD_STOPPED;
    }
  }
  e->last_inner_loss = T > 0 ? loss_acc : NAN;
  return NHGD_OK;
}
