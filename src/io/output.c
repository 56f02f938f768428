/* The output HDF5 file: theta, v, history, configuration, timing; written collectively. */
#include "io/output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "core/util.h"
#include "nhgd/version.h"
#include "outer/engine.h"

typedef struct {
  hid_t group;
  int rc;
} config_writer;

static void write_option(const char *name, const char *value, void *arg) {
  config_writer *w = arg;
  if (!w->rc) w->rc = nhgd_h5_attr_string(w->group, name, value);
}

int nhgd_output_write_options(hid_t group, const nhgd_options *o) {
  config_writer w = {group, NHGD_OK};
  nhgd_options_foreach(o, write_option, &w);
  return w.rc;
}

/* A history column: the field at byte offset off of every record. */
static int write_history(nhgd_engine *e, hid_t g, const char *name, size_t off, int is_int) {
  int64_t n = e->hist_len;
  double *col;
  NHGD_CHECK(nhgd_calloc(&col, (size_t)(n ? n : 1), sizeof(double), "history column"));
  for (int64_t i = 0; i < n; ++i) {
    const char *rec = (const char *)&e->hist[i];
    col[i] = is_int ? (double)*(const int64_t *)(rec + off) : *(const double *)(rec + off);
  }
  int rc = nhgd_h5_write_vector(g, name, n, 0, e->rank == 0 ? n : 0, col);
  nhgd_free(&col);
  return rc;
}

static int write_contents(nhgd_engine *e, hid_t f) {
  int rc = NHGD_OK;
  const int root = e->rank == 0;
  hid_t g = -1;
  NHGD_CHECK(nhgd_h5_write_header(f, "nhgd-output", NHGD_OUTPUT_FORMAT_VERSION, e->size));
  NHGD_CHECK(nhgd_h5_attr_string(f, "problem", e->pb->name));
  NHGD_CHECK(nhgd_h5_attr_string(f, "estimator", e->est->name));
  NHGD_CHECK(nhgd_h5_attr_int(f, "outer_steps_done", e->k));
  /* Estimator communication: payload bytes received per rank per inner step (rank mean). */
  double per_step = e->comm_steps ? e->comm_bytes / (double)e->comm_steps : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &per_step, 1, MPI_DOUBLE, MPI_SUM, e->comm));
  NHGD_CHECK(nhgd_h5_attr_double(f, "estimator_bytes_per_inner_step", per_step / e->size));
  /* Peak resident memory of the largest rank so far (Linux reports ru_maxrss in KiB). */
  struct rusage ru;
  double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
  NHGD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, e->comm));
  NHGD_CHECK(nhgd_h5_attr_double(f, "max_rss_mib", rss));
  NHGD_CHECK(nhgd_h5_write_vector(f, "theta", e->d, 0, root ? e->d : 0, e->theta));
  int64_t voff = e->pb->v_per_sample ? e->data->train.lo : 0;
  int64_t vcnt = e->pb->v_per_sample ? e->p_local : (root ? e->p : 0);
  NHGD_CHECK(nhgd_h5_write_vector(f, "v", e->p, voff, vcnt, e->v));
  if (e->have_hypergrad) {
    NHGD_CHECK(nhgd_h5_write_vector(f, "hypergradient", e->p, voff, vcnt, e->h));
    NHGD_CHECK(nhgd_h5_write_vector(f, "u", e->d, 0, root ? e->d : 0, e->u));
  }
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /config");
  NHGD_TRY(rc, nhgd_output_write_options(g, &e->opt), done);
  H5Gclose(g);
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create group /history");
#define HIST(field, is_int)                                                                        \
  NHGD_TRY(rc, write_history(e, g, #field, offsetof(nhgd_record, field), is_int), done)
  HIST(step, 1);
  HIST(val_loss, 0);
  HIST(val_acc, 0);
  HIST(test_loss, 0);
  HIST(test_acc, 0);
  HIST(inner_loss, 0);
  HIST(hypergrad_norm, 0);
  HIST(wall_time, 0);
  HIST(samples, 0);
#undef HIST
  H5Gclose(g);
  double mn[NHGD_T_COUNT], avg[NHGD_T_COUNT], mx[NHGD_T_COUNT];
  NHGD_CHECK(nhgd_timers_reduce(&e->timers, e->comm, mn, avg, mx));
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

int nhgd_output_write(nhgd_engine *e, const char *path) {
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
