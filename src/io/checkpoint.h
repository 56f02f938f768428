/* Checkpoints of a run: write, find the newest valid one, and continue from it. */
#ifndef NHGD_IO_CHECKPOINT_H
#define NHGD_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

struct nhgd_engine;

#define NHGD_CHECKPOINT_FORMAT_VERSION 2 /* 2: work counter "samples" */

/* Collective: create --checkpoint-dir and remove leftovers of interrupted writes. */
int nhgd_checkpoint_prepare(struct nhgd_engine *e);
/* Collective: write the state after inner step t of outer step e->k (t = 0: at the boundary
 * after e->k outer steps). complete marks the end of the run. */
int nhgd_checkpoint_write(struct nhgd_engine *e, int64_t t, int complete);
/* Collective: the checkpoint to continue from per --restart ("" if none), skipping damaged
 * ones with a warning. */
int nhgd_checkpoint_find(struct nhgd_engine *e, char *path, size_t len);
/* Collective: a string attribute of the checkpoint's /estimator group ("" if absent). */
int nhgd_checkpoint_peek(struct nhgd_engine *e, const char *path, const char *attr, char *value,
                         size_t len);
/* Collective: load the state; the configuration must agree on every option that shapes the
 * trajectory (the error names the first that differs). */
int nhgd_checkpoint_load(struct nhgd_engine *e, const char *path);

#endif
