/* A section of a checkpoint: the named part of the file one stateful module writes and reads
 * back, without knowing the file format. Every call is collective over the file's ranks and
 * returns the same status on every rank. */
#ifndef NHGD_IO_SECTION_H
#define NHGD_IO_SECTION_H

#include <stddef.h>
#include <stdint.h>

#include "linalg/bcmat.h"

typedef struct nhgd_section nhgd_section;

int nhgd_section_put_int(nhgd_section *s, const char *name, int64_t value);
int nhgd_section_put_real(nhgd_section *s, const char *name, double value);
int nhgd_section_put_string(nhgd_section *s, const char *name, const char *value);
/* A replicated vector of n entries (written once, by rank 0). */
int nhgd_section_put_vector(nhgd_section *s, const char *name, int64_t n, const double *x);
/* A distributed vector of n entries, this rank holding [offset, offset + count). */
int nhgd_section_put_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, const double *x);
/* A block-cyclic matrix, in a layout that does not depend on the grid. */
int nhgd_section_put_matrix(nhgd_section *s, const char *name, const nhgd_bcmat *A);

int nhgd_section_has(nhgd_section *s, const char *name);
int nhgd_section_get_int(nhgd_section *s, const char *name, int64_t *value);
int nhgd_section_get_real(nhgd_section *s, const char *name, double *value);
int nhgd_section_get_string(nhgd_section *s, const char *name, char *buf, size_t len);
/* Every rank reads all n entries. */
int nhgd_section_get_vector(nhgd_section *s, const char *name, int64_t n, double *x);
int nhgd_section_get_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, double *x);
int nhgd_section_get_matrix(nhgd_section *s, const char *name, nhgd_bcmat *A);
/* Agree on a part's own rank-local status (an allocation, a check of what was read) the way
 * every section call does: returns the same status on every rank. */
int nhgd_section_agree(nhgd_section *s, int status);
/* Collective: whether what was read is finite. An NHGD_ERR_DATA error on every rank, naming
 * the dataset (or attribute) and the entry, when any rank's x (n entries; for a matrix, this
 * rank's blocks) holds a NaN or an infinity: a damaged checkpoint, skipped for an older one. */
int nhgd_section_check_finite(nhgd_section *s, const char *name, int64_t n, const double *x);
int nhgd_section_check_finite_matrix(nhgd_section *s, const char *name, const nhgd_bcmat *A);
/* The number of entries of a 1-D dataset (to check it before allocating from it). */
int nhgd_section_get_length(nhgd_section *s, const char *name, int64_t *n);

#endif
