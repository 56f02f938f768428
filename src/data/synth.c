/* Synthetic ridge and logistic data with known true parameters (`nhgd data synth`). */
#include "nhgd/data.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/util.h"
#include "data/data_internal.h"

/* First counter of NHGD_STREAM_SYNTH: which quantity is drawn. Splits are numbered 0..2 so
 * that adding rows to one split never changes the others. */
enum { WHAT_THETA = 0, WHAT_X = 1, WHAT_Y = 4 };

void nhgd_synth_options_default(nhgd_synth_options *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->kind, sizeof o->kind, NHGD_SYNTH_DEFAULT_KIND);
  snprintf(o->output, sizeof o->output, NHGD_SYNTH_DEFAULT_OUTPUT);
  o->n_train = NHGD_SYNTH_DEFAULT_N_TRAIN;
  o->n_val = NHGD_SYNTH_DEFAULT_N_VAL;
  o->n_test = NHGD_SYNTH_DEFAULT_N_TEST;
  o->features = NHGD_SYNTH_DEFAULT_FEATURES;
  o->classes = NHGD_SYNTH_DEFAULT_CLASSES;
  o->noise = NHGD_SYNTH_DEFAULT_NOISE;
  o->seed = NHGD_SYNTH_DEFAULT_SEED;
}

/* Rows of split number `split`: X ~ N(0, 1); ridge y = X theta + noise * N(0, 1); logistic
 * y ~ softmax(W^T x) with W = theta stored m x C row-major. */
static void generate(const nhgd_synth_options *o, int split, int logistic, const double *theta,
                     double *logits, nhgd_wsplit *s) {
  const int m = o->features, C = o->classes;
  for (int64_t i = 0; i < s->n; ++i) {
    double *x = s->X + i * m;
    for (int j = 0; j < m; ++j)
      x[j] = nhgd_rng_normal(o->seed, NHGD_STREAM_SYNTH, WHAT_X + split, (uint64_t)i, (uint64_t)j);
    if (!logistic) {
      double dot = 0;
      for (int j = 0; j < m; ++j)
        dot += x[j] * theta[j];
      s->y_real[i] = dot + o->noise * nhgd_rng_normal(o->seed, NHGD_STREAM_SYNTH, WHAT_Y + split,
                                                      (uint64_t)i, 0);
      continue;
    }
    double top = -INFINITY, total = 0;
    for (int k = 0; k < C; ++k) {
      double z = 0;
      for (int j = 0; j < m; ++j)
        z += x[j] * theta[j * C + k];
      logits[k] = z;
      if (z > top) top = z;
    }
    for (int k = 0; k < C; ++k)
      total += (logits[k] = exp(logits[k] - top));
    const double u =
        total * nhgd_rng_uniform(o->seed, NHGD_STREAM_SYNTH, WHAT_Y + split, (uint64_t)i, 0);
    int label = C - 1; /* if rounding leaves u above the last partial sum */
    double acc = 0;
    for (int k = 0; k < C; ++k) {
      acc += logits[k];
      if (u < acc) {
        label = k;
        break;
      }
    }
    s->y_class[i] = label;
  }
}

int nhgd_data_synth(const nhgd_synth_options *o) {
  const int ridge = strncmp(o->kind, "ridge", sizeof o->kind) == 0;
  const int logistic = strncmp(o->kind, "logistic", sizeof o->kind) == 0;
  if (!ridge && !logistic)
    NHGD_FAIL(NHGD_ERR_ARG, "synth: unknown kind '%.*s' (use ridge or logistic)",
              (int)sizeof o->kind, o->kind);
  if (o->n_train < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "synth: n_train = %lld must be >= 1", (long long)o->n_train);
  if (o->n_val < 1)
    NHGD_FAIL(NHGD_ERR_ARG, "synth: n_val = %lld must be >= 1", (long long)o->n_val);
  if (o->n_test < 0)
    NHGD_FAIL(NHGD_ERR_ARG, "synth: n_test = %lld must be >= 0", (long long)o->n_test);
  if (o->features < 1) NHGD_FAIL(NHGD_ERR_ARG, "synth: features = %d must be >= 1", o->features);
  if (logistic && o->classes < 2)
    NHGD_FAIL(NHGD_ERR_ARG, "synth: classes = %d must be >= 2 for kind logistic", o->classes);
  if (ridge && !(o->noise >= 0 && isfinite(o->noise)))
    NHGD_FAIL(NHGD_ERR_ARG, "synth: noise = %g must be finite and >= 0", o->noise);
  if (!o->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "synth: no output file given");
  /* The generator holds the whole file in memory: refuse what cannot fit before allocating. */
  const double cells =
      ((double)o->n_train + (double)o->n_val + (double)o->n_test) * ((double)o->features + 1.0) +
      (double)o->features * (logistic ? (double)o->classes : 1.0);
  double phys = 0.0;
#ifdef _SC_PHYS_PAGES
  phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
#endif
  if (phys > 0.0 && 8.0 * cells > 0.5 * phys)
    NHGD_FAIL(NHGD_ERR_ARG,
              "synth: %lld + %lld + %lld rows of %d features (and %d classes) need %.3g GiB in "
              "memory, more than half of this machine's %.3g GiB: ask for fewer",
              (long long)o->n_train, (long long)o->n_val, (long long)o->n_test, o->features,
              logistic ? o->classes : 1, 8.0 * cells / 1073741824.0, phys / 1073741824.0);

  int rc = NHGD_OK;
  const int m = o->features, C = logistic ? o->classes : 1;
  double *theta = NULL, *logits = NULL;
  nhgd_wsplit splits[3] = {{0}, {0}, {0}};
  const int64_t rows[3] = {o->n_train, o->n_val, o->n_test};
  static const char *const names[3] = {"train", "val", "test"};
  nhgd_h5w w = {.file = H5I_INVALID_HID};

  NHGD_TRY(rc, nhgd_calloc(&theta, (size_t)m * (size_t)C, sizeof *theta, "true parameters"), done);
  NHGD_TRY(rc, nhgd_calloc(&logits, (size_t)C, sizeof *logits, "logits"), done);
  /* Logistic weights are scaled by 1/sqrt(m) so that logits are O(1) for any m: labels
   * then depend on x without being deterministic. */
  const double wscale = logistic ? 1.0 / sqrt((double)m) : 1.0;
  for (int j = 0; j < m; ++j)
    for (int k = 0; k < C; ++k)
      theta[j * C + k] = wscale * nhgd_rng_normal(o->seed, NHGD_STREAM_SYNTH, WHAT_THETA,
                                                  (uint64_t)j, (uint64_t)k);
  for (int s = 0; s < 3; ++s) {
    NHGD_TRY(rc, nhgd_wsplit_alloc(&splits[s], rows[s], m, logistic, names[s]), done);
    generate(o, s, logistic, theta, logits, &splits[s]);
  }

  NHGD_TRY(rc, nhgd_h5w_create(&w, o->output), done);
  if (logistic) NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "n_classes", C), done);
  for (int s = 0; s < 3; ++s)
    if (rows[s] > 0) NHGD_TRY(rc, nhgd_h5w_split(&w, names[s], &splits[s], 0), done);
  NHGD_TRY(rc, nhgd_h5w_group(&w, "/truth"), done);
  if (logistic)
    NHGD_TRY(rc, nhgd_h5w_matrix(&w, "/truth/theta", m, C, theta, 0), done);
  else
    NHGD_TRY(rc, nhgd_h5w_doubles(&w, "/truth/theta", m, theta), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&w, "generator", "synth"), done);
  NHGD_TRY(rc, nhgd_h5w_attr_string(&w, "kind", ridge ? "ridge" : "logistic"), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "n_train", o->n_train), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "n_val", o->n_val), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "n_test", o->n_test), done);
  NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "features", m), done);
  if (logistic) NHGD_TRY(rc, nhgd_h5w_attr_int(&w, "classes", C), done);
  if (ridge) NHGD_TRY(rc, nhgd_h5w_attr_double(&w, "noise_sigma", o->noise), done);
  NHGD_TRY(rc, nhgd_h5w_attr_u64(&w, "seed", o->seed), done);
done:
  rc = nhgd_h5w_finish(&w, rc);
  for (int s = 0; s < 3; ++s)
    nhgd_wsplit_free(&splits[s]);
  nhgd_free(&theta);
  nhgd_free(&logits);
  return rc;
}
