/* Checkpoint files: the check a script can make before it continues from one. */
#ifndef NHGD_CHECKPOINT_H
#define NHGD_CHECKPOINT_H

#include "nhgd/export.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Not collective: is the checkpoint file at path complete and undamaged (checksum file,
 * size, CRC-32, format)? An NHGD_ERR_DATA error says what is wrong. */
NHGD_API int nhgd_checkpoint_verify(const char *path);

/* Collective over comm: take the checkpoint folder dir for this process (rank 0 creates it
 * with its parents and holds an exclusive lock on dir/LOCK, which the kernel releases when the
 * process ends). Refuses (NHGD_ERR_IO, same status on every rank) a path that is a file, a
 * folder it cannot write in, and a folder another process holds (the message names the
 * holder's host and pid). A process may take one folder more than once; each take needs an
 * nhgd_checkpoint_folder_unlock. The solver takes the folder of --checkpoint-dir itself: a
 * program calls this to find a bad folder at start-up. */
NHGD_API int nhgd_checkpoint_folder_lock(MPI_Comm comm, const char *dir);
/* Collective over comm: give the folder back (the lock is released with the last take). */
NHGD_API void nhgd_checkpoint_folder_unlock(MPI_Comm comm, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
