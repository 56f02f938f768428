/* The option set behind the public nhgd_options handle: blocks of specs, defaults, parsing
 * from files, the environment and argv, typed access, help and validation. */
#include "nhgd/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "nhgd/errors.h"

#define NHGD_MAX_BLOCKS 16

/* Room for where an option was given (a source as the messages name it). */
#define GIVEN_LEN 128

typedef struct {
  nhgd_option_block def;
  void *base;
  char (*given)[GIVEN_LEN]; /* per spec: where it was given a value ("": its default) */
} opt_block;

struct nhgd_options {
  opt_block blocks[NHGD_MAX_BLOCKS];
  int nblocks;
};

/* The spec of name (len characters), the struct it lives in and its block, or NULL. */
static const nhgd_option_spec *find_in(const nhgd_options *o, const char *name, size_t len,
                                       void **base, int *block) {
  for (int b = 0; b < o->nblocks; ++b)
    for (const nhgd_option_spec *s = o->blocks[b].def.specs; s->name; ++s)
      if (strlen(s->name) == len && strncmp(s->name, name, len) == 0) {
        if (base) *base = o->blocks[b].base;
        if (block) *block = b;
        return s;
      }
  return NULL;
}

static const nhgd_option_spec *find(const nhgd_options *o, const char *name, size_t len,
                                    void **base) {
  return find_in(o, name, len, base, NULL);
}

/* Remember that spec s of block b was given a value by source. */
static void mark_given(nhgd_options *o, int b, const nhgd_option_spec *s, const char *source) {
  char *to = o->blocks[b].given[s - o->blocks[b].def.specs];
  size_t n = strlen(source);
  if (n >= GIVEN_LEN) n = GIVEN_LEN - 1; /* a long path: its start names it well enough */
  memcpy(to, source, n);
  to[n] = '\0';
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

/* A bound as the user would write it: integers exactly, reals in the shortest form that
 * reads back as the same double. */
static void format_bound(const nhgd_option_spec *s, double x, char *buf, size_t len) {
  if (s->type != NHGD_OPT_REAL && fabs(x) < 9.2e18) {
    snprintf(buf, len, "%lld", (long long)x);
    return;
  }
  snprintf(buf, len, "%g", x);
  if (strtod(buf, NULL) != x) snprintf(buf, len, "%.15g", x);
  if (strtod(buf, NULL) != x) snprintf(buf, len, "%.17g", x);
}

/* "[min, max]", with a parenthesis at an open end. */
static void format_range(const nhgd_option_spec *s, char *buf, size_t len) {
  char lo[40], hi[40];
  format_bound(s, s->min, lo, sizeof lo);
  format_bound(s, s->max, hi, sizeof hi);
  snprintf(buf, len, "%c%s, %s%c", s->flags & NHGD_OPT_MIN_OPEN ? '(' : '[', lo, hi,
           s->flags & NHGD_OPT_MAX_OPEN ? ')' : ']');
}

static int check_range(const nhgd_option_spec *s, double x, const char *value, const char *source) {
  if (s->min > s->max) return NHGD_OK;
  const int below = s->flags & NHGD_OPT_MIN_OPEN ? x <= s->min : x < s->min;
  const int above = s->flags & NHGD_OPT_MAX_OPEN ? x >= s->max : x > s->max;
  if (below || above) {
    char range[96];
    format_range(s, range, sizeof range);
    NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): value %s is outside the range %s", s->name, source,
              value, range);
  }
  return NHGD_OK;
}

static int set_spec(const nhgd_option_spec *s, void *base, const char *value, const char *source) {
  const char *name = s->name;
  char *p = (char *)base + s->offset;
  char *end = NULL;
  errno = 0;
  switch (s->type) {
  case NHGD_OPT_INT:
  case NHGD_OPT_I64: {
    long long x = strtoll(value, &end, 10);
    if (errno || end == value || *end)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not an integer", name, source, value);
    NHGD_CHECK(check_range(s, (double)x, value, source));
    if (s->type == NHGD_OPT_INT) {
      if (x < INT32_MIN || x > INT32_MAX)
        NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): %s does not fit in int", name, source, value);
      *(int *)p = (int)x;
    } else {
      *(int64_t *)p = (int64_t)x;
    }
    break;
  }
  case NHGD_OPT_U64: {
    if (value[0] == '-')
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' must be non-negative", name, source, value);
    unsigned long long x = strtoull(value, &end, 10);
    if (errno || end == value || *end)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not an unsigned integer", name, source,
                value);
    *(uint64_t *)p = (uint64_t)x;
    break;
  }
  case NHGD_OPT_REAL: {
    double x = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(x))
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not a finite number", name, source, value);
    NHGD_CHECK(check_range(s, x, value, source));
    *(double *)p = x;
    break;
  }
  case NHGD_OPT_BOOL: {
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
  case NHGD_OPT_CHOICE:
    if (!in_choices(s->choices, value))
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): '%s' is not one of %s", name, source, value,
                s->choices);
    /* fall through */
  case NHGD_OPT_STR:
    if (strlen(value) >= s->size)
      NHGD_FAIL(NHGD_ERR_ARG, "option --%s (%s): value longer than %zu characters", name, source,
                s->size - 1);
    memcpy(p, value, strlen(value) + 1);
    break;
  }
  return NHGD_OK;
}

int nhgd_options_create(nhgd_options **out) {
  return nhgd_calloc(out, 1, sizeof **out, "options");
}

int nhgd_options_add_block(nhgd_options *o, const nhgd_option_block *block) {
  if (o->nblocks == NHGD_MAX_BLOCKS)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "options: more than %d blocks", NHGD_MAX_BLOCKS);
  for (const nhgd_option_spec *s = block->specs; s->name; ++s)
    if (find(o, s->name, strlen(s->name), NULL))
      NHGD_FAIL(NHGD_ERR_INTERNAL, "options: --%s of block %s is defined twice", s->name,
                block->name);
  void *base;
  char(*given)[GIVEN_LEN] = NULL;
  size_t n = 0;
  while (block->specs[n].name)
    ++n;
  NHGD_CHECK(nhgd_calloc(&base, 1, block->size ? block->size : 1, "option block"));
  int rc = nhgd_calloc(&given, n ? n : 1, sizeof *given, "option sources");
  for (const nhgd_option_spec *s = block->specs; s->name && !rc; ++s)
    rc = set_spec(s, base, s->def, "default");
  if (rc) {
    nhgd_free(&base);
    nhgd_free(&given);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  o->blocks[o->nblocks].def = *block;
  o->blocks[o->nblocks].base = base;
  o->blocks[o->nblocks].given = given;
  ++o->nblocks;
  return NHGD_OK;
}

int nhgd_options_copy(const nhgd_options *o, nhgd_options **out) {
  NHGD_CHECK(nhgd_options_create(out));
  for (int b = 0; b < o->nblocks; ++b) {
    int rc = nhgd_options_add_block(*out, &o->blocks[b].def);
    if (rc) {
      nhgd_options_destroy(out);
      return nhgd_error_trace(rc, __FILE__, __LINE__);
    }
    memcpy((*out)->blocks[b].base, o->blocks[b].base, o->blocks[b].def.size);
    size_t n = 0;
    while (o->blocks[b].def.specs[n].name)
      ++n;
    memcpy((*out)->blocks[b].given, o->blocks[b].given, n * sizeof *o->blocks[b].given);
  }
  return NHGD_OK;
}

void nhgd_options_destroy(nhgd_options **o) {
  if (!o || !*o) return;
  for (int b = 0; b < (*o)->nblocks; ++b) {
    nhgd_free(&(*o)->blocks[b].base);
    nhgd_free(&(*o)->blocks[b].given);
  }
  nhgd_free(o);
}

const void *nhgd_options_block(const nhgd_options *o, const char *block) {
  for (int b = 0; b < o->nblocks; ++b)
    if (!strcmp(o->blocks[b].def.name, block)) return o->blocks[b].base;
  return NULL;
}

int nhgd_options_set(nhgd_options *o, const char *name, const char *value, const char *source) {
  void *base;
  int b;
  const nhgd_option_spec *s = find_in(o, name, strlen(name), &base, &b);
  if (!s) NHGD_FAIL(NHGD_ERR_ARG, "unknown option --%s (%s); see --help", name, source);
  NHGD_CHECK(set_spec(s, base, value, source));
  mark_given(o, b, s, source);
  return NHGD_OK;
}

static void format_spec(const nhgd_option_spec *s, const void *base, char *buf, size_t len) {
  const char *p = (const char *)base + s->offset;
  switch (s->type) {
  case NHGD_OPT_INT:
  case NHGD_OPT_BOOL:
    snprintf(buf, len, "%d", *(const int *)p);
    break;
  case NHGD_OPT_I64:
    snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
    break;
  case NHGD_OPT_U64:
    snprintf(buf, len, "%" PRIu64, *(const uint64_t *)p);
    break;
  case NHGD_OPT_REAL: {
    /* Shortest of 15 or 17 digits that reads back as the same double. */
    double x = *(const double *)p;
    snprintf(buf, len, "%.15g", x);
    if (strtod(buf, NULL) != x) snprintf(buf, len, "%.17g", x);
    break;
  }
  case NHGD_OPT_STR:
  case NHGD_OPT_CHOICE:
    snprintf(buf, len, "%s", p);
    break;
  }
}

/* Typed access goes through the text form, so ranges and choices are checked the same way
 * whatever the source. */
int nhgd_options_set_int(nhgd_options *o, const char *name, int64_t value) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, value);
  return nhgd_options_set(o, name, buf, "program");
}

int nhgd_options_set_real(nhgd_options *o, const char *name, double value) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", value);
  return nhgd_options_set(o, name, buf, "program");
}

int nhgd_options_set_string(nhgd_options *o, const char *name, const char *value) {
  return nhgd_options_set(o, name, value, "program");
}

static int typed(const nhgd_options *o, const char *name, const void **p,
                 const nhgd_option_spec **spec) {
  void *base;
  const nhgd_option_spec *s = find(o, name, strlen(name), &base);
  if (!s) NHGD_FAIL(NHGD_ERR_ARG, "unknown option --%s", name);
  *p = (const char *)base + s->offset;
  *spec = s;
  return NHGD_OK;
}

int nhgd_options_get_int(const nhgd_options *o, const char *name, int64_t *value) {
  const void *p;
  const nhgd_option_spec *s;
  NHGD_CHECK(typed(o, name, &p, &s));
  switch (s->type) {
  case NHGD_OPT_INT:
  case NHGD_OPT_BOOL:
    *value = *(const int *)p;
    return NHGD_OK;
  case NHGD_OPT_I64:
    *value = *(const int64_t *)p;
    return NHGD_OK;
  case NHGD_OPT_U64:
    *value = (int64_t) * (const uint64_t *)p;
    return NHGD_OK;
  default:
    NHGD_FAIL(NHGD_ERR_ARG, "option --%s is not an integer option", name);
  }
}

int nhgd_options_get_real(const nhgd_options *o, const char *name, double *value) {
  const void *p;
  const nhgd_option_spec *s;
  NHGD_CHECK(typed(o, name, &p, &s));
  if (s->type != NHGD_OPT_REAL) NHGD_FAIL(NHGD_ERR_ARG, "option --%s is not a real option", name);
  *value = *(const double *)p;
  return NHGD_OK;
}

int nhgd_options_get_string(const nhgd_options *o, const char *name, const char **value) {
  const void *p;
  const nhgd_option_spec *s;
  NHGD_CHECK(typed(o, name, &p, &s));
  if (s->type != NHGD_OPT_STR && s->type != NHGD_OPT_CHOICE)
    NHGD_FAIL(NHGD_ERR_ARG, "option --%s is not a string option", name);
  *value = (const char *)p;
  return NHGD_OK;
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

/* Options file: lines "name = value" (or "name value"); '#' starts a comment. */
/* Where in the file each option was set, to warn when one is set twice. */
typedef struct {
  char name[64];
  int line;
} seen_key;
#define MAX_SEEN 512

/* Longest line an options file may hold: far more than any option needs, little enough that
 * a file that is not text (a device, a binary) is refused before it fills the memory. */
#define MAX_LINE ((size_t)1 << 20)

/* The next line of f into *buf (grown as needed), without its '\n': the whole line, however
 * long (*got is 0 at the end of the file). Errors: a control byte, reported by its value and
 * column and never echoed (a NUL byte too: it would end the line for every string function
 * after this one, and the rest of the line would go unread), a line longer than MAX_LINE, a
 * read error. */
static int read_line(FILE *f, const char *path, int lineno, char **buf, size_t *cap, int *got) {
  size_t n = 0;
  *got = 0;
  int c;
  while ((c = getc(f)) != EOF && c != '\n') {
    if (c == 0)
      NHGD_FAIL(NHGD_ERR_ARG, "options file %s line %d: not a text line (a NUL byte at column %zu)",
                path, lineno, n + 1);
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
      NHGD_FAIL(NHGD_ERR_ARG,
                "options file %s line %d: not a text line (byte 0x%02x at column %zu)", path,
                lineno, c, n + 1);
    if (n + 1 >= MAX_LINE)
      NHGD_FAIL(NHGD_ERR_ARG, "options file %s line %d: longer than %zu bytes (not a text file?)",
                path, lineno, MAX_LINE - 1);
    if (n + 1 >= *cap) {
      const size_t grown = *cap ? 2 * *cap : 256;
      char *q = realloc(*buf, grown);
      if (!q) NHGD_FAIL(NHGD_ERR_MEM, "options file %s line %d: out of memory", path, lineno);
      *buf = q;
      *cap = grown;
    }
    (*buf)[n++] = (char)c;
  }
  if (c == EOF && ferror(f))
    NHGD_FAIL(NHGD_ERR_IO, "options file %s line %d: read error (%s)", path, lineno,
              strerror(errno));
  if (c == EOF && n == 0) return NHGD_OK;
  if (!*buf) { /* an empty last line before the end */
    *buf = malloc(1);
    if (!*buf) NHGD_FAIL(NHGD_ERR_MEM, "options file %s: out of memory", path);
    *cap = 1;
  }
  (*buf)[n] = '\0';
  *got = 1;
  return NHGD_OK;
}

static int parse_file(nhgd_options *o, const char *path) {
  if (nhgd_check_regular(path)) {
    nhgd_error_context("options file ");
    return nhgd_error_trace(NHGD_ERR_IO, __FILE__, __LINE__);
  }
  FILE *f = fopen(path, "r");
  if (!f) NHGD_FAIL(NHGD_ERR_IO, "options file %s: cannot open (%s)", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    NHGD_FAIL(NHGD_ERR_IO, "options file %s: is a folder, not a file", path);
  }
  char *line = NULL, source[4200];
  size_t cap = 0;
  int lineno = 0, rc = NHGD_OK, nseen = 0, got = 0;
  static seen_key seen[MAX_SEEN];
  for (;;) {
    ++lineno;
    rc = read_line(f, path, lineno, &line, &cap, &got);
    if (rc || !got) break;
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
    rc = nhgd_options_set(o, s, v, source);
    if (rc) break;
    int dup = -1;
    for (int i = 0; i < nseen && dup < 0; ++i)
      if (!strcmp(seen[i].name, s)) dup = i;
    if (dup >= 0) {
      nhgd_log(NHGD_LOG_WARN,
               "options file %s line %d: --%s is set again (first on line %d); "
               "the last value counts",
               path, lineno, s, seen[dup].line);
      seen[dup].line = lineno;
    } else if (nseen < MAX_SEEN) {
      snprintf(seen[nseen].name, sizeof seen[nseen].name, "%s", s);
      seen[nseen++].line = lineno;
    }
  }
  free(line);
  fclose(f);
  return rc;
}

/* Environment variables PREFIX<NAME> with NAME upper case and '-' as '_'. */
static int parse_env(nhgd_options *o, const char *prefix) {
  char var[256];
  for (int b = 0; b < o->nblocks; ++b)
    for (const nhgd_option_spec *s = o->blocks[b].def.specs; s->name; ++s) {
      size_t n = (size_t)snprintf(var, sizeof var, "%s", prefix);
      for (const char *c = s->name; *c && n + 1 < sizeof var; ++c)
        var[n++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
      var[n] = '\0';
      const char *v = getenv(var);
      if (v) {
        char source[300];
        snprintf(source, sizeof source, "environment %s", var);
        NHGD_CHECK(set_spec(s, o->blocks[b].base, v, source));
        mark_given(o, b, s, source);
      }
    }
  return NHGD_OK;
}

/* argv of "--name value" / "--name=value"; --help sets *help; --config is skipped. */
static int parse_argv(nhgd_options *o, int argc, char **argv, int *help) {
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
    NHGD_CHECK(nhgd_options_set(o, key, value, "command line"));
  }
  return NHGD_OK;
}

int nhgd_options_parse(nhgd_options *o, int argc, char **argv, const char *env_prefix, int *help) {
  if (help) *help = 0;
  const char *cfg = NULL;
  for (int i = 0; i < argc && !cfg; ++i) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg = argv[i + 1];
    if (!strncmp(argv[i], "--config=", 9)) cfg = argv[i] + 9;
  }
  if (!cfg && env_prefix) {
    char var[256];
    snprintf(var, sizeof var, "%sCONFIG", env_prefix);
    cfg = getenv(var);
  }
  if (cfg && *cfg) NHGD_CHECK(parse_file(o, cfg));
  if (env_prefix) NHGD_CHECK(parse_env(o, env_prefix));
  return parse_argv(o, argc, argv, help);
}

int nhgd_options_validate(const nhgd_options *o) {
  for (int b = 0; b < o->nblocks; ++b)
    if (o->blocks[b].def.check) NHGD_CHECK(o->blocks[b].def.check(o->blocks[b].base, o));
  return NHGD_OK;
}

/* ---- Scopes: which runs read an option ---- */

/* The scope condition of spec s of block b: NULL when every run reads it. */
static const char *scope_of(const opt_block *blk, const nhgd_option_spec *s) {
  if (!blk->def.scopes) return NULL;
  const size_t n = strlen(s->name);
  for (const nhgd_option_scope *sc = blk->def.scopes; sc->applies; ++sc) {
    if (!sc->names) return sc->applies;
    for (const char *c = sc->names; *c;) {
      const size_t len = strcspn(c, ",");
      if (len == n && !strncmp(c, s->name, n)) return sc->applies;
      c += len + (c[len] == ',');
    }
  }
  return NULL;
}

/* Does the condition [c, end) "NAME=A|B" hold? *name and *nlen: the option it is about. */
static int condition_holds(const nhgd_options *o, const char *c, const char *end, const char **name,
                           size_t *nlen, char *value, size_t vlen) {
  const char *eq = memchr(c, '=', (size_t)(end - c));
  *name = c;
  *nlen = eq ? (size_t)(eq - c) : (size_t)(end - c);
  void *base;
  const nhgd_option_spec *s = eq ? find(o, c, *nlen, &base) : NULL;
  if (!s) return 1; /* not an option of this set: nothing rules the option out */
  format_spec(s, base, value, vlen);
  const size_t n = strlen(value);
  for (const char *a = eq + 1; a < end;) {
    const char *bar = memchr(a, '|', (size_t)(end - a));
    const char *aend = bar ? bar : end;
    if ((size_t)(aend - a) == n && !strncmp(a, value, n)) return 1;
    a = aend + 1;
  }
  return 0;
}

static void append(char *buf, size_t len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void append(char *buf, size_t len, const char *fmt, ...) {
  const size_t used = strlen(buf);
  if (used + 1 >= len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, len - used, fmt, ap);
  va_end(ap);
}

/* Does the scope hold for this run? When it does not, *why lists the values that rule it
 * out ("--problem ridge", each option once). */
static int scope_holds(const nhgd_options *o, const char *applies, char *why, size_t len) {
  why[0] = '\0';
  for (const char *alt = applies;;) {
    const char *aend = alt + strcspn(alt, ";");
    int holds = 1;
    for (const char *c = alt; c < aend && holds;) {
      const char *cend = c + strcspn(c, ",;");
      const char *name;
      size_t nlen;
      char value[NHGD_PATH_MAX + 64];
      holds = condition_holds(o, c, cend, &name, &nlen, value, sizeof value);
      if (!holds) {
        char key[80];
        snprintf(key, sizeof key, "--%.*s ", (int)nlen, name);
        if (!strstr(why, key)) append(why, len, "%s%s%s", why[0] ? ", " : "", key, value);
      }
      c = cend + (*cend == ',');
    }
    if (holds) return 1;
    if (!*aend) return 0;
    alt = aend + 1;
  }
}

/* The scope in words: "--problem a or b, or to --problem c with --model d". */
static void describe_scope(const char *applies, char *buf, size_t len) {
  buf[0] = '\0';
  for (const char *alt = applies; *alt;) {
    const char *aend = alt + strcspn(alt, ";");
    if (alt != applies) append(buf, len, ", or to ");
    for (const char *c = alt; c < aend;) {
      const char *cend = c + strcspn(c, ",;");
      const char *eq = memchr(c, '=', (size_t)(cend - c));
      if (!eq) eq = cend;
      if (c != alt) append(buf, len, c == alt + strcspn(alt, ",;") + 1 ? " with " : " and ");
      append(buf, len, "--%.*s ", (int)(eq - c), c);
      for (const char *a = eq + 1; a < cend;) {
        const char *bar = memchr(a, '|', (size_t)(cend - a));
        const char *vend = bar ? bar : cend;
        append(buf, len, "%s%.*s",
               a == eq + 1    ? ""
               : vend == cend ? " or "
                              : ", ",
               (int)(vend - a), a);
        a = vend + 1;
      }
      c = cend + (*cend == ',');
    }
    alt = *aend ? aend + 1 : aend;
  }
}

int nhgd_options_warn_unused(const nhgd_options *o) {
  int count = 0;
  for (int b = 0; b < o->nblocks; ++b) {
    const opt_block *blk = &o->blocks[b];
    for (const nhgd_option_spec *s = blk->def.specs; s->name; ++s) {
      const char *given = blk->given[s - blk->def.specs];
      const char *applies = scope_of(blk, s);
      char why[512], what[512];
      if (!given[0] || !applies || !applies[0] || scope_holds(o, applies, why, sizeof why))
        continue;
      describe_scope(applies, what, sizeof what);
      nhgd_log(NHGD_LOG_WARN, "option --%s (%s) is ignored: it applies to %s, and this run has %s",
               s->name, given, what, why);
      ++count;
    }
  }
  return count;
}

void nhgd_options_help(const nhgd_options *o, FILE *out) {
  for (int b = 0; b < o->nblocks; ++b)
    for (const nhgd_option_spec *s = o->blocks[b].def.specs; s->name; ++s) {
      char range[160] = "";
      if (s->type == NHGD_OPT_CHOICE)
        snprintf(range, sizeof range, " {%s}", s->choices);
      else if (s->min <= s->max && s->type != NHGD_OPT_BOOL) {
        range[0] = ' ';
        format_range(s, range + 1, sizeof range - 1);
      }
      fprintf(out, "  --%-18s %s%s (default: %s)\n", s->name, s->help, range,
              s->def[0] ? s->def : "\"\"");
    }
}

int nhgd_options_is_default(const nhgd_options *o, const char *name, int *is_default) {
  void *base;
  int b;
  const nhgd_option_spec *s = find_in(o, name, strlen(name), &base, &b);
  if (!s) NHGD_FAIL(NHGD_ERR_ARG, "unknown option --%s", name);
  /* The default read into a scratch block, both compared in their text form. */
  char *scratch;
  const size_t size = o->blocks[b].def.size;
  NHGD_CHECK(nhgd_calloc(&scratch, size ? size : 1, 1, "option default"));
  int rc = set_spec(s, scratch, s->def, "default");
  if (!rc) {
    char now[NHGD_PATH_MAX + 64], def[NHGD_PATH_MAX + 64];
    format_spec(s, base, now, sizeof now);
    format_spec(s, scratch, def, sizeof def);
    *is_default = !strcmp(now, def);
  }
  nhgd_free(&scratch);
  return rc;
}

void nhgd_options_foreach(const nhgd_options *o,
                          void (*fn)(const char *name, const char *value, unsigned flags,
                                     void *arg),
                          void *arg) {
  char buf[NHGD_PATH_MAX + 64];
  for (int b = 0; b < o->nblocks; ++b)
    for (const nhgd_option_spec *s = o->blocks[b].def.specs; s->name; ++s) {
      format_spec(s, o->blocks[b].base, buf, sizeof buf);
      fn(s->name, buf, s->flags, arg);
    }
}
