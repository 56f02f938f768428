/* Checkpoints: everything needed to continue a run bit for bit, one HDF5 file per checkpoint,
 * written collectively under a temporary name, checksummed (Fletcher32 per dataset and a
 * CRC-32 of the whole file beside it), renamed into place only when every rank succeeded;
 * the newest valid one is found again on restart, skipping damaged ones. What goes into a
 * file is up to the parts registered with the writer: this module knows none of them.
 *
 * Failures: every step of a write agrees on its outcome across the ranks, so all ranks leave
 * together and clean up the same way. Before a write the space it needs is checked (HDF5 1.10
 * can leave the ranks in different collectives when a write fails on one of them only, so a
 * full disk must be found before HDF5 meets it). A checkpoint is published when its checksum
 * file appears: the data file is renamed first, the checksum file last, and an older checksum
 * of the same name is removed before, so a kill at any instant leaves either the old pair, or
 * a data file without a checksum (not a checkpoint; removed at the next start). */
#include "io/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"
#include "core/util.h"
#include "io/h5util.h"
#include "io/section_impl.h"
#include "nhgd/checkpoint.h"
#include "nhgd/version.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".h5"
#define MAX_PARTS 8
/* Room asked for beyond the estimate of a file: HDF5's superblock, free-space and B-tree
 * metadata, the configuration. */
#define SPACE_SLACK (64.0 * 1024.0)

typedef struct {
  const char *group; /* NULL: the file's root */
  void *self;
  nhgd_ckpt_save_fn save;
  nhgd_ckpt_load_fn load;
} ckpt_part;

struct nhgd_ckpt {
  MPI_Comm comm;
  int rank, size;
  char dir[NHGD_PATH_MAX];
  int keep;
  ckpt_part parts[MAX_PARTS];
  int nparts;
};

struct nhgd_ckpt_file {
  hid_t f;
  char path[NHGD_PATH_MAX + 64];
  nhgd_section root, group[MAX_PARTS];
  hid_t gid[MAX_PARTS];
};

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

int nhgd_file_crc32(const char *path, unsigned long *crc, long long *size) {
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
int nhgd_checkpoint_verify(const char *path) {
  char crcpath[4200];
  snprintf(crcpath, sizeof crcpath, "%s.crc32", path);
  NHGD_CHECK(nhgd_check_regular(path));
  NHGD_CHECK(nhgd_check_regular(crcpath));
  FILE *f = fopen(crcpath, "r");
  if (!f) NHGD_FAIL(NHGD_ERR_DATA, "%s: no checksum file %s", path, crcpath);
  unsigned long want = 0;
  long long want_size = -1;
  int ok = fscanf(f, "%lx %lld", &want, &want_size) == 2;
  fclose(f);
  if (!ok) NHGD_FAIL(NHGD_ERR_DATA, "%s: checksum file is malformed", path);
  unsigned long got;
  long long size;
  NHGD_CHECK(nhgd_file_crc32(path, &got, &size));
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

/* Collective: create the folder and remove leftovers of interrupted writes. */
static int prepare(nhgd_ckpt *c) {
  int rc = NHGD_OK;
  if (c->rank == 0) {
    rc = make_dir(c->dir);
    /* Leftovers of a write that was interrupted are incomplete by construction. */
    DIR *dp = rc ? NULL : opendir(c->dir);
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
      size_t n = strlen(de->d_name);
      if (strncmp(de->d_name, CKPT_PREFIX, strlen(CKPT_PREFIX))) continue;
      char p[NHGD_PATH_MAX + 512], sum[NHGD_PATH_MAX + 520];
      snprintf(p, sizeof p, "%s/%s", c->dir, de->d_name);
      snprintf(sum, sizeof sum, "%s.crc32", p);
      struct stat st;
      /* A data file without its checksum was never published (a kill between the renames). */
      const int unpublished = n > 3 && !strcmp(de->d_name + n - 3, CKPT_SUFFIX) &&
                              stat(sum, &st) != 0 && errno == ENOENT;
      if ((n > 4 && !strcmp(de->d_name + n - 4, ".tmp")) || unpublished) remove(p);
    }
    if (dp) closedir(dp);
  }
  return nhgd_error_agree(c->comm, rc);
}

/* ---- writing ---- */

int nhgd_ckpt_create(MPI_Comm comm, const char *dir, int keep, nhgd_ckpt **out) {
  nhgd_ckpt *c;
  *out = NULL;
  int rc = nhgd_calloc(&c, 1, sizeof *c, "checkpoint writer");
  NHGD_CHECK(nhgd_error_agree(comm, rc));
  c->comm = comm;
  MPI_Comm_rank(comm, &c->rank);
  MPI_Comm_size(comm, &c->size);
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  c->keep = keep;
  rc = prepare(c);
  if (rc) {
    nhgd_free(&c);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  *out = c;
  return NHGD_OK;
}

void nhgd_ckpt_destroy(nhgd_ckpt **c) {
  nhgd_free(c);
}

int nhgd_ckpt_add_part(nhgd_ckpt *c, const char *group, void *self, nhgd_ckpt_save_fn save,
                       nhgd_ckpt_load_fn load) {
  if (c->nparts == MAX_PARTS) NHGD_FAIL(NHGD_ERR_INTERNAL, "checkpoint: too many parts");
  c->parts[c->nparts++] = (ckpt_part){group, self, save, load};
  return NHGD_OK;
}

/* Collective; every step agreed on. With sizing set, nothing is written and *sizing grows by
 * the bytes the parts would write. */
static int write_parts(nhgd_ckpt *c, hid_t f, const nhgd_options *o, double *sizing) {
  int rc = NHGD_OK;
  hid_t g = -1;
  if (!sizing)
    NHGD_CHECK(
        nhgd_error_agree(c->comm, nhgd_h5_write_header(f, "nhgd-checkpoint",
                                                       NHGD_CHECKPOINT_FORMAT_VERSION, c->size)));
  nhgd_section root = {f, c->rank, c->comm, sizing};
  for (int i = 0; i < c->nparts; ++i) {
    const ckpt_part *p = &c->parts[i];
    if (!p->group) {
      /* A part's save agrees on its outcome itself (through its section). */
      NHGD_CHECK(p->save(p->self, &root));
      continue;
    }
    if (!sizing) NHGD_TRY(rc, nhgd_h5_group_agreed(c->comm, f, p->group, &g), done);
    nhgd_section sec = {g, c->rank, c->comm, sizing};
    if (p->save) NHGD_TRY(rc, p->save(p->self, &sec), done);
    if (g >= 0) H5Gclose(g);
    g = -1;
  }
  if (sizing) return NHGD_OK;
  NHGD_TRY(rc, nhgd_h5_group_agreed(c->comm, f, "config", &g), done);
  NHGD_TRY(rc, nhgd_error_agree(c->comm, nhgd_h5_write_options(g, o)), done);
done:
  if (g >= 0) H5Gclose(g);
  return rc;
}

/* Rank 0: remove all but the newest `keep` checkpoints. */
static void prune(nhgd_ckpt *c) {
  int64_t *pos;
  int n;
  if (list_checkpoints(c->dir, &pos, &n)) return;
  for (int i = c->keep; i < n; ++i) {
    char p[4200];
    ckpt_name(p, sizeof p, c->dir, pos[i], ".crc32");
    remove(p);
    ckpt_name(p, sizeof p, c->dir, pos[i], "");
    remove(p);
  }
  free(pos);
}

/* Rank 0: LATEST names checkpoint pos (pos < 0: there is none). */
static void write_latest(nhgd_ckpt *c, int64_t pos) {
  char latest[4200], ltmp[4200];
  snprintf(latest, sizeof latest, "%s/LATEST", c->dir);
  snprintf(ltmp, sizeof ltmp, "%s/LATEST.tmp", c->dir);
  if (pos < 0) {
    remove(latest);
    return;
  }
  FILE *lf = fopen(ltmp, "w");
  if (lf) {
    /* LATEST is a hint for people; restart lists the folder itself. */
    int ok = fprintf(lf, CKPT_PREFIX "%012lld" CKPT_SUFFIX "\n", (long long)pos) > 0;
    if (fclose(lf) == 0 && ok)
      rename(ltmp, latest);
    else
      remove(ltmp);
  }
}

/* Rank 0: publish the closed file tmp as path with its checksum (see the top of the file). */
static int publish(nhgd_ckpt *c, int64_t pos, const char *tmp, const char *path) {
  char crc[4200], crctmp[4200];
  ckpt_name(crc, sizeof crc, c->dir, pos, ".crc32");
  ckpt_name(crctmp, sizeof crctmp, c->dir, pos, ".crc32.tmp");
  unsigned long sum;
  long long size;
  sync_path(tmp);
  NHGD_CHECK(nhgd_file_crc32(tmp, &sum, &size));
  FILE *cf = fopen(crctmp, "w");
  if (!cf || fprintf(cf, "%08lx %lld\n", sum, size) < 0 || fflush(cf) != 0 ||
      fsync(fileno(cf)) != 0) {
    int e = errno;
    if (cf) fclose(cf);
    remove(crctmp);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint %s: cannot write %s (%s)", path, crctmp, strerror(e));
  }
  if (fclose(cf) != 0) {
    remove(crctmp);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint %s: cannot write %s", path, crctmp);
  }
  /* Unpublish a checkpoint of the same name first (only after --restart from an older one). */
  if (remove(crc) == 0) sync_path(c->dir);
  if (rename(tmp, path) || rename(crctmp, crc)) {
    int e = errno;
    remove(crctmp);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint %s: rename failed (%s)", path, strerror(e));
  }
  sync_path(c->dir);
  write_latest(c, pos);
  sync_path(c->dir);
  prune(c);
  return NHGD_OK;
}

int nhgd_ckpt_write(nhgd_ckpt *c, int64_t pos, const nhgd_options *o, char *path, size_t len) {
  char tmp[4200];
  ckpt_name(path, len, c->dir, pos, "");
  ckpt_name(tmp, sizeof tmp, c->dir, pos, ".tmp");
  nhgd_h5_quiet();
  /* What the parts will write, checked against the free space before HDF5 starts. */
  double need = 0.0;
  int rc = write_parts(c, -1, o, &need);
  char what[4300];
  snprintf(what, sizeof what, "checkpoint %s", tmp);
  if (!rc) rc = nhgd_io_check_space(c->comm, c->dir, 2.0 * need + SPACE_SLACK, what);
  if (rc) {
    nhgd_error_context("checkpoint %s: ", tmp);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
  if (fapl >= 0) {
    H5Pset_fapl_mpio(fapl, c->comm, MPI_INFO_NULL);
    /* The newest file format: metadata checksums too. */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    /* Closing the file closes whatever an error path may have left open in it. */
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
  }
  rc = f < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "checkpoint %s: cannot create (%s)",
                              tmp, access(c->dir, W_OK) ? strerror(errno) : "HDF5 refused")
             : NHGD_OK;
  rc = nhgd_error_agree(c->comm, rc);
  if (rc) {
    if (f >= 0) H5Fclose(f);
    if (c->rank == 0) remove(tmp);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  rc = write_parts(c, f, o, NULL);
  if (!rc) {
    int frc = NHGD_OK;
    NHGD_H5_TRY(frc, H5Fflush(f, H5F_SCOPE_LOCAL), flushed, "checkpoint %s: flush failed", tmp);
  flushed:
    rc = nhgd_error_agree(c->comm, frc);
  }
  /* After a failure the file is of no use: give its space back first, so that the close,
   * which writes the metadata still cached, does not fail too (a file HDF5 failed to close
   * stays half open and crashes HDF5's shutdown). */
  if (rc && c->rank == 0 && truncate(tmp, 0) != 0)
    nhgd_log(NHGD_LOG_DEBUG, "cannot truncate %s", tmp);
  if (rc) MPI_Barrier(c->comm);
  int crc = H5Fclose(f) < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                                             "checkpoint %s: close failed", tmp)
                            : NHGD_OK;
  if (!rc) rc = crc;
  rc = nhgd_error_agree(c->comm, rc);
  if (!rc && c->rank == 0) rc = publish(c, pos, tmp, path);
  if (rc && c->rank == 0) remove(tmp);
  rc = nhgd_error_agree(c->comm, rc);
  if (rc) {
    nhgd_error_context("checkpoint %s: ", tmp);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  return NHGD_OK;
}

int nhgd_ckpt_discard_after(nhgd_ckpt *c, int64_t pos) {
  int rc = NHGD_OK;
  if (c->rank == 0) {
    int64_t *list;
    int n;
    rc = list_checkpoints(c->dir, &list, &n);
    int64_t newest = -1;
    for (int i = 0; !rc && i < n; ++i) {
      if (list[i] <= pos) {
        if (newest < 0) newest = list[i];
        continue;
      }
      char p[4200];
      /* The checksum first: without it the data file is no checkpoint any more. */
      ckpt_name(p, sizeof p, c->dir, list[i], ".crc32");
      if (remove(p) && errno != ENOENT)
        rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "cannot remove %s (%s)", p,
                            strerror(errno));
      sync_path(c->dir);
      ckpt_name(p, sizeof p, c->dir, list[i], "");
      remove(p);
    }
    if (!rc) {
      write_latest(c, newest);
      sync_path(c->dir);
    }
    free(list);
  }
  return nhgd_error_agree(c->comm, rc);
}

/* ---- finding and reading ---- */

int nhgd_ckpt_find(nhgd_ckpt *c, const char *r, int skip, char *path, size_t len) {
  int rc = NHGD_OK;
  path[0] = '\0';
  if (c->rank == 0) {
    if (strcmp(r, "auto") && strcmp(r, "never")) {
      /* One named checkpoint: it must be valid. */
      rc = nhgd_checkpoint_verify(r);
      if (!rc) snprintf(path, len, "%s", r);
    } else {
      int64_t *pos;
      int n;
      rc = list_checkpoints(c->dir, &pos, &n);
      if (!rc && n > 0 && !strcmp(r, "never"))
        rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                            "--restart never, but %s holds %d checkpoint(s) of an earlier run: "
                            "use --restart auto to continue it, or another --checkpoint-dir",
                            c->dir, n);
      for (int i = 0; !rc && i < n && !path[0]; ++i) {
        char p[4200];
        ckpt_name(p, sizeof p, c->dir, pos[i], "");
        nhgd_error_clear();
        if (nhgd_checkpoint_verify(p) == NHGD_OK) {
          if (skip-- <= 0) snprintf(path, len, "%s", p);
        } else
          nhgd_log(NHGD_LOG_WARN, "skipping checkpoint: %s", nhgd_error_message());
        nhgd_error_clear();
      }
      free(pos);
    }
  }
  rc = nhgd_error_agree(c->comm, rc);
  if (!rc) NHGD_MPI_CHECK(MPI_Bcast(path, (int)len, MPI_CHAR, 0, c->comm));
  return rc;
}

typedef struct {
  hid_t group;
  const char *path;
  int rc;
} option_checker;

/* Every option that shapes the trajectory must have the value it had. */
static void check_option(const char *name, const char *value, unsigned flags, void *arg) {
  option_checker *c = arg;
  if (c->rc || !(flags & NHGD_OPT_TRAJECTORY)) return;
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

void nhgd_ckpt_close(nhgd_ckpt_file **pf) {
  if (!pf || !*pf) return;
  nhgd_ckpt_file *f = *pf;
  for (int i = 0; i < MAX_PARTS; ++i)
    if (f->gid[i] >= 0) H5Gclose(f->gid[i]);
  if (f->f >= 0) H5Fclose(f->f);
  nhgd_free(pf);
}

static int open_groups(nhgd_ckpt *c, nhgd_ckpt_file *f, const nhgd_options *o) {
  hid_t g = H5Gopen2(f->f, "config", H5P_DEFAULT);
  if (g < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: no /config", f->path);
  option_checker chk = {g, f->path, NHGD_OK};
  nhgd_options_foreach(o, check_option, &chk);
  H5Gclose(g);
  NHGD_CHECK(chk.rc);
  for (int i = 0; i < c->nparts; ++i) {
    if (!c->parts[i].group) continue;
    f->gid[i] = H5Gopen2(f->f, c->parts[i].group, H5P_DEFAULT);
    if (f->gid[i] < 0) NHGD_FAIL(NHGD_ERR_DATA, "%s: no /%s", f->path, c->parts[i].group);
    f->group[i] = (nhgd_section){f->gid[i], c->rank, c->comm, NULL};
  }
  return NHGD_OK;
}

/* Open the checkpoint at path, or (image not NULL) the bytes of one in memory with HDF5's core
 * driver (path then names it in messages). */
static int open_file(nhgd_ckpt *c, const char *path, const void *image, size_t size,
                     const nhgd_options *o, nhgd_ckpt_file **out) {
  nhgd_ckpt_file *f;
  *out = NULL;
  int rc = nhgd_calloc(&f, 1, sizeof *f, "checkpoint file");
  NHGD_CHECK(nhgd_error_agree(c->comm, rc));
  f->f = -1;
  for (int i = 0; i < MAX_PARTS; ++i)
    f->gid[i] = -1;
  snprintf(f->path, sizeof f->path, "%s", path);
  nhgd_h5_quiet();
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (image) {
    /* HDF5 copies the image and never writes to it, but declares it non-const. */
    void *bytes;
    memcpy(&bytes, &image, sizeof bytes);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    H5Pset_file_image(fapl, bytes, size);
  } else
    H5Pset_fapl_mpio(fapl, c->comm, MPI_INFO_NULL);
  f->f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  rc = f->f < 0 ? nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__, "%s: cannot open", path) : 0;
  if (!rc) {
    f->root = (nhgd_section){f->f, c->rank, c->comm, NULL};
    rc = open_groups(c, f, o);
  }
  rc = nhgd_error_agree(c->comm, rc);
  if (rc) {
    nhgd_ckpt_close(&f);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  *out = f;
  return NHGD_OK;
}

int nhgd_ckpt_open(nhgd_ckpt *c, const char *path, const nhgd_options *o, nhgd_ckpt_file **out) {
  return open_file(c, path, NULL, 0, o, out);
}

int nhgd_ckpt_open_image(nhgd_ckpt *c, const char *name, const void *image, size_t size,
                         const nhgd_options *o, nhgd_ckpt_file **out) {
  *out = NULL;
  if (!image || !size) NHGD_FAIL(NHGD_ERR_DATA, "%s: an empty image is not a checkpoint", name);
  return open_file(c, name, image, size, o, out);
}

nhgd_section *nhgd_ckpt_section(nhgd_ckpt *c, nhgd_ckpt_file *f, const char *group) {
  if (!group) return &f->root;
  for (int i = 0; i < c->nparts; ++i)
    if (c->parts[i].group && !strcmp(c->parts[i].group, group)) return &f->group[i];
  return NULL;
}

int nhgd_ckpt_load(nhgd_ckpt *c, nhgd_ckpt_file *f) {
  for (int i = 0; i < c->nparts; ++i) {
    const ckpt_part *p = &c->parts[i];
    nhgd_section *sec = p->group ? &f->group[i] : &f->root;
    int rc = p->load ? p->load(p->self, sec) : NHGD_OK;
    NHGD_CHECK(nhgd_error_agree(c->comm, rc));
  }
  return NHGD_OK;
}
