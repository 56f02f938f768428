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
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
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
/* A checkpoint's base name: ckpt-, 12 digits, -r and up to 9 digits, .h5, and a NUL. */
#define BASE_LEN 48
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
  int locked; /* rank 0: holds the folder's lock */
  /* Rank 0: the folder's manifest, the base names of the checkpoints that runs in this folder
   * wrote, oldest write first; nothing else in the folder is ever removed or overwritten. */
  char (*names)[BASE_LEN];
  int nnames, cap_names;
  int64_t protect[2]; /* the newest checkpoint at or before each (>= 0) is never pruned */
};

struct nhgd_ckpt_file {
  hid_t f;
  char path[NHGD_PATH_MAX + 64];
  nhgd_section root, group[MAX_PARTS];
  hid_t gid[MAX_PARTS];
};

/* ---- files ---- */

#define LOCK_NAME "LOCK"
#define LOCK_HEAD "held by host "
#define MANIFEST_NAME "MANIFEST"
#define MANIFEST_HEAD "nhgd checkpoint folder manifest 1"

int nhgd_ckpt_reserved_name(const char *name) {
  return !strncmp(name, CKPT_PREFIX, strlen(CKPT_PREFIX)) || !strcmp(name, "LATEST") ||
         !strcmp(name, "LATEST.tmp") || !strcmp(name, LOCK_NAME) || !strcmp(name, MANIFEST_NAME) ||
         !strcmp(name, MANIFEST_NAME ".tmp");
}

/* The base name of checkpoint pos after gen rollbacks: ckpt-<pos>.h5, or ckpt-<pos>-r<gen>.h5
 * once a rollback has undone steps (their positions are taken again under new names). */
static void ckpt_base(char *buf, size_t len, int64_t pos, int gen) {
  if (gen > 0)
    snprintf(buf, len, CKPT_PREFIX "%012lld-r%d" CKPT_SUFFIX, (long long)pos, gen);
  else
    snprintf(buf, len, CKPT_PREFIX "%012lld" CKPT_SUFFIX, (long long)pos);
}

/* Is name the base name of a checkpoint? Its position and rollback count. */
static int parse_base(const char *name, int64_t *pos, int *gen) {
  const char *p = name + strlen(CKPT_PREFIX);
  if (strncmp(name, CKPT_PREFIX, strlen(CKPT_PREFIX))) return 0;
  int64_t v = 0;
  for (int i = 0; i < 12; ++i, ++p) {
    if (*p < '0' || *p > '9') return 0;
    v = 10 * v + (*p - '0');
  }
  int g = 0;
  if (p[0] == '-' && p[1] == 'r') {
    p += 2;
    if (*p < '1' || *p > '9') return 0;
    for (int i = 0; *p >= '0' && *p <= '9'; ++i, ++p) {
      if (i == 9) return 0;
      g = 10 * g + (*p - '0');
    }
  }
  if (strcmp(p, CKPT_SUFFIX)) return 0;
  *pos = v;
  *gen = g;
  return 1;
}

static void in_dir(char *buf, size_t len, const char *dir, const char *base, const char *suffix) {
  snprintf(buf, len, "%s/%s%s", dir, base, suffix);
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

typedef struct {
  int64_t pos;
  int gen;
  char base[BASE_LEN];
} ckpt_entry;

/* Newest first: by position, then by rollback count. */
static int newer(const ckpt_entry *a, const ckpt_entry *b) {
  return a->pos > b->pos || (a->pos == b->pos && a->gen > b->gen);
}

/* The checkpoints in dir (every data file with a checkpoint's name), newest first. */
static int list_checkpoints(const char *dir, ckpt_entry **out, int *n) {
  *out = NULL;
  *n = 0;
  DIR *dp = opendir(dir);
  if (!dp) return NHGD_OK;
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    ckpt_entry e;
    if (!parse_base(de->d_name, &e.pos, &e.gen)) continue;
    ckpt_base(e.base, sizeof e.base, e.pos,
              e.gen); /* the name itself: parse_base takes one spelling */
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      ckpt_entry *np = realloc(*out, (size_t)cap * sizeof **out);
      if (!np) {
        closedir(dp);
        NHGD_FAIL(NHGD_ERR_MEM, "out of memory listing %s", dir);
      }
      *out = np;
    }
    (*out)[(*n)++] = e;
  }
  closedir(dp);
  for (int i = 1; i < *n; ++i) /* insertion sort, newest first */
    for (int j = i; j > 0 && newer(&(*out)[j], &(*out)[j - 1]); --j) {
      ckpt_entry t = (*out)[j];
      (*out)[j] = (*out)[j - 1];
      (*out)[j - 1] = t;
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

/* ---- the folder's lock ---- */

/* The folders this process holds the lock of, with a count of holders each (the program's
 * start-up check and the solver's writer share one). An flock on LOCK in the folder: the
 * kernel releases it when the process ends, however it ends. */
typedef struct {
  dev_t dev;
  ino_t ino;
  int fd, refs;
} folder_lock;
#define MAX_LOCKS 16
static folder_lock held[MAX_LOCKS];
static int nheld;

static int lock_folder(const char *dir) {
  NHGD_CHECK(make_dir(dir));
  struct stat st;
  if (stat(dir, &st) != 0) NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: is a file, not a folder", dir);
  for (int i = 0; i < nheld; ++i)
    if (held[i].dev == st.st_dev && held[i].ino == st.st_ino) {
      ++held[i].refs;
      return NHGD_OK;
    }
  if (nheld == MAX_LOCKS)
    NHGD_FAIL(NHGD_ERR_INTERNAL, "more than %d checkpoint folders", MAX_LOCKS);
  if (access(dir, W_OK | X_OK) != 0)
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot write in it (%s)", dir, strerror(errno));
  char path[NHGD_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
  /* Never through a link, and a LOCK that is not nhgd's is locked but never written. */
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int ours = fd >= 0;
  if (fd < 0 && errno == EEXIST) fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot create %s (%s)", dir, path,
              strerror(errno));
  if (!ours) {
    char head[sizeof LOCK_HEAD] = "";
    const ssize_t got = pread(fd, head, sizeof head - 1, 0);
    ours = got == (ssize_t)(sizeof head - 1) && !memcmp(head, LOCK_HEAD, sizeof head - 1);
  }
  const int locked = flock(fd, LOCK_EX | LOCK_NB) == 0, e = locked ? 0 : errno;
  /* File systems without flock (Lustre without -o flock, some NFS): run, unprotected. */
  if (e == ENOSYS || e == ENOLCK || e == EOPNOTSUPP)
    nhgd_log(NHGD_LOG_WARN,
             "checkpoint folder %s: the file system cannot lock %s (%s): nothing stops a second "
             "run from using the folder at the same time",
             dir, path, strerror(e));
  else if (!locked) {
    char holder[256] = "";
    const ssize_t got = pread(fd, holder, sizeof holder - 1, 0);
    holder[got > 0 ? got : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    close(fd);
    if (e == EWOULDBLOCK)
      NHGD_FAIL(NHGD_ERR_IO,
                "checkpoint folder %s is in use by another run (%s: %s): two runs must not share "
                "a folder; wait until that run has ended, or use another --checkpoint-dir",
                dir, path, holder[0] ? holder : "holder unknown");
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot lock %s (%s)", dir, path, strerror(e));
  }
  /* Who holds it, for the message of a second run (a failure to say so is no error). */
  char host[256] = "?", when[64] = "?", info[512];
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  const time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const int n =
      snprintf(info, sizeof info, LOCK_HEAD "%s, pid %ld, since %s\n", host, (long)getpid(), when);
  if (ours && (ftruncate(fd, 0) != 0 || pwrite(fd, info, (size_t)n, 0) != n))
    nhgd_log(NHGD_LOG_DEBUG, "cannot record the holder in %s", path);
  held[nheld++] = (folder_lock){st.st_dev, st.st_ino, fd, 1};
  return NHGD_OK;
}

static void unlock_folder(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0) return;
  for (int i = 0; i < nheld; ++i)
    if (held[i].dev == st.st_dev && held[i].ino == st.st_ino) {
      if (--held[i].refs > 0) return;
      close(held[i].fd);
      held[i] = held[--nheld];
      return;
    }
}

int nhgd_checkpoint_folder_lock(MPI_Comm comm, const char *dir) {
  int rank, rc = NHGD_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) rc = lock_folder(dir);
  return nhgd_error_agree(comm, rc);
}

void nhgd_checkpoint_folder_unlock(MPI_Comm comm, const char *dir) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) unlock_folder(dir);
}

/* ---- the manifest (rank 0) ---- */

static int manifest_find(const nhgd_ckpt *c, const char *base) {
  for (int i = 0; i < c->nnames; ++i)
    if (!strcmp(c->names[i], base)) return i;
  return -1;
}

static void manifest_drop(nhgd_ckpt *c, int i) {
  memmove(c->names[i], c->names[i + 1], (size_t)(c->nnames - i - 1) * sizeof c->names[0]);
  --c->nnames;
}

/* base becomes the newest entry. */
static int manifest_add(nhgd_ckpt *c, const char *base) {
  const int i = manifest_find(c, base);
  if (i >= 0) manifest_drop(c, i);
  if (c->nnames == c->cap_names) {
    const int cap = c->cap_names ? 2 * c->cap_names : 16;
    char(*n)[BASE_LEN] = realloc(c->names, (size_t)cap * sizeof *n);
    if (!n) NHGD_FAIL(NHGD_ERR_MEM, "out of memory for the checkpoint manifest");
    c->names = n;
    c->cap_names = cap;
  }
  snprintf(c->names[c->nnames++], BASE_LEN, "%s", base);
  return NHGD_OK;
}

/* Read the manifest; a folder without one holds nothing of the run's. */
static int manifest_load(nhgd_ckpt *c) {
  char path[NHGD_PATH_MAX + 16], line[256];
  snprintf(path, sizeof path, "%s/" MANIFEST_NAME, c->dir);
  c->nnames = 0;
  NHGD_CHECK(nhgd_check_regular(path));
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno == ENOENT) return NHGD_OK;
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot read %s (%s)", c->dir, path,
              strerror(errno));
  }
  int rc = NHGD_OK, first = 1;
  while (!rc && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    int64_t pos;
    int gen;
    if (first && strcmp(line, MANIFEST_HEAD)) {
      /* Not nhgd's: the run would have to overwrite it to record its checkpoints. */
      rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                          "checkpoint folder %s: %s is not a manifest of nhgd (the run records "
                          "its checkpoints there and will not overwrite it): use another "
                          "--checkpoint-dir",
                          c->dir, path);
      break;
    }
    if (!first && parse_base(line, &pos, &gen)) rc = manifest_add(c, line);
    first = 0;
  }
  if (!rc && first)
    rc = nhgd_error_set(NHGD_ERR_IO, __FILE__, __LINE__,
                        "checkpoint folder %s: %s is empty, not a manifest of nhgd: use another "
                        "--checkpoint-dir",
                        c->dir, path);
  fclose(f);
  return rc;
}

static int manifest_save(nhgd_ckpt *c) {
  char path[NHGD_PATH_MAX + 16], tmp[NHGD_PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/" MANIFEST_NAME, c->dir);
  snprintf(tmp, sizeof tmp, "%s/" MANIFEST_NAME ".tmp", c->dir);
  FILE *f = fopen(tmp, "w");
  int ok = f && fprintf(f, "%s\n", MANIFEST_HEAD) > 0;
  for (int i = 0; ok && i < c->nnames; ++i)
    ok = fprintf(f, "%s\n", c->names[i]) > 0;
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  int e = errno;
  if (f && fclose(f) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && rename(tmp, path) != 0) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    remove(tmp);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint folder %s: cannot write %s (%s)", c->dir, path, strerror(e));
  }
  sync_path(c->dir);
  return NHGD_OK;
}

/* Remove a checkpoint of the manifest (its checksum first: without it the data file is no
 * checkpoint any more) and its entry; the manifest is saved by the caller. */
static int remove_listed(nhgd_ckpt *c, int i) {
  char p[NHGD_PATH_MAX + 64];
  in_dir(p, sizeof p, c->dir, c->names[i], ".crc32");
  if (remove(p) && errno != ENOENT)
    NHGD_FAIL(NHGD_ERR_IO, "cannot remove %s (%s)", p, strerror(errno));
  sync_path(c->dir);
  in_dir(p, sizeof p, c->dir, c->names[i], "");
  if (remove(p) && errno != ENOENT)
    NHGD_FAIL(NHGD_ERR_IO, "cannot remove %s (%s)", p, strerror(errno));
  manifest_drop(c, i);
  return NHGD_OK;
}

/* Collective: lock the folder (creating it), read its manifest and remove the leftovers of
 * the run's interrupted writes: temporary files, and a data file without its checksum (a kill
 * between the two renames of publish). Only names in the manifest are touched. */
static int prepare(nhgd_ckpt *c) {
  int rc = NHGD_OK;
  if (c->rank == 0) {
    rc = lock_folder(c->dir);
    c->locked = !rc;
    if (!rc) rc = manifest_load(c);
    int changed = 0;
    for (int i = c->nnames - 1; !rc && i >= 0; --i) {
      char data[NHGD_PATH_MAX + 64], sum[NHGD_PATH_MAX + 64], p[NHGD_PATH_MAX + 64];
      in_dir(p, sizeof p, c->dir, c->names[i], ".tmp");
      remove(p);
      in_dir(p, sizeof p, c->dir, c->names[i], ".crc32.tmp");
      remove(p);
      in_dir(data, sizeof data, c->dir, c->names[i], "");
      in_dir(sum, sizeof sum, c->dir, c->names[i], ".crc32");
      if (exists(data) && exists(sum)) continue;
      rc = remove_listed(c, i);
      changed = 1;
    }
    char p[NHGD_PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/LATEST.tmp", c->dir);
    remove(p);
    snprintf(p, sizeof p, "%s/" MANIFEST_NAME ".tmp", c->dir);
    remove(p);
    if (!rc && changed) rc = manifest_save(c);
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
  c->protect[0] = c->protect[1] = -1;
  rc = prepare(c);
  if (rc) {
    nhgd_ckpt_destroy(&c);
    return nhgd_error_trace(rc, __FILE__, __LINE__);
  }
  *out = c;
  return NHGD_OK;
}

void nhgd_ckpt_destroy(nhgd_ckpt **c) {
  if (!c || !*c) return;
  if ((*c)->locked) unlock_folder((*c)->dir);
  free((*c)->names);
  nhgd_free(c);
}

void nhgd_ckpt_protect(nhgd_ckpt *c, int64_t a, int64_t b) {
  c->protect[0] = a;
  c->protect[1] = b;
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

/* Rank 0: remove the run's checkpoints (those of the manifest) but the newest `keep` written
 * and, for each protected position, the newest at or before it (where a rollback returns). */
static void prune(nhgd_ckpt *c) {
  int keep_protected[2] = {-1, -1};
  for (int k = 0; k < 2; ++k)
    for (int i = 0; c->protect[k] >= 0 && i < c->nnames; ++i) {
      ckpt_entry e, best;
      parse_base(c->names[i], &e.pos, &e.gen);
      if (e.pos > c->protect[k]) continue;
      if (keep_protected[k] >= 0) {
        parse_base(c->names[keep_protected[k]], &best.pos, &best.gen);
        if (!newer(&e, &best)) continue;
      }
      keep_protected[k] = i;
    }
  int kept = 0, changed = 0, rc = NHGD_OK;
  /* From the newest down: a removal moves only the entries already passed. */
  for (int i = c->nnames - 1; i >= 0 && !rc; --i) {
    char data[NHGD_PATH_MAX + 64], sum[NHGD_PATH_MAX + 64];
    in_dir(data, sizeof data, c->dir, c->names[i], "");
    in_dir(sum, sizeof sum, c->dir, c->names[i], ".crc32");
    const int gone = !exists(data) && !exists(sum); /* a write that failed */
    if (!gone && (kept++ < c->keep || i == keep_protected[0] || i == keep_protected[1])) continue;
    rc = remove_listed(c, i);
    changed = 1;
  }
  if (!rc && changed) rc = manifest_save(c);
  if (rc) {
    nhgd_log(NHGD_LOG_WARN, "pruning %s: %s", c->dir, nhgd_error_message());
    nhgd_error_clear();
  }
}

/* Rank 0: LATEST names the newest checkpoint in the folder (none: no LATEST). */
static void write_latest(nhgd_ckpt *c) {
  char latest[NHGD_PATH_MAX + 16], ltmp[NHGD_PATH_MAX + 16];
  snprintf(latest, sizeof latest, "%s/LATEST", c->dir);
  snprintf(ltmp, sizeof ltmp, "%s/LATEST.tmp", c->dir);
  ckpt_entry *list;
  int n;
  if (list_checkpoints(c->dir, &list, &n)) {
    nhgd_error_clear();
    return;
  }
  if (n == 0) {
    remove(latest);
    free(list);
    return;
  }
  FILE *lf = fopen(ltmp, "w");
  if (lf) {
    /* LATEST is a hint for people; restart lists the folder itself. */
    int ok = fprintf(lf, "%s\n", list[0].base) > 0;
    if (fclose(lf) == 0 && ok)
      rename(ltmp, latest);
    else
      remove(ltmp);
  }
  free(list);
}

/* Rank 0: may checkpoint base be written? Its names must be free or the run's (in the
 * manifest); it then becomes the manifest's newest entry, saved before anything is written. */
static int claim(nhgd_ckpt *c, const char *base) {
  if (manifest_find(c, base) < 0) {
    static const char *const suffixes[] = {"", ".crc32", ".tmp", ".crc32.tmp"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; ++i) {
      char p[NHGD_PATH_MAX + 64];
      in_dir(p, sizeof p, c->dir, base, suffixes[i]);
      if (exists(p))
        NHGD_FAIL(NHGD_ERR_IO,
                  "%s exists but no run in this folder wrote it (it is not in %s/" MANIFEST_NAME
                  "): nhgd leaves it alone; move it away, or use another --checkpoint-dir",
                  p, c->dir);
    }
  }
  NHGD_CHECK(manifest_add(c, base));
  return manifest_save(c);
}

/* Rank 0: publish the closed file tmp as path with its checksum (see the top of the file). */
static int publish(nhgd_ckpt *c, const char *base, const char *tmp, const char *path) {
  char crc[NHGD_PATH_MAX + 64], crctmp[NHGD_PATH_MAX + 64];
  in_dir(crc, sizeof crc, c->dir, base, ".crc32");
  in_dir(crctmp, sizeof crctmp, c->dir, base, ".crc32.tmp");
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
  /* Unpublish a checkpoint of the same name first (only after --restart from an older one;
   * claim made sure it is the run's). */
  if (remove(crc) == 0) sync_path(c->dir);
  if (rename(tmp, path) || rename(crctmp, crc)) {
    int e = errno;
    remove(crctmp);
    NHGD_FAIL(NHGD_ERR_IO, "checkpoint %s: rename failed (%s)", path, strerror(e));
  }
  sync_path(c->dir);
  write_latest(c);
  sync_path(c->dir);
  prune(c);
  return NHGD_OK;
}

int nhgd_ckpt_write(nhgd_ckpt *c, int64_t pos, int gen, const nhgd_options *o, char *path,
                    size_t len) {
  char tmp[NHGD_PATH_MAX + 64], base[BASE_LEN];
  ckpt_base(base, sizeof base, pos, gen);
  in_dir(path, len, c->dir, base, "");
  in_dir(tmp, sizeof tmp, c->dir, base, ".tmp");
  nhgd_h5_quiet();
  /* What the parts will write, checked against the free space before HDF5 starts. */
  double need = 0.0;
  int rc = write_parts(c, -1, o, &need);
  char what[NHGD_PATH_MAX + 100];
  snprintf(what, sizeof what, "checkpoint %s", tmp);
  if (!rc) rc = nhgd_io_check_space(c->comm, c->dir, 2.0 * need + SPACE_SLACK, what);
  if (!rc) rc = nhgd_error_agree(c->comm, c->rank == 0 ? claim(c, base) : NHGD_OK);
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
  if (!rc && c->rank == 0) rc = publish(c, base, tmp, path);
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
    int changed = 0;
    for (int i = c->nnames - 1; !rc && i >= 0; --i) {
      int64_t p;
      int gen;
      parse_base(c->names[i], &p, &gen);
      if (p <= pos) continue;
      rc = remove_listed(c, i);
      changed = 1;
    }
    if (!rc && changed) rc = manifest_save(c);
    if (!rc) {
      write_latest(c);
      sync_path(c->dir);
    }
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
      ckpt_entry *list;
      int n;
      rc = list_checkpoints(c->dir, &list, &n);
      if (!rc && n > 0 && !strcmp(r, "never"))
        rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                            "--restart never, but %s holds %d checkpoint(s) of an earlier run: "
                            "use --restart auto to continue it, or another --checkpoint-dir",
                            c->dir, n);
      for (int i = 0; !rc && i < n && !path[0]; ++i) {
        char p[NHGD_PATH_MAX + 64];
        in_dir(p, sizeof p, c->dir, list[i].base, "");
        nhgd_error_clear();
        if (nhgd_checkpoint_verify(p) == NHGD_OK) {
          if (skip-- <= 0) snprintf(path, len, "%s", p);
        } else
          nhgd_log(NHGD_LOG_WARN, "skipping checkpoint: %s", nhgd_error_message());
        nhgd_error_clear();
      }
      free(list);
    }
  }
  rc = nhgd_error_agree(c->comm, rc);
  if (!rc) NHGD_MPI_CHECK(MPI_Bcast(path, (int)len, MPI_CHAR, 0, c->comm));
  return rc;
}

typedef struct {
  hid_t group;
  const char *path;
  const nhgd_options *options;
  int rc;
} option_checker;

/* Every option that shapes the trajectory must have the value it had. One the checkpoint does
 * not record was added since it was written, by a program that ran as its default does: this
 * run may continue it at the default only. */
static void check_option(const char *name, const char *value, unsigned flags, void *arg) {
  option_checker *c = arg;
  if (c->rc || !(flags & NHGD_OPT_TRAJECTORY)) return;
  if (H5Aexists(c->group, name) == 0) {
    int is_default = 0;
    c->rc = nhgd_options_is_default(c->options, name, &is_default);
    if (!c->rc && !is_default)
      c->rc = nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                             "checkpoint %s was written before option --%s existed (as with its "
                             "default) but this run has --%s %s: continue with the default, or "
                             "use another --checkpoint-dir",
                             c->path, name, name, value);
    return;
  }
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
  option_checker chk = {g, f->path, o, NHGD_OK};
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
