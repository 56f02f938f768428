/* The output-path guard: no path a program writes may be a file it reads or another file it
 * writes. Paths are compared as files, by device and inode, not as text: "a.h5", "./a.h5",
 * "dir/../a.h5", a symbolic link to a.h5 and a hard link of it are all the same file. A path
 * that does not exist yet is identified by the device and inode of its folder and its name. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "io/checkpoint.h"
#include "nhgd/output.h"

typedef struct {
  int exists, in_dir;
  dev_t dev, dir_dev;
  ino_t ino, dir_ino;
  char name[256];
  char text[NHGD_PATH_MAX + 8];
} path_id;

static void identify(const char *path, path_id *id) {
  memset(id, 0, sizeof *id);
  snprintf(id->text, sizeof id->text, "%s", path);
  struct stat st;
  if (stat(path, &st) == 0) {
    id->exists = 1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
  }
  char dir[NHGD_PATH_MAX + 8];
  snprintf(dir, sizeof dir, "%s", path);
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    dir[--n] = '\0';
  char *slash = strrchr(dir, '/');
  const char *name = slash ? slash + 1 : dir;
  if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) >= sizeof id->name)
    return;
  memcpy(id->name, name, strlen(name) + 1); /* fits: checked above */
  const char *folder = !slash ? "." : slash == dir ? "/" : (*slash = '\0', dir);
  if (stat(folder, &st) == 0) {
    id->in_dir = 1;
    id->dir_dev = st.st_dev;
    id->dir_ino = st.st_ino;
  }
}

static int same_file(const path_id *a, const path_id *b) {
  if (a->exists && b->exists) return a->dev == b->dev && a->ino == b->ino;
  if (a->exists != b->exists) return 0;
  if (a->in_dir && b->in_dir)
    return a->dir_dev == b->dir_dev && a->dir_ino == b->dir_ino && !strcmp(a->name, b->name);
  return !strcmp(a->text, b->text);
}

static int used(const nhgd_path *p) {
  return p->path && p->path[0];
}

int nhgd_paths_check(const nhgd_path *paths, int n) {
  for (int i = 0; i < n; ++i) {
    const nhgd_path *w = &paths[i];
    if (!used(w) || w->use == NHGD_PATH_READ) continue;
    path_id wid, tid, xid;
    identify(w->path, &wid);
    char tmp[NHGD_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", w->path);
    identify(tmp, &tid);
    for (int j = 0; j < n; ++j) {
      const nhgd_path *x = &paths[j];
      if (j == i || !used(x)) continue;
      identify(x->path, &xid);
      const int x_reads = x->use == NHGD_PATH_READ;
      if (same_file(&wid, &xid)) {
        if (x_reads)
          NHGD_FAIL(NHGD_ERR_ARG,
                    "%s %s is the same file as %s %s: the run would overwrite its input; name "
                    "another %s",
                    w->option, w->path, x->option, x->path,
                    w->use == NHGD_PATH_FOLDER ? "folder" : "file");
        /* Each pair of writers once, in the order given. */
        if (j < i) continue;
        NHGD_FAIL(NHGD_ERR_ARG,
                  "%s %s and %s %s are the same file: each output needs a path of its own",
                  w->option, w->path, x->option, x->path);
      }
      if (w->use == NHGD_PATH_WRITE && same_file(&tid, &xid))
        NHGD_FAIL(NHGD_ERR_ARG,
                  "%s %s is written as %s first, which is %s %s: %s would be overwritten; name "
                  "another file",
                  w->option, w->path, tmp, x->option, x->path, x->path);
      /* Inside the checkpoint folder the names of its checkpoints are the run's. */
      if (w->use == NHGD_PATH_FOLDER && !x_reads && wid.exists && xid.in_dir &&
          xid.dir_dev == wid.dev && xid.dir_ino == wid.ino && nhgd_ckpt_reserved_name(xid.name))
        NHGD_FAIL(NHGD_ERR_ARG,
                  "%s %s is inside %s %s under a name its checkpoints use (ckpt-*, LATEST, LOCK, "
                  "MANIFEST): name another file",
                  x->option, x->path, w->option, w->path);
    }
  }
  return NHGD_OK;
}
