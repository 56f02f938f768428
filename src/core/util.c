/* Checked allocation and HDF5 helpers. */
#include "core/util.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nhgd_calloc(void *pptr, size_t n, size_t size, const char *what) {
  void **p = (void **)pptr;
  *p = NULL;
  if (n == 0 || size == 0) n = size = 1; /* a valid, freeable pointer */
  if (n > SIZE_MAX / size)
    NHGD_FAIL(NHGD_ERR_MEM, "size overflow allocating %s (%zu x %zu bytes)", what, n, size);
  *p = calloc(n, size);
  if (*p && nhgd_fault_hit(NHGD_FAULT_ALLOC)) {
    free(*p);
    *p = NULL;
  }
  if (!*p) NHGD_FAIL(NHGD_ERR_MEM, "out of memory allocating %s (%zu bytes)", what, n * size);
  return NHGD_OK;
}

void nhgd_free(void *pptr) {
  void **p = (void **)pptr;
  free(*p);
  *p = NULL;
}

void nhgd_h5_quiet(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The most telling line of HDF5's error stack: a system error message where there is one,
 * else the innermost description. */
typedef struct {
  char text[256];
  int have_errno;
} h5_cause;

static herr_t take_cause(unsigned n, const H5E_error2_t *e, void *arg) {
  h5_cause *c = arg;
  if (c->have_errno || !e->desc) return 0;
  const char *m = strstr(e->desc, "error message = '");
  if (m) {
    m += strlen("error message = '");
    size_t len = strcspn(m, "'");
    if (len >= sizeof c->text) len = sizeof c->text - 1;
    memcpy(c->text, m, len);
    c->text[len] = '\0';
    c->have_errno = 1;
  } else if (n == 0) {
    snprintf(c->text, sizeof c->text, "%s", e->desc);
  }
  return 0;
}

void nhgd_h5_append_cause(void) {
  h5_cause c = {"", 0};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_cause, &c);
  if (!c.text[0]) return;
  char buf[300];
  snprintf(buf, sizeof buf, " (%s)", c.text);
  nhgd_error_append_fresh(buf);
}

#ifdef NHGD_FAULTS
/* Test builds only. The rank is the world rank: a fault is aimed at one process of the job,
 * whatever communicator the failing call is made on. */
static long fault_calls[NHGD_FAULT_KINDS];
static long fault_at = -1;
static int fault_parsed, fault_kind = -1, fault_rank, fault_fired;

static int fault_rank_cached = -1;
static const char *fault_call = "";

/* The world rank, remembered: the report at exit comes after MPI_Finalize. */
static int fault_world_rank(void) {
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (fault_rank_cached < 0 && up && !down) MPI_Comm_rank(MPI_COMM_WORLD, &fault_rank_cached);
  return fault_rank_cached < 0 ? 0 : fault_rank_cached;
}

static const char *fault_count_path;

/* At exit, after MPI_Finalize: appended to a file, as the launcher may no longer forward
 * standard error by then. */
static void fault_report(void) {
  FILE *f = fopen(fault_count_path, "a");
  if (!f) return;
  fprintf(f, "nhgd-faults: rank %d: h5 %ld alloc %ld\n", fault_world_rank(),
          fault_calls[NHGD_FAULT_H5], fault_calls[NHGD_FAULT_ALLOC]);
  fclose(f);
}

static void fault_parse(void) {
  fault_parsed = 1;
  const char *spec = getenv("NHGD_FAULT");
  const char *count = getenv("NHGD_FAULT_COUNT");
  if (count && count[0]) {
    fault_count_path = count;
    atexit(fault_report);
  }
  if (!spec || !spec[0]) return;
  char kind[16] = "";
  long n = -1;
  int r = 0;
  if (sscanf(spec, "%15[a-z0-9]:%ld:%d", kind, &n, &r) < 2 || n < 1) return;
  fault_kind = !strcmp(kind, "h5") ? NHGD_FAULT_H5 : !strcmp(kind, "alloc") ? NHGD_FAULT_ALLOC : -1;
  fault_at = n;
  fault_rank = r;
}

int nhgd_fault_hit(int kind) {
  if (!fault_parsed) fault_parse();
  long n = ++fault_calls[kind];
  (void)fault_world_rank();
  if (kind != fault_kind || n != fault_at || fault_fired) return 0;
  if (fault_world_rank() != fault_rank) return 0;
  fault_fired = 1;
  fprintf(stderr, "nhgd-faults: injecting a failure of %s call %ld on rank %d (%.60s)\n",
          kind == NHGD_FAULT_H5 ? "HDF5" : "allocation", n, fault_rank,
          kind == NHGD_FAULT_H5 ? fault_call : "nhgd_calloc");
  return 1;
}

int nhgd_fault_hit_h5(const char *call) {
  static const char *const transfers[] = {"H5Dwrite", "H5Dread"};
  for (size_t i = 0; i < sizeof transfers / sizeof transfers[0]; ++i)
    if (strstr(call, transfers[i])) {
      fault_call = call;
      return nhgd_fault_hit(NHGD_FAULT_H5);
    }
  return 0;
}
#endif

double nhgd_mem_available(void) {
  double avail = 0.0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char key[64];
    double kib;
    while (fscanf(f, "%63s %lf kB", key, &kib) == 2)
      if (!strcmp(key, "MemAvailable:")) avail = kib * 1024.0;
    fclose(f);
  }
  return avail;
}
