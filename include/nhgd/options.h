/* Options: a handle holding blocks of typed options, each block a table of specs (name,
 * type, default, range, help, whether it shapes the trajectory) owned by the module that
 * reads it. Values come from a file, the environment and the command line (in that order of
 * precedence, later wins) and are read back by name with typed getters. */
#ifndef NHGD_OPTIONS_H
#define NHGD_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nhgd/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NHGD_PATH_MAX 4096

typedef struct nhgd_options nhgd_options;

typedef enum {
  NHGD_OPT_INT,   /* int */
  NHGD_OPT_I64,   /* int64_t */
  NHGD_OPT_U64,   /* uint64_t */
  NHGD_OPT_REAL,  /* double */
  NHGD_OPT_BOOL,  /* int, 0 or 1 */
  NHGD_OPT_STR,   /* char[size] */
  NHGD_OPT_CHOICE /* char[size], one of the '|'-separated choices */
} nhgd_opt_type;

/* The option changes the run's trajectory: a checkpoint continues only a run that agrees. */
#define NHGD_OPT_TRAJECTORY 1u
/* The range is open at min (the value must be above it) or at max (below it). */
#define NHGD_OPT_MIN_OPEN 2u
#define NHGD_OPT_MAX_OPEN 4u

/* One option of a block: where it lives in the block's struct (offset, and for strings the
 * buffer size), its default as text and its valid range (inclusive unless flags has
 * NHGD_OPT_MIN_OPEN or NHGD_OPT_MAX_OPEN; ignored when min > max). A table ends with an entry
 * whose name is NULL. */
typedef struct nhgd_option_spec {
  const char *name;
  nhgd_opt_type type;
  size_t offset;
  size_t size;
  const char *def;
  double min, max;
  const char *choices;
  const char *help;
  unsigned flags;
} nhgd_option_spec;

/* Cross-option check of one block, given the whole set (NHGD_OK or an NHGD_ERR_ARG error). */
typedef int (*nhgd_option_check)(const void *block, const nhgd_options *all);

/* Which runs read options of a block. names: comma-separated options of the block, or NULL
 * for every option of it that no earlier entry names. applies: a condition on the values of
 * other options (of any block) under which the run reads them:
 *   "NAME=A|B"       option NAME is A or B (its value as text, as --NAME would give it);
 *   "P=x,Q=y"        every condition of the list holds;
 *   "P=x;P=y,Q=z"    one of the alternatives holds;
 *   ""               every run reads them.
 * A condition on an option the set does not have holds. A table ends with an entry whose
 * applies is NULL. */
typedef struct nhgd_option_scope {
  const char *names;
  const char *applies;
} nhgd_option_scope;

/* A block: a name, its table, the size of the struct the offsets point into, an optional
 * check, and an optional table of scopes (NULL: every run reads every option). */
typedef struct nhgd_option_block {
  const char *name;
  const nhgd_option_spec *specs;
  size_t size;
  nhgd_option_check check;
  const nhgd_option_scope *scopes;
} nhgd_option_block;

/* Not collective. An empty set (for a program's own options). */
NHGD_API int nhgd_options_create(nhgd_options **out);
/* Not collective. The options of `nhgd run`: the solver's, the problems', and each
 * registered estimator's block, all at their defaults. */
NHGD_API int nhgd_options_create_run(nhgd_options **out);
/* Not collective. Add a block (its struct allocated, zeroed and set to the defaults). The
 * names of its options must be new to the set. */
NHGD_API int nhgd_options_add_block(nhgd_options *o, const nhgd_option_block *block);
/* Not collective. A deep copy. */
NHGD_API int nhgd_options_copy(const nhgd_options *o, nhgd_options **out);
/* NULL-safe; sets *o to NULL. */
NHGD_API void nhgd_options_destroy(nhgd_options **o);

/* Not collective (call it on every rank with the same arguments; the result is identical).
 * Applies, in order: the file named by --config (or the environment variable
 * <PREFIX>CONFIG), environment variables <PREFIX><NAME> (upper case, '-' as '_'), then
 * argv[0..argc) of the form --name value or --name=value. env_prefix NULL reads no
 * environment. Unknown names, malformed or out-of-range values are errors naming the option
 * and its source. Sets *help when --help is present. */
NHGD_API int nhgd_options_parse(nhgd_options *o, int argc, char **argv, const char *env_prefix,
                                int *help);
/* Set one option from text; source names where the value came from (for messages). */
NHGD_API int nhgd_options_set(nhgd_options *o, const char *name, const char *value,
                              const char *source);
/* Typed setters and getters by name. An unknown name or a type that does not fit is an
 * NHGD_ERR_ARG error. get_int reads INT, I64, U64 and BOOL options; get_string STR and
 * CHOICE options (the pointer lives as long as the set and the value). */
NHGD_API int nhgd_options_set_int(nhgd_options *o, const char *name, int64_t value);
NHGD_API int nhgd_options_set_real(nhgd_options *o, const char *name, double value);
NHGD_API int nhgd_options_set_string(nhgd_options *o, const char *name, const char *value);
NHGD_API int nhgd_options_get_int(const nhgd_options *o, const char *name, int64_t *value);
NHGD_API int nhgd_options_get_real(const nhgd_options *o, const char *name, double *value);
NHGD_API int nhgd_options_get_string(const nhgd_options *o, const char *name, const char **value);
/* The struct of a block, for the module that owns it (NULL if the set has no such block). */
NHGD_API const void *nhgd_options_block(const nhgd_options *o, const char *block);

/* Run every block's check. Not collective. */
NHGD_API int nhgd_options_validate(const nhgd_options *o);
/* Not collective (the log prints on rank 0 only). For every option given a value (in a file,
 * the environment, the command line or by a setter) that this run does not read, by the
 * scopes of its block, log a warning naming where it was given, what it applies to and the
 * values that rule it out. Returns the number of such options. nhgd_solver_create calls it. */
NHGD_API int nhgd_options_warn_unused(const nhgd_options *o);
/* Print every option with its default, range or choices, and description. */
NHGD_API void nhgd_options_help(const nhgd_options *o, FILE *out);
/* Not collective: *is_default = whether option name holds the value its default reads as
 * (given or not). Errors: unknown name, allocation. */
NHGD_API int nhgd_options_is_default(const nhgd_options *o, const char *name, int *is_default);
/* Call fn(name, value-as-text, flags, arg) for every option, block by block. */
NHGD_API void nhgd_options_foreach(const nhgd_options *o,
                                   void (*fn)(const char *name, const char *value, unsigned flags,
                                              void *arg),
                                   void *arg);

#ifdef __cplusplus
}
#endif
#endif
