/* Checkpoint sections over HDF5: attributes for scalars, checksummed datasets for vectors and
 * matrices. Every call agrees on its outcome across the ranks before it returns, so that a
 * failure on one rank (a full disk, a damaged chunk) takes every rank out of the part's save
 * or load at the same call, and no rank is left waiting in the next collective one. A section
 * in sizing mode writes nothing and adds up the bytes the write would need. */
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "io/bcmat_h5.h"
#include "io/h5util.h"
#include "io/section_impl.h"

/* Per object: HDF5's header, the link, a chunk index; a generous round figure. */
#define OBJECT_BYTES 1024.0

static int agreed(nhgd_section *s, int rc) {
  return nhgd_error_agree(s->comm, rc);
}

static int sized(nhgd_section *s, double bytes) {
  *s->sizing += bytes + OBJECT_BYTES;
  return NHGD_OK;
}

int nhgd_section_put_int(nhgd_section *s, const char *name, int64_t value) {
  if (s->sizing) return sized(s, 8.0);
  return agreed(s, nhgd_h5_attr_int(s->loc, name, value));
}
int nhgd_section_put_real(nhgd_section *s, const char *name, double value) {
  if (s->sizing) return sized(s, 8.0);
  return agreed(s, nhgd_h5_attr_double(s->loc, name, value));
}
int nhgd_section_put_string(nhgd_section *s, const char *name, const char *value) {
  if (s->sizing) return sized(s, (double)strlen(value));
  return agreed(s, nhgd_h5_attr_string(s->loc, name, value));
}
int nhgd_section_put_vector(nhgd_section *s, const char *name, int64_t n, const double *x) {
  if (s->sizing) return sized(s, 8.0 * (double)n);
  return agreed(s, nhgd_h5_write_vector_ex(s->loc, name, n, 0, s->rank == 0 ? n : 0, x, 1));
}
int nhgd_section_put_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, const double *x) {
  if (s->sizing) return sized(s, 8.0 * (double)n);
  return agreed(s, nhgd_h5_write_vector_ex(s->loc, name, n, offset, count, x, 1));
}
int nhgd_section_put_matrix(nhgd_section *s, const char *name, const nhgd_bcmat *A) {
  if (s->sizing) return sized(s, 8.0 * (double)A->n * (double)A->n);
  return agreed(s, nhgd_bcmat_h5_write(A, s->loc, name));
}

int nhgd_section_has(nhgd_section *s, const char *name) {
  return H5Aexists(s->loc, name) > 0 || H5Lexists(s->loc, name, H5P_DEFAULT) > 0;
}
int nhgd_section_get_int(nhgd_section *s, const char *name, int64_t *value) {
  return agreed(s, nhgd_h5_attr_read_int(s->loc, name, value));
}
int nhgd_section_get_real(nhgd_section *s, const char *name, double *value) {
  return agreed(s, nhgd_h5_attr_read_double(s->loc, name, value));
}
int nhgd_section_get_string(nhgd_section *s, const char *name, char *buf, size_t len) {
  return agreed(s, nhgd_h5_attr_read_string(s->loc, name, buf, len));
}
int nhgd_section_get_vector(nhgd_section *s, const char *name, int64_t n, double *x) {
  return agreed(s, nhgd_h5_read_vector_coll(s->loc, name, n, 0, n, x));
}
int nhgd_section_get_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, double *x) {
  return agreed(s, nhgd_h5_read_vector_coll(s->loc, name, n, offset, count, x));
}
int nhgd_section_get_matrix(nhgd_section *s, const char *name, nhgd_bcmat *A) {
  return agreed(s, nhgd_bcmat_h5_read(A, s->loc, name));
}

int nhgd_section_agree(nhgd_section *s, int status) {
  return agreed(s, status);
}

static int first_bad(int64_t n, const double *x, int64_t stride, int64_t rows, int64_t *at) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < rows; ++i)
      if (!isfinite(x[i + j * stride])) {
        *at = i + j * rows;
        return 1;
      }
  return 0;
}

int nhgd_section_check_finite(nhgd_section *s, const char *name, int64_t n, const double *x) {
  int64_t at = 0;
  int rc = NHGD_OK;
  if (n > 0 && first_bad(n, x, 1, 1, &at))
    rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__, "dataset %s: entry %lld is %g", name,
                        (long long)at, x[at]);
  return agreed(s, rc);
}

int nhgd_section_check_finite_matrix(nhgd_section *s, const char *name, const nhgd_bcmat *A) {
  int64_t at = 0;
  int rc = NHGD_OK;
  if (A->mloc > 0 && A->nloc > 0 && first_bad(A->nloc, A->a, A->lld, A->mloc, &at)) {
    const int64_t il = at % A->mloc, jl = at / A->mloc;
    rc = nhgd_error_set(NHGD_ERR_DATA, __FILE__, __LINE__, "dataset %s: entry (%lld, %lld) is %g",
                        name, (long long)A->grow[il], (long long)A->gcol[jl],
                        A->a[il + jl * (int64_t)A->lld]);
  }
  return agreed(s, rc);
}

int nhgd_section_get_length(nhgd_section *s, const char *name, int64_t *n) {
  int rc = NHGD_OK;
  *n = -1;
  hid_t ds = -1, fs = -1;
  if (H5Lexists(s->loc, name, H5P_DEFAULT) <= 0)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s is missing", name);
  NHGD_H5_TRY(rc, ds = H5Dopen2(s->loc, name, H5P_DEFAULT), done, "cannot open dataset %s", name);
  NHGD_H5_TRY(rc, fs = H5Dget_space(ds), done, "dataspace of %s", name);
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(fs) != 1)
    NHGD_RAISE(rc, done, NHGD_ERR_DATA, "dataset %s is not 1-D", name);
  H5Sget_simple_extent_dims(fs, dims, NULL);
  *n = (int64_t)dims[0];
done:
  if (fs >= 0) H5Sclose(fs);
  if (ds >= 0) H5Dclose(ds);
  return agreed(s, rc);
}
