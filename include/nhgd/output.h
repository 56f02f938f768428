/* The output file of a run: the start-up check of its path, and the guard that keeps every
 * path a program writes apart from the paths it reads and from each other. */
#ifndef NHGD_OUTPUT_H
#define NHGD_OUTPUT_H

#include "nhgd/export.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Collective over comm: can the output file path be written? Refuses a folder, and a path
 * whose temporary name (path.tmp) cannot be created (rank 0 tries; every rank returns the
 * same status, NHGD_ERR_IO naming the path and the cause). Meant for start-up, so that a bad
 * --output is found before the run rather than after it. */
NHGD_API int nhgd_output_check(MPI_Comm comm, const char *path);

/* How a program uses a path, for nhgd_paths_check. */
typedef enum nhgd_path_use {
  NHGD_PATH_READ = 0,   /* an input: never written */
  NHGD_PATH_WRITE = 1,  /* a file written as path.tmp, then renamed to path */
  NHGD_PATH_APPEND = 2, /* a file written in place (the metrics, line by line) */
  NHGD_PATH_FOLDER = 3  /* the checkpoint folder (its ckpt-*, LATEST, LOCK and MANIFEST) */
} nhgd_path_use;

/* One path of a program, named by the option that gives it (for messages). */
typedef struct nhgd_path {
  const char *option; /* e.g. "--data" */
  const char *path;   /* NULL or "": not used */
  nhgd_path_use use;
} nhgd_path;

/* Not collective: refuse (NHGD_ERR_ARG, naming both options and paths) paths[0..n) in which
 * a path that is written is the same file as another path of the list: an input, another
 * output, or (for a file written as path.tmp first) an input named path.tmp; and a file
 * written inside the checkpoint folder under one of the names its checkpoints use. Files are
 * compared by device and inode (a path that does not exist yet by the device and inode of
 * its folder, and its name), so links and other spellings of one file are found. */
NHGD_API int nhgd_paths_check(const nhgd_path *paths, int n);

#ifdef __cplusplus
}
#endif
#endif
