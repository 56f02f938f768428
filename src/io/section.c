/* Checkpoint sections over HDF5: attributes for scalars, checksummed datasets for vectors and
 * matrices. */
#include "io/section_impl.h"

#include "io/h5util.h"

int nhgd_section_put_int(nhgd_section *s, const char *name, int64_t value) {
  return nhgd_h5_attr_int(s->loc, name, value);
}
int nhgd_section_put_real(nhgd_section *s, const char *name, double value) {
  return nhgd_h5_attr_double(s->loc, name, value);
}
int nhgd_section_put_string(nhgd_section *s, const char *name, const char *value) {
  return nhgd_h5_attr_string(s->loc, name, value);
}
int nhgd_section_put_vector(nhgd_section *s, const char *name, int64_t n, const double *x) {
  return nhgd_h5_write_vector_ex(s->loc, name, n, 0, s->rank == 0 ? n : 0, x, 1);
}
int nhgd_section_put_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, const double *x) {
  return nhgd_h5_write_vector_ex(s->loc, name, n, offset, count, x, 1);
}
int nhgd_section_put_matrix(nhgd_section *s, const char *name, const nhgd_bcmat *A) {
  return nhgd_bcmat_h5_write(A, s->loc, name);
}

int nhgd_section_has(nhgd_section *s, const char *name) {
  return H5Aexists(s->loc, name) > 0 || H5Lexists(s->loc, name, H5P_DEFAULT) > 0;
}
int nhgd_section_get_int(nhgd_section *s, const char *name, int64_t *value) {
  return nhgd_h5_attr_read_int(s->loc, name, value);
}
int nhgd_section_get_real(nhgd_section *s, const char *name, double *value) {
  return nhgd_h5_attr_read_double(s->loc, name, value);
}
int nhgd_section_get_string(nhgd_section *s, const char *name, char *buf, size_t len) {
  return nhgd_h5_attr_read_string(s->loc, name, buf, len);
}
int nhgd_section_get_vector(nhgd_section *s, const char *name, int64_t n, double *x) {
  return nhgd_h5_read_vector_coll(s->loc, name, n, 0, n, x);
}
int nhgd_section_get_slice(nhgd_section *s, const char *name, int64_t n, int64_t offset,
                           int64_t count, double *x) {
  return nhgd_h5_read_vector_coll(s->loc, name, n, offset, count, x);
}
int nhgd_section_get_matrix(nhgd_section *s, const char *name, nhgd_bcmat *A) {
  return nhgd_bcmat_h5_read(A, s->loc, name);
}
