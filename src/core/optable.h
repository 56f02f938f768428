/* Table-driven option parsing shared by the run options and the data subcommands. */
#ifndef NHGD_CORE_OPTABLE_H
#define NHGD_CORE_OPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { OPT_INT, OPT_I64, OPT_U64, OPT_REAL, OPT_BOOL, OPT_STR, OPT_CHOICE } nhgd_opt_type;

/* One option: where it lives in the struct, its default as text and its valid range.
 * For OPT_CHOICE, choices is a '|'-separated list. size is the buffer size of strings. */
typedef struct nhgd_opt_spec {
  const char *name;
  nhgd_opt_type type;
  size_t offset;
  size_t size;
  const char *def;
  double min, max; /* numeric range, inclusive; ignored when min > max */
  const char *choices;
  const char *help;
} nhgd_opt_spec;

/* Set every field from its default text. */
void nhgd_optable_defaults(const nhgd_opt_spec *specs, void *base);
/* Set one option from text; source names where the value came from (for messages). */
int nhgd_optable_set(const nhgd_opt_spec *specs, void *base, const char *name, const char *value,
                     const char *source);
/* Options file: lines "name = value" (or "name value"); '#' starts a comment. */
int nhgd_optable_file(const nhgd_opt_spec *specs, void *base, const char *path);
/* Environment variables PREFIX<NAME> with NAME upper case and '-' as '_'. */
int nhgd_optable_env(const nhgd_opt_spec *specs, void *base, const char *prefix);
/* argv of "--name value" / "--name=value"; --help sets *help; --config is skipped (handled
 * by the caller through nhgd_optable_config_path). */
int nhgd_optable_argv(const nhgd_opt_spec *specs, void *base, int argc, char **argv, int *help);
/* The value of --config in argv, else of the environment variable envname, else NULL. */
const char *nhgd_optable_config_path(int argc, char **argv, const char *envname);
void nhgd_optable_help(const nhgd_opt_spec *specs, FILE *out);
/* Value of one option as text. */
void nhgd_optable_format(const nhgd_opt_spec *spec, const void *base, char *buf, size_t len);

#endif
