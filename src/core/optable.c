/* Table-driven option parsing: defaults, options files, environment and argv. */
#include "core/optable.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nhgd/errors.h"

static const nhgd_opt_spec *find(const nhgd_opt_spec *specs, const char *name, size_t len) {
  for (const nhgd_opt_spec *s = specs; s->name; ++s)
    if (strlen(s->name) == len && strncmp(s->name, name, len) == 0) return s;
  return NULL;
}

static int in_choices(const char *choices, const char *v) {
  size_t n = strlen(v);
  for (const char *c = choices; *c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && strncmp(c, v, n) == 0) return 1;
    if (!bar) break;
    c = bar + 1;
  }
  return 0;
}

static int check_range(const nhgd_opt_spec *s, double x, const char *value, const char *source) {
  if (s->min <= s->max && (x < s->min || x > s->max))
    NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): value %s is outside the range [%g, %g]", s->name,
              source, value, s->min, s->max);
  return NHGD_OK;
}

int nhgd_optable_set(const nhgd_opt_spec *specs, void *base, const char *name, const char *value,
                     const char *source) {
  const nhgd_opt_spec *s = find(specs, name, strlen(name));
  if (!s) NHGD_FAIL(NHGD_ERR_ARG, "unknown option --%s (%s); see --help", name, source);
  char *p = (char *)base + s->offset;
  char *end = NULL;
  errno = 0;
  switch (s->type) {
  case OPT_INT:
  case OPT_I64: {
    long long x = strtoll(value, &end, 10);
    if (errno || end == value || *end)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not an integer", name, source, value);
    NHGD_CHECK(check_range(s, (double)x, value, source));
    if (s->type == OPT_INT) {
      if (x < INT32_MIN || x > INT32_MAX)
        NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): %s does not fit in int", name, source, value);
      *(int *)p = (int)x;
    } else {
      *(int64_t *)p = (int64_t)x;
    }
    break;
  }
  case OPT_U64: {
    if (value[0] == '-')
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' must be non-negative", name, source, value);
    unsigned long long x = strtoull(value, &end, 10);
    if (errno || end == value || *end)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not an unsigned integer", name, source,
                value);
    *(uint64_t *)p = (uint64_t)x;
    break;
  }
  case OPT_REAL: {
    double x = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(x))
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not a finite number", name, source, value);
    NHGD_CHECK(check_range(s, x, value, source));
    *(double *)p = x;
    break;
  }
  case OPT_BOOL: {
    int x;
    if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") ||
        !strcmp(value, "on"))
      x = 1;
    else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") ||
             !strcmp(value, "off"))
      x = 0;
    else
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not a boolean (1/0, true/false)", name,
                source, value);
    *(int *)p = x;
    break;
  }
  case OPT_CHOICE:
    if (!in_choices(s->choices, value))
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not one of %s", name, source, value,
                s->choices);
    /* fall through */
  case OPT_STR:
    if (strlen(value) >= s->size)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): value longer than %zu characters", name, source,
                s->size - 1);
    memcpy(p, value, strlen(value) + 1);
    break;
  }
  return NHGD_OK;
}

void nhgd_optable_defaults(const nhgd_opt_spec *specs, void *base) {
  for (const nhgd_opt_spec *s = specs; s->name; ++s) {
    int rc = nhgd_optable_set(specs, base, s->name, s->def, "default");
    (void)rc; /* defaults are checked by the options unit test */
  }
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s))
    ++s;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    --e;
  *e = '\0';
  return s;
}

int nhgd_optable_file(const nhgd_opt_spec *specs, void *base, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) NHGD_FAIL(NHGD_ERR_IO, "options file %s: cannot open (%s)", path, strerror(errno));
  char line[8192], source[4200];
  int lineno = 0, rc = NHGD_OK;
  while (fgets(line, sizeof line, f)) {
    ++lineno;
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *s = trim(line);
    if (!*s) continue;
    if (s[0] == '-' && s[1] == '-') s += 2;
    size_t klen = strcspn(s, "= \t");
    char *v = s + klen;
    char saved = *v;
    *v = '\0';
    if (saved) v = trim(v + 1);
    if (*v == '=') v = trim(v + 1);
    snprintf(source, sizeof source, "%s line %d", path, lineno);
    if (!*v) {
      rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__, "option --%s (%s): missing value", s,
                          source);
      break;
    }
    rc = nhgd_optable_set(specs, base, s, v, source);
    if (rc) break;
  }
  fclose(f);
  return rc;
}

int nhgd_optable_env(const nhgd_opt_spec *specs, void *base, const char *prefix) {
  char var[256];
  for (const nhgd_opt_spec *s = specs; s->name; ++s) {
    size_t n = (size_t)snprintf(var, sizeof var, "%s", prefix);
    for (const char *c = s->name; *c && n + 1 < sizeof var; ++c)
      var[n++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    var[n] = '\0';
    const char *v = getenv(var);
    if (v) {
      char source[300];
      snprintf(source, sizeof source, "environment %s", var);
      NHGD_CHECK(nhgd_optable_set(specs, base, s->name, v, source));
    }
  }
  return NHGD_OK;
}

const char *nhgd_optable_config_path(int argc, char **argv, const char *envname) {
  for (int i = 0; i < argc; ++i) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) return argv[i + 1];
    if (!strncmp(argv[i], "--config=", 9)) return argv[i] + 9;
  }
  return envname ? getenv(envname) : NULL;
}

int nhgd_optable_argv(const nhgd_opt_spec *specs, void *base, int argc, char **argv, int *help) {
  for (int i = 0; i < argc; ++i) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      if (help) *help = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0)
      NHGD_FAIL(NHGD_ERR_ARG, "unexpected argument '%s' (options look like --name value)", a);
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const char *value;
    if (eq) {
      value = eq + 1;
    } else {
      if (i + 1 >= argc) NHGD_FAIL(NHGD_ERR_ARG, "option %s needs a value", a);
      value = argv[++i];
    }
    if (len == 6 && !strncmp(name, "config", 6)) continue;
    char key[128];
    if (len >= sizeof key) NHGD_FAIL(NHGD_ERR_ARG, "unknown option %s; see --help", a);
    memcpy(key, name, len);
    key[len] = '\0';
    NHGD_CHECK(nhgd_optable_set(specs, base, key, value, "command line"));
  }
  return NHGD_OK;
}

void nhgd_optable_format(const nhgd_opt_spec *s, const void *base, char *buf, size_t len) {
  const char *p = (const char *)base + s->offset;
  switch (s->type) {
  case OPT_INT:
  case OPT_BOOL:
    snprintf(buf, len, "%d", *(const int *)p);
    break;
  case OPT_I64:
    snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
    break;
  case OPT_U64:
    snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
    break;
  case OPT_REAL: {
    /* Shortest of 15 or 17 digits that reads back as the same double. */
    double x = *(const double *)p;
    snprintf(buf, len, "%.15g", x);
    if (strtod(buf, NULL) != x) snprintf(buf, len, "%.17g", x);
    break;
  }
  case OPT_STR:
  case OPT_CHOICE:
    snprintf(buf, len, "%s", p);
    break;
  }
}

void nhgd_optable_help(const nhgd_opt_spec *specs, FILE *out) {
  for (const nhgd_opt_spec *s = specs; s->name; ++s) {
    char range[128] = "";
    if (s->type == OPT_CHOICE)
      snprintf(range, sizeof range, " {%s}", s->choices);
    else if (s->min <= s->max && s->type != OPT_BOOL)
      snprintf(range, sizeof range, " [%g, %g]", s->min, s->max);
    fprintf(out, "  --%-18s %s%s (default: %s)\n", s->name, s->help, range,
            s->def[0] ? s->def : "\"\"");
  }
}
