/* Run options: one struct with defaults, filled from a file, the environment and the
 * command line (in that order of precedence, later wins), validated once. */
#ifndef NHGD_OPTIONS_H
#define NHGD_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NHGD_PATH_MAX 4096

typedef struct nhgd_options {
  /* input, problem, method, output */
  char data[NHGD_PATH_MAX];    /* input HDF5 file */
  char problem[32];            /* ridge | logreg | hyperclean */
  char estimator[32];          /* nhgd | exact | cg | neumann | soba | none */
  char output[NHGD_PATH_MAX];  /* output HDF5 file */
  char metrics[NHGD_PATH_MAX]; /* JSON-lines metrics file, "" for none */
  char v_from[NHGD_PATH_MAX];  /* start v from /v of this HDF5 file, "" for v_init */
  /* outer loop */
  int64_t outer_steps;
  char outer_opt[16]; /* sgd | adam */
  double outer_lr;
  char outer_schedule[16]; /* const | invsqrt | inv */
  double outer_decay;
  double adam_beta1, adam_beta2, adam_eps;
  /* inner loop */
  int64_t inner_steps;
  int64_t batch;
  double inner_lr;
  char inner_schedule[16]; /* const | inv | cosine */
  double inner_decay;
  int warm_start;
  /* problems */
  double noise_sigma, clean_reg, v_init;
  /* distributed linear algebra */
  int block_size; /* 0: automatic */
  int grid_rows;  /* 0: automatic (near-square, rows <= columns) */
  int hess_chunk; /* training rows per rank per all-gather when forming the exact Hessian */
  int kron;       /* use the Kronecker structure of softmax problems when declared */
  /* the NHGD estimator */
  char efim_route[16];    /* auto | online | accumulate | gram | dense */
  double efim_damping;    /* lambda_F added to D */
  double efim_weight_exp; /* c_s = w_s^exp */
  char efim_mode[8];      /* mean | ema */
  double efim_beta;       /* ema: in (0, 1) */
  char cross_mode[16];    /* end | average: where J is evaluated */
  int overlap;            /* fold step t into the EFIM while SGD takes step t+1 */
  double mem_per_rank;    /* MiB a rank may use (0: from MemAvailable) */
  /* the baseline estimators cg, neumann, soba */
  int hvp_steps;      /* cg: CG iterations Q; neumann: terms Q of the series */
  int64_t hvp_batch;  /* cg, neumann: rows per Hessian-vector product (0: all) */
  int hvp_warm;       /* cg: start from the previous outer step's u */
  double neumann_eta; /* neumann: step eta of the series */
  double soba_rho;    /* soba: step rho of the z update */
  /* checkpoint and restart */
  char checkpoint_dir[NHGD_PATH_MAX]; /* "" disables checkpoints */
  int checkpoint_every;               /* outer steps between checkpoints (0: at stop/end only) */
  int checkpoint_every_inner;         /* inner steps between checkpoints (0: none inside) */
  double checkpoint_seconds;          /* seconds between checkpoints (0: off) */
  int keep;                           /* checkpoints kept */
  char restart[NHGD_PATH_MAX];        /* auto | never | path of one checkpoint */
  int64_t halt_after;                 /* stop with a checkpoint after this many inner steps */
  /* misc */
  uint64_t seed;
  int eval_every; /* evaluate on the test split every this many outer steps (0: never) */
  int log_level;  /* 0 error, 1 warn, 2 info, 3 debug */
} nhgd_options;

/* Set every field to its documented default. Not collective. */
void nhgd_options_default(nhgd_options *o);

/* Not collective (call it on every rank with the same arguments; the result is identical).
 * Applies, in order: the file named by --config (or NHGD_CONFIG), environment variables
 * NHGD_<NAME> (upper case, '-' as '_'), then argv[0..argc) of the form --name value or
 * --name=value. Unknown names, malformed or out-of-range values are errors naming the
 * option and its source. Sets *help when --help is present. */
int nhgd_options_parse(nhgd_options *o, int argc, char **argv, int *help);

/* Check cross-option constraints (e.g. batch >= 1). Not collective. */
int nhgd_options_validate(const nhgd_options *o);

/* Print every option with its default and description. */
void nhgd_options_help(FILE *out);

/* Call fn(name, value-as-text, arg) for every option (for logging and output attributes). */
void nhgd_options_foreach(const nhgd_options *o,
                          void (*fn)(const char *name, const char *value, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
