/* Checkpoints: everything needed to continue a run bit for bit, one HDF5 file per checkpoint,
 * written collectively under a temporary name, checksummed (Fletcher32 per dataset and a
 * CRC-32 of the whole file beside it), renamed into place only when every rank succeeded;
 * the newest valid one is found again on restart, skipping damaged ones. */
#include "io/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"
#include "core/util.h"
#include "io/h5util.h"
#include "io/output.h"
#include "nhgd/version.h"
#include "outer/engine.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".h5"
#define HIST_FIELDS 9 /* format 1 had 8: no samples column */

/* Options that shape the trajectory: a checkpoint only continues a run that agrees on all. */
static const char *const trajectory_options[] = {
    "problem",         "estimator",  "outer-opt",      "outer-lr",    "outer-schedule",
    "outer-decay",     "adam-beta1", "adam-beta2",     "adam-eps",    "inner-steps",
    "batch",           "inner-lr",   "inner-schedule", "inner-decay", "warm-start",
    "noise-sigma",     "clean-reg",  "v-init",         "kron",        "efim-damping",
    "efim-weight-exp", "efim-mode",  "efim-beta",      "cross-mode",  "seed",
    "hvp-steps",       "hvp-batch",  "hvp-warm",       "neumann-eta", "soba-rho"};

static int is_trajectory_option(const char *name) {
  for (size_t i = 0; i < sizeof trajectory_options / sizeof trajectory_options[0]; ++i)
    if (!strcmp(name, trajectory_options[i])) return 1;
  return 0;
}

/* ---- files ---- */

static void ckpt_name(char *buf, size_t len, const char *dir, int64_t pos, const char *suffix) {
  snprintf(buf, len, "%s/" CKPT_PREFIX "%012lld" CKPT_SUFFIX "%s", dir, (long long)pos, suffix);
}

/* Positions of the checkpoints in dir, newest first. */
static int list_checkpoints(const char *dir, int64_t **pos, int *n) {
  *pos = NULL;
  *n = 0;
  DIR *dp = opendir(dir);
  if (!dp) return NHGD_OK;
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    long long p;
    char tail[8];
    if (sscanf(de->d_name, CKPT_PREFIX "%12lld" CKPT_SUFFIX "%7s", &p, tail) != 1) continue;
    if (strlen(de->d_name) != strlen(CKPT_PREFIX) + 12 + strlen(CKPT_SUFFIX)) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      int64_t *np = realloc(*pos, (size_t)cap * sizeof **pos);
      if (!np) {
        closedir(dp);
        NHGD_FAIL(NHGD_ERR_MEM, "out of memory listing %s", dir);
      }
      *pos = np;
    }
    (*pos)[(*n)++] = p;
  }
  closedir(dp);
  for (int i = 1; i < *n; ++i) /* insertion sort, descending */
    for (int j = i; j > 0 && (*pos)[j] > (*pos)[j - 1]; --j) {
      int64_t t = (*pos)[j];
      (*pos)[j] = (*pos)[j - 1];
      (*pos)[j - 1] = t;
    }
  return NHGD_OK;
}

static int file_crc(const char *path, unsigned long *crc, long long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) NHGD_FAIL(NHGD_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
  unsigned char buf[1 << 16];
  uLong c = crc32(0L, Z_NULL, 0);
  long long total = 0;
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
    c = crc32(c, buf, (uInt)got);
    total += (long long)got;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) NHGD_FAIL(NHGD_ERR_IO, "%s: read error", path);
  *crc = c;
  *size = total;
  return NHGD_OK;
}

static void sync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Rank 0: is the checkpoint at path complete and undamaged? On failure the reason is the
 * recorded error message. */
static int verify(const char *path) {
  char crcpath[4200];
  snprintf(crcpath, sizeof crcpath, "%s.crc32", path);
  FILE *f = fopen(crcpath, "r");
  if (!f) NHGD_FAIL(NHGD_ERR_DATA, "%s: no checksum file %s", path, crcpath);
  unsigned long want = 0;
  long long want_size = -1;
  int ok = fscanf(f, "%lx %lld", &want, &want_size) == 2;
  fclose(f);
  if (!ok) NHGD_FAIL(NHGD_ERR_DATA, "%s: checksum file is malformed", path);
  unsigned long got;
  long long size;
  NHGD_CHECK(file_crc(path, &got, &size));
  if (size != want_size)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: %lld bytes, expected %lld (truncated?)", path, size, want_size);
  if (got != want)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: CRC-32 %08lx, expected %08lx (damaged)", path, got, want);
  nhgd_h5_quiet();
  hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (h < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: not a readable HDF5 file", path);
  char fmt[64] = "";
  int64_t version = 0;
  int rc = nhgd_h5_attr_read_string(h, "format", fmt, sizeof fmt);
  if (!rc) rc = nhgd_h5_attr_read_int(h, "format_version", &version);
  H5Fclose(h);
  if (rc) return rc;
  if (strcmp(fmt, "nhgd-checkpoint"))
    NHGD_FAIL(NHGD_ERR_DATA, "%s: not an nhgd checkpoint (format '%s')", path, fmt);
  if (version < 1 || version > NHGD_CHECKPOINT_FORMAT_VERSION)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: checkpoint format version %lld, this nhgd reads up to %d", path,
              (long long)version, NHGD_CHECKPOINT_FORMAT_VERSION);
  return NHGD_OK;
}

static int make_dir(const char *dir) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *p = buf + 1; *p; ++p) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) && errno != EEXIST)
      NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot create %s (%s)", dir, buf,
                strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) && errno != EEXIST)
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot create (%s)", dir, strerror(errno));
  return NHGD_OK;
}

int nhgd_checkpoint_prepare(nhgd_engine *e) {
  int rc = NHGD_OK;
  if (e->rank == 0) {
    rc = make_dir(e->opt.checkpoint_dir);
    /* Leftovers of a write that was interrupted are incomplete by construction. */
    DIR *dp = rc ? NULL : opendir(e->opt.checkpoint_dir);
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
      size_t n = strlen(de->d_name);
      if (n > 4 && !strncmp(de->d_name, CKPT_PREFIX, strlen(CKPT_PREFIX)) &&
          !strcmp(de->d_name + n - 4, ".tmp")) {
        char p[NHGD_PATH_MAX + 512];
        snprintf(p, sizeof p, "%s/%s", e->opt.checkpoint_dir, de->d_name);
        remove(p);
      }
    }
    if (dp) closedir(dp);
  }
  return nhgd_error_agree(e->comm, rc);
}

/* ---- writing ---- */

static int write_state(nhgd_engine *e, hid_t f, int64_t t, int complete) {
  const int root = e->rank == 0;
  int rc = NHGD_OK;
  hid_t g = -1;
  NHGD_CHECK(nhgd_h5_write_header(f, "nhgd-checkpoint", NHGD_CHECKPOINT_FORMAT_VERSION, e->size));
  NHGD_CHECK(nhgd_h5_attr_int(f, "outer_step", e->k));
  NHGD_CHECK(nhgd_h5_attr_int(f, "inner_step", t));
  NHGD_CHECK(nhgd_h5_attr_int(f, "complete", complete));
  NHGD_CHECK(nhgd_h5_attr_double(f, "elapsed", MPI_Wtime() - e->t_start));
  NHGD_CHECK(nhgd_h5_attr_double(f, "last_inner_loss", e->last_inner_loss));
  NHGD_CHECK(nhgd_h5_attr_double(f, "samples", e->samples));
  NHGD_CHECK(nhgd_h5_attr_int(f, "d", e->d));
  NHGD_CHECK(nhgd_h5_attr_int(f, "p", e->p));
  NHGD_CHECK(nhgd_h5_attr_int(f, "n_train", e->data->train.n_global));
  NHGD_CHECK(nhgd_h5_attr_int(f, "n_val", e->data->val.n_global));
  NHGD_CHECK(nhgd_h5_attr_string(f, "estimator", e->est->name));
  const int64_t d = e->d;
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "theta", d, 0, root ? d : 0, e->theta, 1));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "theta_init", d, 0, root ? d : 0, e->theta_init, 1));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "theta_sum", d, 0, root ? d : 0, e->theta_sum, 1));
  int64_t voff = e->pb->v_per_sample ? e->data->train.lo : 0;
  int64_t vcnt = e->pb->v_per_sample ? e->p_local : (root ? e->p : 0);
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "v", e->p, voff, vcnt, e->v, 1));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "adam_m", e->p, voff, vcnt, e->adam_m, 1));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "adam_s", e->p, voff, vcnt, e->adam_s, 1));
  /* The last hypergradient and u, so that the output of a finished run can be rewritten. */
  NHGD_CHECK(nhgd_h5_attr_int(f, "have_hypergradient", e->have_hypergrad));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "hypergradient", e->p, voff, vcnt, e->h, 1));
  NHGD_CHECK(nhgd_h5_write_vector_ex(f, "u", d, 0, root ? d : 0, e->u, 1));
  /* History: HIST_FIELDS numbers per record, in nhgd_record order. */
  double *hist;
  NHGD_CHECK(nhgd_calloc(&hist, (size_t)(e->hist_len ? e->hist_len : 1) * HIST_FIELDS,
                         sizeof(double), "history"));
  for (int64_t i = 0; i < e->hist_len; ++i) {
    const nhgd_record *r = &e->hist[i];
    double row[HIST_FIELDS] = {(double)r->step,   r->val_loss,  r->val_acc,
                               r->test_loss,      r->test_acc,  r->inner_loss,
                               r->hypergrad_norm, r->wall_time, r->samples};
    memcpy(hist + i * HIST_FIELDS, row, sizeof row);
  }
  rc = nhgd_h5_write_vector_ex(f, "history", e->hist_len * HIST_FIELDS, 0,
                               root ? e->hist_len * HIST_FIELDS : 0, hist, 1);
  nhgd_free(&hist);
  NHGD_CHECK(rc);
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create /config");
  NHGD_TRY(rc, nhgd_output_write_options(g, &e->opt), done);
  H5Gclose(g);
  NHGD_H5_TRY(rc, g = H5Gcreate2(f, "estimator", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), done,
              "cannot create /estimator");
  if (e->est->save) NHGD_TRY(rc, e->est->save(e->est, e, g), done);
done:
  if (g >= 0) H5Gclose(g);
  return rc;
}

/* Rank 0: remove all but the newest `keep` checkpoints. */
static void prune(nhgd_engine *e) {
  int64_t *pos;
  int n;
  if (list_checkpoints(e->opt.checkpoint_dir, &pos, &n)) return;
  for (int i = e->opt.keep; i < n; ++i) {
    char p[4200];
    ckpt_name(p, sizeof p, e->opt.checkpoint_dir, pos[i], ".crc32");
    remove(p);
    ckpt_name(p, sizeof p, e->opt.checkpoint_dir, pos[i], "");
    remove(p);
  }
  free(pos);
}

int nhgd_checkpoint_write(nhgd_engine *e, int64_t t, int complete) {
  nhgd_timer_start(&e->timers, NHGD_T_IO);
  const char *dir = e->opt.checkpoint_dir;
  const int64_t pos = e->k * e->opt.inner_steps + t;
  char path[4200], tmp[4200], crc[4200], crctmp[4200];
  ckpt_name(path, sizeof path, dir, pos, "");
  ckpt_name(tmp, sizeof tmp, dir, pos, ".tmp");
  ckpt_name(crc, sizeof crc, dir, pos, ".crc32");
  ckpt_name(crctmp, sizeof crctmp, dir, pos, ".crc32.tmp");
  nhgd_h5_quiet();
  int rc = NHGD_OK;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, e->comm, MPI_INFO_NULL);
  /* The newest file format: metadata checksums too. */
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) {
    nhgd_timer_stop(&e->timers, NHGD_T_IO);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint %s: cannot create (full disk? no permission?)", tmp);
  }
  rc = write_state(e, f, t, complete);
  if (H5Fclose(f) < 0 && !rc)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "checkpoint %s: close failed", tmp);
  rc = nhgd_error_agree(e->comm, rc);
  if (!rc && e->rank == 0) {
    /* Every rank's data is in the file: checksum it, then publish checksum and file. */
    unsigned long c;
    long long size;
    sync_path(tmp);
    rc = file_crc(tmp, &c, &size);
    FILE *cf = rc ? NULL : fopen(crctmp, "w");
    if (!rc && (!cf || fprintf(cf, "%08lx %lld\n", c, size) < 0 || fclose(cf) != 0))
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "checkpoint %s: cannot write", crctmp);
    if (!rc) sync_path(crctmp);
    if (!rc && (rename(crctmp, crc) || rename(tmp, path)))
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "checkpoint %s: rename failed (%s)",
                          path, strerror(errno));
    if (!rc) {
      char latest[4200], ltmp[4200];
      snprintf(latest, sizeof latest, "%s/LATEST", dir);
      snprintf(ltmp, sizeof ltmp, "%s/LATEST.tmp", dir);
      FILE *lf = fopen(ltmp, "w");
      if (lf) {
        fprintf(lf, CKPT_PREFIX "%012lld" CKPT_SUFFIX "\n", (long long)pos);
        fclose(lf);
        rename(ltmp, latest);
      }
      sync_path(dir);
      prune(e);
    }
  }
  rc = nhgd_error_agree(e->comm, rc);
  e->last_ckpt_time = MPI_Wtime();
  nhgd_timer_stop(&e->timers, NHGD_T_IO);
  if (!rc)
    nhgd_log(NHGD_LOG_INFO, "checkpoint %s written (outer step %lld, inner step %lld%s)", path,
             (long long)e->k, (long long)t, complete ? ", run complete" : "");
  return rc;
}

/* ---- finding and reading ---- */

int nhgd_checkpoint_find(nhgd_engine *e, char *path, size_t len) {
  int rc = NHGD_OK;
  path[0] = '\0';
  if (e->rank == 0) {
    const char *r = e->opt.restart;
    if (strcmp(r, "auto") && strcmp(r, "never")) {
      /* One named checkpoint: it must be valid. */
      rc = verify(r);
      if (!rc) snprintf(path, len, "%s", r);
    } else {
      int64_t *pos;
      int n;
      rc = list_checkpoints(e->opt.checkpoint_dir, &pos, &n);
      if (!rc && n > 0 && !strcmp(r, "never"))
        rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                            "--restart never, but %s holds %d checkpoint(s) of an earlier run: "
                            "use --restart auto to continue it, or another --checkpoint-dir",
                            e->opt.checkpoint_dir, n);
      for (int i = 0; !rc && i < n && !path[0]; ++i) {
        char p[4200];
        ckpt_name(p, sizeof p, e->opt.checkpoint_dir, pos[i], "");
        nhgd_error_clear();
        if (verify(p) == NHGD_OK)
          snprintf(path, len, "%s", p);
        else
          nhgd_log(NHGD_LOG_WARN, "skipping checkpoint: %s", nhgd_error_message());
        nhgd_error_clear();
      }
      free(pos);
    }
  }
  rc = nhgd_error_agree(e->comm, rc);
  if (!rc) NHGD_MPI_CHECK(MPI_Bcast(path, (int)len, MPI_CHAR, 0, e->comm));
  return rc;
}

int nhgd_checkpoint_peek(nhgd_engine *e, const char *path, const char *attr, char *value,
                         size_t len) {
  int rc = NHGD_OK;
  value[0] = '\0';
  if (e->rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "%s: cannot open", path);
    hid_t g = rc ? -1 : H5Gopen2(f, "estimator", H5P_DEFAULT);
    if (g >= 0) {
      if (H5Aexists(g, attr) > 0) rc = nhgd_h5_attr_read_string(g, attr, value, len);
      H5Gclose(g);
    }
    if (f >= 0) H5Fclose(f);
  }
  rc = nhgd_error_agree(e->comm, rc);
  if (!rc) NHGD_MPI_CHECK(MPI_Bcast(value, (int)len, MPI_CHAR, 0, e->comm));
  return rc;
}

typedef struct {
  hid_t group;
  const char *path;
  int rc;
} option_checker;

static void check_option(const char *name, const char *value, void *arg) {
  option_checker *c = arg;
  if (c->rc || !is_trajectory_option(name)) return;
  char saved[4200];
  if (nhgd_h5_attr_read_string(c->group, name, saved, sizeof saved)) {
    c->rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__, "%s: option --%s is not recorded",
                           c->path, name);
    return;
  }
  if (strcmp(saved, value))
    c->rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                           "checkpoint %s was written with --%s %s but this run has --%s %s: "
                           "continue with the same value, or use another --checkpoint-dir",
                           c->path, name, saved, name, value);
}

static int read_state(nhgd_engine *e, hid_t f, const char *path, int64_t *t, int *complete) {
  int64_t k, tt, comp, d, p, ntr, nval;
  double elapsed;
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "outer_step", &k));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "inner_step", &tt));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "complete", &comp));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "d", &d));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "p", &p));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "n_train", &ntr));
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "n_val", &nval));
  NHGD_CHECK(nhgd_h5_attr_read_double(f, "elapsed", &elapsed));
  NHGD_CHECK(nhgd_h5_attr_read_double(f, "last_inner_loss", &e->last_inner_loss));
  /* Format 1 had no work counter: it stays unknown (NaN) for the rest of the run. */
  int64_t version;
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "format_version", &version));
  const int fields = version >= 2 ? HIST_FIELDS : HIST_FIELDS - 1;
  e->samples = NAN;
  if (version >= 2) NHGD_CHECK(nhgd_h5_attr_read_double(f, "samples", &e->samples));
  if (d != e->d || p != e->p || ntr != e->data->train.n_global || nval != e->data->val.n_global)
    NHGD_FAIL(NHGD_ERR_ARG,
              "checkpoint %s is of another problem or data: d = %lld, p = %lld, %lld train and "
              "%lld validation rows; this run has %lld, %lld, %lld and %lld",
              path, (long long)d, (long long)p, (long long)ntr, (long long)nval, (long long)e->d,
              (long long)e->p, (long long)e->data->train.n_global,
              (long long)e->data->val.n_global);
  hid_t g = H5Gopen2(f, "config", H5P_DEFAULT);
  if (g < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: no /config", path);
  option_checker chk = {g, path, NHGD_OK};
  nhgd_options_foreach(&e->opt, check_option, &chk);
  H5Gclose(g);
  NHGD_CHECK(chk.rc);
  if (tt > e->opt.inner_steps)
    NHGD_FAIL(NHGD_ERR_DATA, "%s: inner step %lld beyond --inner-steps", path, (long long)tt);
  const int64_t dd = e->d;
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "theta", dd, 0, dd, e->theta));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "theta_init", dd, 0, dd, e->theta_init));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "theta_sum", dd, 0, dd, e->theta_sum));
  int64_t voff = e->pb->v_per_sample ? e->data->train.lo : 0;
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "v", e->p, voff, e->p_local, e->v));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "adam_m", e->p, voff, e->p_local, e->adam_m));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "adam_s", e->p, voff, e->p_local, e->adam_s));
  int64_t have;
  NHGD_CHECK(nhgd_h5_attr_read_int(f, "have_hypergradient", &have));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "hypergradient", e->p, voff, e->p_local, e->h));
  NHGD_CHECK(nhgd_h5_read_vector_coll(f, "u", dd, 0, dd, e->u));
  e->have_hypergrad = (int)have;
  /* History: k records. */
  double *hist;
  NHGD_CHECK(nhgd_calloc(&hist, (size_t)(k ? k : 1) * HIST_FIELDS, sizeof(double), "history"));
  int rc = nhgd_h5_read_vector_coll(f, "history", k * fields, 0, k * fields, hist);
  e->hist_len = 0;
  for (int64_t i = 0; !rc && i < k; ++i) {
    const double *h = hist + i * fields;
    nhgd_record r = {(int64_t)h[0],          h[1], h[2], h[3], h[4], h[5], h[6], h[7],
                     fields > 8 ? h[8] : NAN};
    rc = nhgd_engine_push_record(e, &r);
  }
  nhgd_free(&hist);
  NHGD_CHECK(rc);
  if (tt > 0) { /* inside an inner loop: the estimator's running state matters */
    g = H5Gopen2(f, "estimator", H5P_DEFAULT);
    if (g < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: no /estimator", path);
    rc = e->est->load ? e->est->load(e->est, e, g) : NHGD_OK;
    H5Gclose(g);
    NHGD_CHECK(rc);
  }
  e->k = k;
  e->t_start = MPI_Wtime() - elapsed;
  *t = tt;
  *complete = (int)comp;
  return NHGD_OK;
}

int nhgd_checkpoint_load(nhgd_engine *e, const char *path) {
  nhgd_timer_start(&e->timers, NHGD_T_IO);
  nhgd_h5_quiet();
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, e->comm, MPI_INFO_NULL);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  int rc = f < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "%s: cannot open", path) : 0;
  rc = nhgd_error_agree(e->comm, rc);
  int64_t t = 0;
  int complete = 0;
  if (!rc) {
    rc = nhgd_error_agree(e->comm, read_state(e, f, path, &t, &complete));
    H5Fclose(f);
  }
  nhgd_timer_stop(&e->timers, NHGD_T_IO);
  NHGD_CHECK(rc);
  e->resume_t = t;
  e->resumed = 1;
  nhgd_log(NHGD_LOG_INFO, "restarted from %s: outer step %lld, inner step %lld%s", path,
           (long long)e->k, (long long)t, complete ? " (the run was complete)" : "");
  return NHGD_OK;
}
