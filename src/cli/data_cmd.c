/* `nhgd data`: option tables of the input-file writers; rank 0 writes, all ranks agree. */
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/optable.h"
#include "nhgd/nhgd.h"

#define NORANGE 1, 0
#define FM(field) offsetof(nhgd_fmnist_options, field), sizeof(((nhgd_fmnist_options *)0)->field)
static const nhgd_opt_spec fmnist_specs[] = {
    {"dir", OPT_STR, FM(dir), "/usr/share/datasets/fashion-mnist", NORANGE, NULL,
     "folder with the four Fashion-MNIST IDX files (.gz or plain)"},
    {"output", OPT_STR, FM(output), "fashion_mnist.h5", NORANGE, NULL, "HDF5 file to write"},
    {"n-train", OPT_I64, FM(n_train), "20000", 1, 60000, NULL, "training rows"},
    {"n-val", OPT_I64, FM(n_val), "5000", 1, 60000, NULL, "validation rows"},
    {"corruption", OPT_REAL, FM(corruption), "0.5", 0, 1, NULL,
     "probability that a training label is replaced by a uniform draw"},
    {"seed", OPT_U64, FM(seed), "0", NORANGE, NULL, "seed of the split and the corruption"},
    {"standardize", OPT_BOOL, FM(standardize), "1", NORANGE, NULL,
     "standardise features with the train mean and deviation"},
    {NULL, OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL}};

#define FI(field)                                                                                  \
  offsetof(nhgd_import_idx_options, field), sizeof(((nhgd_import_idx_options *)0)->field)
static const nhgd_opt_spec idx_specs[] = {
    {"images", OPT_STR, FI(images), "", NORANGE, NULL, "IDX image file (required)"},
    {"labels", OPT_STR, FI(labels), "", NORANGE, NULL, "IDX label file (required)"},
    {"test-images", OPT_STR, FI(test_images), "", NORANGE, NULL, "IDX test images (optional)"},
    {"test-labels", OPT_STR, FI(test_labels), "", NORANGE, NULL, "IDX test labels (optional)"},
    {"output", OPT_STR, FI(output), "imported.h5", NORANGE, NULL, "HDF5 file to write"},
    {"val-fraction", OPT_REAL, FI(val_fraction), "0.2", 1e-9, 0.999999, NULL,
     "fraction of the rows that go to /val"},
    {"seed", OPT_U64, FI(seed), "0", NORANGE, NULL, "seed of the split"},
    {"standardize", OPT_BOOL, FI(standardize), "1", NORANGE, NULL,
     "standardise features with the train mean and deviation (else pixel/255)"},
    {NULL, OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL}};

#define FL(field)                                                                                  \
  offsetof(nhgd_import_libsvm_options, field), sizeof(((nhgd_import_libsvm_options *)0)->field)
static const nhgd_opt_spec libsvm_specs[] = {
    {"input", OPT_STR, FL(input), "", NORANGE, NULL, "LIBSVM text file (required)"},
    {"test", OPT_STR, FL(test), "", NORANGE, NULL, "LIBSVM test file (optional)"},
    {"output", OPT_STR, FL(output), "imported.h5", NORANGE, NULL, "HDF5 file to write"},
    {"features", OPT_I64, FL(features), "0", 0, 1e9, NULL, "feature count (0: largest index)"},
    {"regression", OPT_BOOL, FL(regression), "0", NORANGE, NULL,
     "real targets (else class labels mapped to 0..C-1)"},
    {"val-fraction", OPT_REAL, FL(val_fraction), "0.2", 1e-9, 0.999999, NULL,
     "fraction of the training rows that go to /val"},
    {"test-fraction", OPT_REAL, FL(test_fraction), "0.2", 0, 0.999999, NULL,
     "fraction that goes to /test when no --test file is given"},
    {"seed", OPT_U64, FL(seed), "0", NORANGE, NULL, "seed of the split"},
    {"standardize", OPT_BOOL, FL(standardize), "1", NORANGE, NULL,
     "standardise features with the train mean and deviation"},
    {NULL, OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL}};

#define FS(field) offsetof(nhgd_synth_options, field), sizeof(((nhgd_synth_options *)0)->field)
static const nhgd_opt_spec synth_specs[] = {
    {"kind", OPT_CHOICE, FS(kind), "ridge", NORANGE, "ridge|logistic", "generated model"},
    {"output", OPT_STR, FS(output), "synth.h5", NORANGE, NULL, "HDF5 file to write"},
    {"n-train", OPT_I64, FS(n_train), "1000", 1, 1e12, NULL, "training rows"},
    {"n-val", OPT_I64, FS(n_val), "500", 1, 1e12, NULL, "validation rows"},
    {"n-test", OPT_I64, FS(n_test), "500", 0, 1e12, NULL, "test rows (0: no /test)"},
    {"features", OPT_INT, FS(features), "20", 1, 1e8, NULL, "features m"},
    {"classes", OPT_INT, FS(classes), "3", 2, 1e6, NULL, "classes C (logistic)"},
    {"noise", OPT_REAL, FS(noise), "1", 0, 1e300, NULL, "noise deviation sigma (ridge)"},
    {"seed", OPT_U64, FS(seed), "0", NORANGE, NULL, "seed of the generator"},
    {NULL, OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL}};

typedef struct {
  const char *name;
  const nhgd_opt_spec *specs;
  size_t size;
  const char *what;
} data_kind;

static const data_kind kinds[] = {
    {"fashion-mnist", fmnist_specs, sizeof(nhgd_fmnist_options),
     "Fashion-MNIST with the hyper-cleaning protocol (train/val split, label corruption)"},
    {"import-idx", idx_specs, sizeof(nhgd_import_idx_options), "your own IDX image/label files"},
    {"import-libsvm", libsvm_specs, sizeof(nhgd_import_libsvm_options), "a LIBSVM text file"},
    {"synth", synth_specs, sizeof(nhgd_synth_options),
     "synthetic ridge or logistic data with the true parameters under /truth"}};

static int run_kind(int k, void *opts) {
  switch (k) {
  case 0:
    return nhgd_data_fashion_mnist(opts);
  case 1:
    return nhgd_data_import_idx(opts);
  case 2:
    return nhgd_data_import_libsvm(opts);
  default:
    return nhgd_data_synth(opts);
  }
}

int nhgd_cli_data(int argc, char **argv) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int k = -1;
  for (int i = 0; argc > 0 && i < (int)(sizeof kinds / sizeof kinds[0]); ++i)
    if (!strcmp(argv[0], kinds[i].name)) k = i;
  if (k < 0) {
    if (rank == 0) {
      fprintf(argc > 0 && strcmp(argv[0], "--help") ? stderr : stdout,
              "%susage: nhgd data KIND [options]; KIND is one of:\n",
              argc > 0 && strcmp(argv[0], "--help") ? "nhgd: error: unknown data kind\n" : "");
      for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
        printf("  %-14s %s\n", kinds[i].name, kinds[i].what);
    }
    return argc > 0 && !strcmp(argv[0], "--help") ? NHGD_EXIT_OK : NHGD_EXIT_USAGE;
  }
  /* Large enough for every options struct above. */
  union {
    nhgd_fmnist_options f;
    nhgd_import_idx_options i;
    nhgd_import_libsvm_options l;
    nhgd_synth_options s;
  } opts;
  memset(&opts, 0, sizeof opts);
  nhgd_optable_defaults(kinds[k].specs, &opts);
  int help = 0, rc = NHGD_OK;
  const char *cfg = nhgd_optable_config_path(argc - 1, argv + 1, NULL);
  if (cfg) rc = nhgd_optable_file(kinds[k].specs, &opts, cfg);
  if (!rc) rc = nhgd_optable_argv(kinds[k].specs, &opts, argc - 1, argv + 1, &help);
  if (rc) {
    nhgd_cli_report_error(rc);
    return NHGD_EXIT_USAGE;
  }
  if (help) {
    if (rank == 0) {
      printf("nhgd data %s: %s\noptions:\n", kinds[k].name, kinds[k].what);
      nhgd_optable_help(kinds[k].specs, stdout);
    }
    return NHGD_EXIT_OK;
  }
  if (rank == 0) rc = run_kind(k, &opts);
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  if (rc) {
    nhgd_cli_report_error(rc);
    return NHGD_EXIT_ERROR;
  }
  if (rank == 0) printf("nhgd data %s: written\n", kinds[k].name);
  return NHGD_EXIT_OK;
}
