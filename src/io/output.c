/* The output HDF5 file: theta, v, history, configuration, timing; written collectively. */
#include "io/output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "nhgd/version.h"
#include "io/h5util.h"
#include "nhgd/output.h"

/* Every step agrees on its outcome across the ranks, so that a failure on one rank takes all
 * of them out at the same step and none waits in the next collective call. */
#define STEP(call) NHGD_TRY(rc, nhgd_error_agree(e->comm, (call)), done)

static int write_contents(const nhgd_output_view *e, hid_t f) {
  int rc = NHGD_OK;
  const int root = e->rank == 0;
  hid_t g = -1;
  STEP(nhgd_h5_write_header(f, "nhgd-output", NHGD_OUTPUT_FORMAT_VERSION, e->size));
  STEP(nhgd_h5_attr_string(f, "problem", e->problem));
  STEP(nhgd_h5_attr_string(f, "estimator", e->estimator));
  STEP(nhgd_h5_attr_int(f, "outer_steps_done", e->outer_steps_done));
  /* Estimator communication: payload bytes received per rank per inner step (rank mean). */
  double per_step = e->bytes_per_step;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &per_step, 1, MPI_DOUBLE, MPI_SUM, e->comm));
  STEP(nhgd_h5_attr_double(f, "estimator_bytes_per_inner_step", per_step / e->size));
  /* Peak resident memory of the largest rank so far (Linux reports ru_maxrss in KiB). */
  struct rusage ru;
  double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, e->comm));
  STEP(nhgd_h5_attr_double(f, "max_rss_mib", rss));
  STEP(nhgd_h5_write_vector(f, "theta", e->d, 0, root ? e->d : 0, e->theta));
  const int64_t voff = e->v_offset, vcnt = e->v_count;
  STEP(nhgd_h5_write_vector(f, "v", e->p, voff, vcnt, e->v));
  if (e->have_hypergrad) {
    STEP(nhgd_h5_write_vector(f, "hypergradient", e->p, voff, vcnt, e->h));
    STEP(nhgd_h5_write_vector(f, "u", e->d, 0, root ? e->d : 0, e->u));
  }
  NHGD_TRY(rc, nhgd_h5_group_agreed(e->comm, f, "config", &g), done);
  STEP(nhgd_h5_write_options(g, e->options));
  H5Gclose(g);
  NHGD_TRY(rc, nhgd_h5_group_agreed(e->comm, f, "history", &g), done);
  STEP(nhgd_history_write_columns(e->history, g, e->comm, e->rank));
  H5Gclose(g);
  g = -1;
  double mn[NHGD_T_COUNT], avg[NHGD_T_COUNT], mx[NHGD_T_COUNT];
  NHGD_CHECK(nhgd_timers_reduce(e->timers, e->comm, mn, avg, mx));
  NHGD_TRY(rc, nhgd_h5_group_agreed(e->comm, f, "timing", &g), done);
  char names[256] = "";
  for (int i = 0; i < NHGD_T_COUNT; ++i) {
    strcat(names, i ? "," : "");
    strcat(names, nhgd_stage_name(i));
  }
  STEP(nhgd_h5_attr_string(g, "stages", names));
  STEP(nhgd_h5_write_vector(g, "min", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, mn));
  STEP(nhgd_h5_write_vector(g, "avg", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, avg));
  STEP(nhgd_h5_write_vector(g, "max", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, mx));
done:
  if (g >= 0) H5Gclose(g);
  return rc;
}

/* The folder of path ("." if it names none). */
static void folder_of(const char *path, char *dir, size_t len) {
  snprintf(dir, len, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, len, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
}

int nhgd_output_check(MPI_Comm comm, const char *path) {
  int rank, rc = NHGD_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                          "output %s: is a folder (name a file in it)", path);
    } else {
      /* Create the temporary name the output will be written to, and remove it again. */
      const int existed = stat(tmp, &st) == 0;
      FILE *t = fopen(tmp, "a");
      if (!t)
        rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "output %s: cannot create %s (%s)",
                            path, tmp, strerror(errno));
      else {
        fclose(t);
        if (!existed) remove(tmp);
      }
    }
  }
  return nhgd_error_agree(comm, rc);
}

int nhgd_output_write(const nhgd_output_view *e, const char *path) {
  char tmp[4200], dir[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  folder_of(path, dir, sizeof dir);
  nhgd_h5_quiet();
  /* theta, v, u, h, the history, a few KiB of metadata: twice that must be free. */
  const double data = 8.0 * (2.0 * (double)e->d + 2.0 * (double)e->p +
                             10.0 * (double)e->history->len + 3.0 * NHGD_T_COUNT);
  char what[4300];
  snprintf(what, sizeof what, "output %s", path);
  int rc = nhgd_io_check_space(e->comm, dir, 2.0 * data + 64.0 * 1024.0, what);
  if (rc) {
    nhgd_error_context("output %s: ", path);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
  if (fapl >= 0) {
    H5Pset_fapl_mpio(fapl, e->comm, MPI_INFO_NULL);
    /* Closing the file closes whatever an error path may have left open in it. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
  }
  rc = f < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                              "output %s: cannot create %s (missing folder or no permission?)",
                              path, tmp)
             : NHGD_OK;
  rc = nhgd_error_agree(e->comm, rc);
  if (rc) {
    if (f >= 0) H5Fclose(f);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  rc = write_contents(e, f);
  if (!rc) {
    int frc = NHGD_OK;
    NHGD_H5_TRY(frc, H5Fflush(f, H5F_SCOPE_LOCAL), flushed, "output %s: flush failed", tmp);
  flushed:
    rc = nhgd_error_agree(e->comm, frc);
  }
  /* A failed file is of no use: give its space back so that the close can flush (a file HDF5
   * failed to close stays half open and crashes HDF5's shutdown). */
  if (rc && e->rank == 0 && truncate(tmp, 0) != 0) {
    /* then the close may fail as well: reported below */
  }
  if (rc) MPI_Barrier(e->comm);
  int crc = H5Fclose(f) < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                                             "output %s: closing %s failed", path, tmp)
                            : NHGD_OK;
  if (!rc) rc = crc;
  rc = nhgd_error_agree(e->comm, rc);
  if (!rc && e->rank == 0 && rename(tmp, path) != 0)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "output %s: cannot rename %s (%s)", path,
                        tmp, strerror(errno));
  /* Nothing half written stays behind; a good older output at path is untouched. */
  if (rc && e->rank == 0) remove(tmp);
  rc = nhgd_error_agree(e->comm, rc);
  if (rc) {
    nhgd_error_context("output %s: ", path);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  return NHGD_OK;
}
