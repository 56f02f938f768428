/* Checks for the MPI test programs (the ones run under mpiexec at 1, 2 and 4 ranks), one idiom
 * for all of them. A check failing on any rank fails the test: the failures are summed over
 * the ranks at the end and every rank exits with the same status.
 *
 *   mc_check(ok, fmt, ...)     a counted check: rank 0 prints "ok   <message>" when it holds,
 *                              a rank where it fails prints "FAIL <message>" (with the rank when
 *                              there are several). Local: no communication, so it may be called
 *                              on one rank only, e.g. where rank 0 compares with a reference.
 *   MC_EXPECT(cond, fmt, ...)  the same, silent when cond holds; a failure also prints the
 *                              condition and its file and line.
 *   MC_REQUIRE(cond, fmt, ...) a precondition: on failure the job ends at once (MPI_Abort), the
 *                              rank and location printed. For set-up the later checks depend on,
 *                              and where the other ranks would wait in a collective until the
 *                              timeout.
 *   mc_all(ok)                 collective: 1 on every rank if ok holds on every rank, else 0.
 *   mc_finish(name)            collective, before MPI_Finalize: the failures summed over the
 *                              ranks, a summary line on rank 0, and the exit status (0 or 1),
 *                              the same on every rank:
 *                                const int status = mc_finish("bcmat");
 *                                MPI_Finalize();
 *                                return status;
 *   mc_expected_np()           the rank count, checked against NHGD_TEST_NP (nhgd_add_mpi_test).
 *   mc_rel(a, b, n)            ||a - b|| / ||b|| (2-norms; ||a - b|| if b = 0). */
#ifndef NHGD_TEST_COMMON_MPI_CHECK_H
#define NHGD_TEST_COMMON_MPI_CHECK_H

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int mc_failures_, mc_checks_;

static inline int mc_rank(void) {
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

static inline int mc_size(void) {
  int s = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/* "FAIL " or "FAIL [rank r] " on stdout, where the ok lines go. */
static inline void mc_fail_prefix_(void) {
  if (mc_size() > 1)
    printf("FAIL [rank %d] ", mc_rank());
  else
    printf("FAIL ");
}

static inline void mc_vcheck_(int ok, int quiet, const char *where, const char *fmt, va_list ap) {
  ++mc_checks_;
  if (ok && (quiet || mc_rank() != 0)) return;
  if (ok) {
    printf("ok   ");
  } else {
    ++mc_failures_;
    mc_fail_prefix_();
    if (where) printf("%s: ", where);
  }
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline int mc_check(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mc_vcheck_(ok, 0, NULL, fmt, ap);
  va_end(ap);
  return ok;
}

__attribute__((format(printf, 3, 4))) static inline int mc_expect_(int ok, const char *where,
                                                                   const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mc_vcheck_(ok, 1, where, fmt, ap);
  va_end(ap);
  return ok;
}

#define MC_STR2_(x) #x
#define MC_STR_(x) MC_STR2_(x)
#define MC_WHERE_(cond) __FILE__ ":" MC_STR_(__LINE__) ": " #cond

#define MC_EXPECT(cond, ...) mc_expect_((cond) ? 1 : 0, MC_WHERE_(cond), __VA_ARGS__)

#define MC_REQUIRE(cond, ...)                                                                      \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fflush(stdout);                                                                              \
      fprintf(stderr, "[rank %d] %s:%d: required: %s\n  ", mc_rank(), __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      fflush(stderr);                                                                              \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                                \
    }                                                                                              \
  } while (0)

static inline int mc_all(int ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all;
}

static inline int mc_finish(const char *name) {
  int total = 0;
  MPI_Allreduce(&mc_failures_, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (mc_rank() == 0) {
    if (total)
      printf("%s on %d rank(s): FAILED, %d failed check(s) summed over the ranks (%d checks on "
             "rank 0)\n",
             name, mc_size(), total, mc_checks_);
    else
      printf("%s on %d rank(s): all %d checks passed\n", name, mc_size(), mc_checks_);
    fflush(stdout);
  }
  return total ? 1 : 0;
}

static inline int mc_expected_np(void) {
  const char *s = getenv("NHGD_TEST_NP");
  const int size = mc_size();
  if (s) MC_REQUIRE(atoi(s) == size, "NHGD_TEST_NP=%s but MPI_COMM_WORLD has %d ranks", s, size);
  return size;
}

static inline double mc_rel(const double *a, const double *b, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / (den > 0.0 ? den : 1.0));
}

#endif
