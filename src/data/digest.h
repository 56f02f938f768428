/* A content digest of loaded data, recorded in checkpoints to bind them to their input. */
#ifndef NHGD_DATA_DIGEST_H
#define NHGD_DATA_DIGEST_H

#include <stdint.h>

#include "nhgd/data.h"
#include "nhgd/errors.h"

/* Collective over the data's communicator: the same 64-bit digest on every rank, whatever the
 * number of ranks, of every row (features and labels) of every split and of the shape. */
int nhgd_data_digest(const nhgd_data *d, uint64_t *out);

#endif
