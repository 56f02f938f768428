/* Data-parallel inner SGD: global minibatches from the counter RNG, one allreduce a step. */
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "core/stop.h"
#include "core/util.h"
#include "inner/inner.h"
#include "nhgd/errors.h"

int nhgd_inner_init(nhgd_inner *in, int64_t d, const nhgd_inner_opts *opt, const nhgd_data *data) {
  const size_t n = (size_t)d;
  const int64_t nl = data->train.n_local;
  const int64_t nrows = opt->batch > nl ? opt->batch : nl;
  in->d = d;
  NHGD_CHECK(nhgd_calloc(&in->theta, n, sizeof(double), "theta"));
  NHGD_CHECK(nhgd_calloc(&in->theta_init, n, sizeof(double), "initial theta"));
  NHGD_CHECK(nhgd_calloc(&in->theta_sum, n, sizeof(double), "sum of inner iterates"));
  NHGD_CHECK(nhgd_calloc(&in->scratch, n + 4, sizeof(double), "scratch"));
  NHGD_CHECK(nhgd_calloc(&in->rows, (size_t)(nrows > 0 ? nrows : 1), sizeof(int), "batch rows"));
  NHGD_CHECK(
      nhgd_calloc(&in->slots, (size_t)(nrows > 0 ? nrows : 1), sizeof(int64_t), "batch slots"));
  return NHGD_OK;
}

void nhgd_inner_free(nhgd_inner *in) {
  nhgd_free(&in->theta);
  nhgd_free(&in->theta_init);
  nhgd_free(&in->theta_sum);
  nhgd_free(&in->scratch);
  nhgd_free(&in->rows);
  nhgd_free(&in->slots);
}

double nhgd_inner_lr(const nhgd_inner_opts *o, int64_t t, int64_t T) {
  if (!strcmp(o->schedule, "inv")) return o->lr / (1.0 + o->decay * (double)t);
  if (!strcmp(o->schedule, "cosine"))
    return o->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)t / (double)T));
  return o->lr;
}

/* Local rows of the global minibatch of (k, t): every rank draws the same B global indices
 * and keeps those it owns, so the trajectory does not depend on the number of ranks. slots
 * receives each kept row's slot in the global batch (the global row with a full batch). */
static int draw_batch(const nhgd_inner *in, int64_t k, int64_t t, int *rows, int64_t *slots) {
  const nhgd_split *tr = &in->data->train;
  int nb = 0;
  if (in->opt->batch == 0) { /* full batch: every row once, deterministic gradient descent */
    for (int i = 0; i < tr->n_local; ++i) {
      rows[i] = i;
      slots[i] = tr->lo + i;
    }
    return tr->n_local;
  }
  for (int64_t slot = 0; slot < in->opt->batch; ++slot) {
    int64_t i = (int64_t)nhgd_rng_below(in->opt->seed, NHGD_STREAM_BATCH, (uint64_t)k, (uint64_t)t,
                                        (uint64_t)slot, (uint64_t)tr->n_global);
    if (i >= tr->lo && i < tr->lo + tr->n_local) {
      slots[nb] = slot;
      rows[nb++] = (int)(i - tr->lo);
    }
  }
  return nb;
}

int nhgd_inner_run(nhgd_inner *in, int64_t k, const nhgd_inner_requests *req, int64_t *tp,
                   nhgd_inner_event *event) {
  const int64_t T = in->opt->steps, d = in->d, t0 = *tp;
  const nhgd_problem *pb = in->pb;
  /* d gradient entries, then the loss, a stop request, a timed-checkpoint request and a
   * failure flag: they ride on the gradient's allreduce, so every rank sees them at the same
   * step without a collective of their own. */
  double *g = in->scratch;
  double loss_acc = in->last_loss;
  *event = NHGD_INNER_DONE;
  if (t0 == 0) {
    if (!in->opt->warm_start) memcpy(in->theta, in->theta_init, (size_t)d * sizeof(double));
    if (in->average) memset(in->theta_sum, 0, (size_t)d * sizeof(double));
  }
  for (int64_t t = t0; t < T; ++t) {
    nhgd_timer_start(in->timers, NHGD_T_SAMPLING);
    int nb = draw_batch(in, k, t, in->rows, in->slots);
    in->step = t;
    nhgd_timer_stop(in->timers, NHGD_T_SAMPLING);

    nhgd_timer_start(in->timers, NHGD_T_INNER_GRAD);
    int rc = pb->ops.inner_grad(pb, in->theta, in->v, nb, in->rows, g, &g[d]);
    nhgd_timer_stop(in->timers, NHGD_T_INNER_GRAD);
    g[d + 3] = rc ? 1.0 : 0.0; /* a failure anywhere, also carried by the allreduce */
    g[d + 1] = req->enabled && nhgd_stop_requested() ? 1.0 : 0.0;
    g[d + 2] = req->enabled && in->rank == 0 && req->every_seconds > 0 &&
                       MPI_Wtime() - req->last_time >= req->every_seconds
                   ? 1.0
                   : 0.0;

    nhgd_timer_start(in->timers, NHGD_T_ALLREDUCE);
    NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, g, (int)d + 4, MPI_DOUBLE, MPI_SUM, in->comm));
    nhgd_timer_stop(in->timers, NHGD_T_ALLREDUCE);
    /* Every rank saw the same flag: agree on the message only when something failed. */
    if (g[d + 3] > 0.0) NHGD_CHECK(nhgd_error_agree(in->comm, rc));

    if (in->observe) NHGD_CHECK(in->observe(in->observe_arg, in->theta, nb, in->rows));

    nhgd_timer_start(in->timers, NHGD_T_INNER_GRAD);
    const double invB = 1.0 / (double)(in->opt->batch ? in->opt->batch : in->data->train.n_global);
    for (int64_t j = 0; j < d; ++j)
      g[j] *= invB;
    loss_acc = g[d] * invB;
    if (t == 0) in->first_loss = loss_acc;
    NHGD_CHECK(pb->ops.reg(pb, in->theta, in->v, NULL, g, NULL));
    const double lr = nhgd_inner_lr(in->opt, t, T);
    int finite = 1;
    for (int64_t j = 0; j < d; ++j) {
      in->theta[j] -= lr * g[j];
      finite &= isfinite(in->theta[j]);
    }
    if (in->average)
      for (int64_t j = 0; j < d; ++j)
        in->theta_sum[j] += in->theta[j];
    nhgd_timer_stop(in->timers, NHGD_T_INNER_GRAD);
    /* theta is replicated and identical everywhere, so every rank reaches the same verdict. */
    in->diverged = finite ? 0 : t + 1;
    /* Was the gradient itself not finite (the data or v at fault), or only the step? Looked
     * at only on the way out, not in every step. */
    int gfinite = 1;
    for (int64_t j = 0; !finite && gfinite && j < d; ++j)
      gfinite = isfinite(g[j]);
    in->bad_gradient = !finite && !gfinite;
    if (!finite)
      NHGD_FAIL(NHGD_ERR_NUMERIC,
                "inner SGD diverged at outer step %lld, inner step %lld (theta is not finite): "
                "lower --inner-lr (now %g)",
                (long long)k, (long long)t, in->opt->lr);
    ++in->steps_run;
    *in->samples += in->opt->batch ? (double)in->opt->batch : (double)in->data->train.n_global;
    if (!req->enabled) continue;
    const int stop = g[d + 1] > 0.0 || (req->halt_after > 0 && in->steps_run >= req->halt_after);
    const int due = g[d + 2] > 0.0 || (req->every_inner > 0 && (t + 1) % req->every_inner == 0);
    if (stop || due) {
      in->last_loss = loss_acc;
      *tp = t + 1;
      *event = stop ? NHGD_INNER_STOP : NHGD_INNER_DUE;
      return NHGD_OK;
    }
  }
  in->last_loss = T > 0 ? loss_acc : NAN;
  *tp = T;
  return NHGD_OK;
}
