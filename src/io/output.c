/* The output HDF5 file: theta, v, history, configuration, timing; written collectively. */
#include "io/output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "core/util.h"
#include "nhgd/version.h"
#include "io/h5util.h"

static int write_contents(const nhgd_output_view *e, hid_t f) {
  int rc = NHGD_OK;
  const int root = e->rank == 0;
  hid_t g = -1;
  NHGD_CHECK(nhgd_h5_write_header(f, "nhgd-output", NHGD_OUTPUT_FORMAT_VERSION, e->size));
  NHGD_CHECK(nhgd_h5_attr_string(f, "problem", e->problem));
  NHGD_CHECK(nhgd_h5_attr_string(f, "estimator", e->estimator));
  NHGD_CHECK(nhgd_h5_attr_int(f, "outer_steps_done", e->outer_steps_done));
  /* Estimator communication: payload bytes received per rank per inner step (rank mean). */
  double per_step = e->bytes_per_step;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &per_step, 1, MPI_DOUBLE, MPI_SUM, e->comm));
  NHGD_CHECK(nhgd_h5_attr_double(f, "estimator_bytes_per_inner_step", per_step / e->size));
  /* Peak resident memory of the largest rank so far (Linux reports ru_maxrss in KiB). */
  struct rusage ru;
  double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, e->comm));
  NHGD_CHECK(nhgd_h5_attr_double(f, "max_rss_mib", rss));
  NHGD_CHECK(nhgd_h5_write_vector(f, "theta", e->d, 0, root ? e->d : 0, e->theta));
  const int64_t voff = e->v_offset, vcnt = e->v_count;
  NHGD_CHECK(nhgd_h5_write_vector(f, "v", e->p, voff, vcnt, e->v));
  if (e->have_hypergrad) {
    NHGD_CHECK(nhgd_h5_write_vector(f, "hypergradient", e->p, voff, vcnt, e->h));
    NHGD_CHECK(nhgd_h5_write_vector(f, "u", e->d, 0, root ? e->d : 0, e->u));
  }
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /config");
  NHGD_TRY(rc, nhgd_h5_write_options(g, e->options), done);
  H5Gclose(g);
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /history");
  NHGD_TRY(rc, nhgd_history_write_columns(e->history, g, e->rank), done);
  H5Gclose(g);
  double mn[NHGD_T_COUNT], avg[NHGD_T_COUNT], mx[NHGD_T_COUNT];
  NHGD_CHECK(nhgd_timers_reduce(e->timers, e->comm, mn, avg, mx));
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "timing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /timing");
  char names[256] = "";
  for (int i = 0; i < NHGD_T_COUNT; ++i) {
    strcat(names, i ? "," : "");
    strcat(names, nhgd_stage_name(i));
  }
  NHGD_TRY(rc, nhgd_h5_attr_string(g, "stages", names), done);
  NHGD_TRY(rc, nhgd_h5_write_vector(g, "min", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, mn), done);
  NHGD_TRY(rc, nhgd_h5_write_vector(g, "avg", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, avg), done);
  NHGD_TRY(rc, nhgd_h5_write_vector(g, "max", NHGD_T_COUNT, 0, root ? NHGD_T_COUNT : 0, mx), done);
done:
  if (g >= 0) H5Gclose(g);
  return rc;
}

int nhgd_output_write(const nhgd_output_view *e, const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  nhgd_h5_quiet();
  int rc = NHGD_OK;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
  if (fapl < 0) NHGD_FAIL(NHGD_ERR_HDF5, "file access property list");
  H5Pset_fapl_mpio(fapl, e->comm, MPI_INFO_NULL);
  f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0)
    NHGD_FAIL(NHGD_ERR_IO, "output %s: cannot create %s (missing folder or no permission?)", path,
              tmp);
  rc = write_contents(e, f);
  if (H5Fclose(f) < 0 && !rc)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "output %s: closing failed", tmp);
  NHGD_CHECK(nhgd_error_agree(e->comm, rc));
  if (e->rank == 0 && rename(tmp, path) != 0)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "output %s: cannot rename %s (%s)", path,
                        tmp, strerror(errno));
  return nhgd_error_agree(e->comm, rc);
}
