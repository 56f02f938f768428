/* `nhgd info FILE`: what an input, output or checkpoint file holds. */
#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "nhgd/nhgd.h"

static void print_attr_value(hid_t at) {
  hid_t t = H5Aget_type(at), sp = H5Aget_space(at);
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && n == 1) {
    size_t len = H5Tget_size(t);
    char buf[4200];
    if (len < sizeof buf) {
      hid_t mt = H5Tcopy(H5T_C_S1);
      H5Tset_size(mt, len + 1);
      if (H5Aread(at, mt, buf) >= 0) printf("%s", buf);
      H5Tclose(mt);
    }
  } else if ((H5Tget_class(t) == H5T_INTEGER || H5Tget_class(t) == H5T_FLOAT) && n >= 1 &&
             n <= 16) {
    double v[16];
    if (H5Aread(at, H5T_NATIVE_DOUBLE, v) >= 0)
      for (hssize_t i = 0; i < n; ++i)
        printf("%s%.10g", i ? ", " : "", v[i]);
  } else {
    printf("(%lld values)", (long long)n);
  }
  H5Sclose(sp);
  H5Tclose(t);
}

static herr_t print_attr(hid_t obj, const char *name, const H5A_info_t *info, void *indent) {
  hid_t at = H5Aopen(obj, name, H5P_DEFAULT);
  printf("%s%s = ", (const char *)indent, name);
  print_attr_value(at);
  printf("\n");
  H5Aclose(at);
  return 0;
}

static herr_t print_object(hid_t root, const char *name, const H5O_info_t *info, void *data) {
  if (!strcmp(name, ".")) return 0;
  if (info->type == H5O_TYPE_GROUP) {
    printf("  /%s/\n", name);
    return 0;
  }
  if (info->type != H5O_TYPE_DATASET) return 0;
  hid_t ds = H5Dopen2(root, name, H5P_DEFAULT), sp = H5Dget_space(ds), t = H5Dget_type(ds);
  hsize_t dims[8];
  int nd = H5Sget_simple_extent_dims(sp, dims, NULL);
  printf("  /%s  %s", name,
         H5Tget_class(t) == H5T_FLOAT     ? "float"
         : H5Tget_class(t) == H5T_INTEGER ? "int"
                                          : "other");
  printf("%zu [", 8 * H5Tget_size(t));
  for (int i = 0; i < nd; ++i)
    printf("%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
  printf("]\n");
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(ds);
  return 0;
}

static int info(const char *path) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* Opening a named pipe for reading waits for a writer forever. */
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT)
      fprintf(stderr, "nhgd: error: %s: no such file (it does not exist)\n", path);
    else
      fprintf(stderr, "nhgd: error: %s: cannot reach it (%s)\n", path, strerror(errno));
    return NHGD_EXIT_ERROR;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "nhgd: error: %s: is a folder, not a file\n", path);
    return NHGD_EXIT_ERROR;
  }
  if (!S_ISREG(st.st_mode)) {
    fprintf(stderr, "nhgd: error: %s: not a regular file (a named pipe, socket or device)\n", path);
    return NHGD_EXIT_ERROR;
  }
  /* What the HDF5 library would only report as a failed open: no permission to read. */
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    fprintf(stderr, "nhgd: error: %s: cannot read it (%s)\n", path, strerror(errno));
    return NHGD_EXIT_ERROR;
  }
  fclose(probe);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "nhgd: error: %s: not a readable HDF5 file\n", path);
    return NHGD_EXIT_ERROR;
  }
  printf("%s\n", path);
  char crcpath[4200];
  snprintf(crcpath, sizeof crcpath, "%s.crc32", path);
  FILE *cf = fopen(crcpath, "r");
  if (cf) {
    fclose(cf);
    int rc = nhgd_checkpoint_verify(path);
    if (rc)
      printf("checksum: MISMATCH: the file is damaged (%s)\n", nhgd_error_message());
    else
      printf("checksum: ok (CRC-32 matches)\n");
    nhgd_error_clear();
  }
  printf("attributes:\n");
  H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, NULL, print_attr, "  ");
  printf("datasets:\n");
  H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, print_object, NULL);
  if (H5Lexists(f, "config", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(f, "config", H5P_DEFAULT);
    printf("configuration:\n");
    H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_attr, "  --");
    H5Gclose(g);
  }
  H5Fclose(f);
  return NHGD_EXIT_OK;
}

int nhgd_cli_info(int argc, char **argv) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc != 1 || !strcmp(argv[0], "--help")) {
    if (rank == 0)
      printf("usage: nhgd info FILE: what an input, output or checkpoint file holds\n");
    return argc == 1 ? NHGD_EXIT_OK : NHGD_EXIT_USAGE;
  }
  int code = rank == 0 ? info(argv[0]) : 0;
  MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return code;
}
