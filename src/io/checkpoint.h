/* Checkpoints of a run: a writer that stateful modules register parts with, the search for
 * the newest valid checkpoint, and reading one back part by part. */
#ifndef NHGD_IO_CHECKPOINT_H
#define NHGD_IO_CHECKPOINT_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "io/section.h"
#include "nhgd/options.h"

/* 2: work counter "samples"; 3: data digest; 4: step sizes in use, rollbacks; 5: the clocks
 * solver_time and eval_time, history columns val_rows, val_loss_full, solver_time, eval_time */
#define NHGD_CHECKPOINT_FORMAT_VERSION 5

typedef struct nhgd_ckpt nhgd_ckpt;
typedef struct nhgd_ckpt_file nhgd_ckpt_file;
typedef int (*nhgd_ckpt_save_fn)(void *self, nhgd_section *s);
typedef int (*nhgd_ckpt_load_fn)(void *self, nhgd_section *s);

/* Collective: a writer for folder dir keeping the newest keep checkpoints; creates the
 * folder, takes its lock (refusing a folder another process holds), reads its manifest and
 * removes the leftovers of the run's interrupted writes. */
int nhgd_ckpt_create(MPI_Comm comm, const char *dir, int keep, nhgd_ckpt **out);
/* Releases the folder's lock. */
void nhgd_ckpt_destroy(nhgd_ckpt **c);
/* Not collective: pruning keeps, besides the newest keep, the newest checkpoint at or before
 * position a and the newest at or before b (where a rollback returns; < 0: none). */
void nhgd_ckpt_protect(nhgd_ckpt *c, int64_t a, int64_t b);
/* Is name (in a checkpoint folder) one of the names the checkpoints use: ckpt-*, LATEST,
 * LOCK, MANIFEST and their temporary names? */
int nhgd_ckpt_reserved_name(const char *name);
/* Register a part: save writes it, load reads it back (parts are loaded in the order they
 * were added). group NULL puts it at the file's root, else in its own group. */
int nhgd_ckpt_add_part(nhgd_ckpt *c, const char *group, void *self, nhgd_ckpt_save_fn save,
                       nhgd_ckpt_load_fn load);
/* Collective: write checkpoint number pos after gen rollbacks (its path is returned): every
 * part, and every option of o under /config. A name that exists and is not in the manifest is
 * refused, never overwritten. */
int nhgd_ckpt_write(nhgd_ckpt *c, int64_t pos, int gen, const nhgd_options *o, char *path,
                    size_t len);
/* Collective: unpublish and remove every checkpoint of the run after position pos (those of
 * steps a rollback undid); LATEST then names the newest left. */
int nhgd_ckpt_discard_after(nhgd_ckpt *c, int64_t pos);
/* Collective: the checkpoint to continue from per restart (auto | never | a path; "" if
 * none), skipping damaged ones with a warning, and with auto also the newest skip ones that
 * verify (their content was found bad on loading). */
int nhgd_ckpt_find(nhgd_ckpt *c, const char *restart, int skip, char *path, size_t len);
/* Collective: open a checkpoint for reading; refuses one written with other values of the
 * options that shape the trajectory (the error names the first). */
int nhgd_ckpt_open(nhgd_ckpt *c, const char *path, const nhgd_options *o, nhgd_ckpt_file **out);
/* Collective: the same on the bytes of a checkpoint file in memory (HDF5's core driver; meant
 * for one process): name stands for the file in messages. The fuzz harness uses it. */
int nhgd_ckpt_open_image(nhgd_ckpt *c, const char *name, const void *image, size_t size,
                         const nhgd_options *o, nhgd_ckpt_file **out);
/* The section of a part (group NULL: the root) in an open checkpoint. */
nhgd_section *nhgd_ckpt_section(nhgd_ckpt *c, nhgd_ckpt_file *f, const char *group);
/* Collective: load every part. */
int nhgd_ckpt_load(nhgd_ckpt *c, nhgd_ckpt_file *f);
void nhgd_ckpt_close(nhgd_ckpt_file **f);

/* Not collective: CRC-32 and size of a file. */
int nhgd_file_crc32(const char *path, unsigned long *crc, long long *size);

#endif
