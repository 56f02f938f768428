/* Checkpoint files: the check a script can make before it continues from one. */
#ifndef NHGD_CHECKPOINT_H
#define NHGD_CHECKPOINT_H

#include "nhgd/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Not collective: is the checkpoint file at path complete and undamaged (checksum file,
 * size, CRC-32, format)? An NHGD_ERR_DATA error says what is wrong. */
NHGD_API int nhgd_checkpoint_verify(const char *path);

#ifdef __cplusplus
}
#endif
#endif
