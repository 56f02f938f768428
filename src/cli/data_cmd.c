/* `nhgd data`: option tables of the input-file writers; rank 0 writes, all ranks agree. */
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nhgd/nhgd.h"

#define NORANGE 1, 0
/* The text of a numeric default macro, e.g. "20000" for NHGD_FMNIST_DEFAULT_N_TRAIN. */
#define DEFAULT_TEXT_(x) #x
#define DEFAULT_TEXT(x) DEFAULT_TEXT_(x)
#define FM(field) offsetof(nhgd_fmnist_options, field), sizeof(((nhgd_fmnist_options *)0)->field)
static const nhgd_option_spec fmnist_specs[] = {
    {"dir", NHGD_OPT_STR, FM(dir), NHGD_FMNIST_DEFAULT_DIR, NORANGE, NULL,
     "folder with the four Fashion-MNIST IDX files (.gz or plain)", 0},
    {"output", NHGD_OPT_STR, FM(output), NHGD_FMNIST_DEFAULT_OUTPUT, NORANGE, NULL,
     "HDF5 file to write", 0},
    {"n-train", NHGD_OPT_I64, FM(n_train), DEFAULT_TEXT(NHGD_FMNIST_DEFAULT_N_TRAIN), 1, 60000,
     NULL, "training rows", 0},
    {"n-val", NHGD_OPT_I64, FM(n_val), DEFAULT_TEXT(NHGD_FMNIST_DEFAULT_N_VAL), 1, 60000, NULL,
     "validation rows", 0},
    {"corruption", NHGD_OPT_REAL, FM(corruption), DEFAULT_TEXT(NHGD_FMNIST_DEFAULT_CORRUPTION), 0,
     1, NULL, "probability that a training label is replaced by a uniform draw", 0},
    {"seed", NHGD_OPT_U64, FM(seed), DEFAULT_TEXT(NHGD_FMNIST_DEFAULT_SEED), NORANGE, NULL,
     "seed of the split and the corruption", 0},
    {"standardize", NHGD_OPT_BOOL, FM(standardize), DEFAULT_TEXT(NHGD_FMNIST_DEFAULT_STANDARDIZE),
     NORANGE, NULL, "standardise features with the train mean and deviation", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

#define FI(field)                                                                                  \
  offsetof(nhgd_import_idx_options, field), sizeof(((nhgd_import_idx_options *)0)->field)
static const nhgd_option_spec idx_specs[] = {
    {"images", NHGD_OPT_STR, FI(images), "", NORANGE, NULL, "IDX image file (required)", 0},
    {"labels", NHGD_OPT_STR, FI(labels), "", NORANGE, NULL, "IDX label file (required)", 0},
    {"test-images", NHGD_OPT_STR, FI(test_images), "", NORANGE, NULL, "IDX test images (optional)",
     0},
    {"test-labels", NHGD_OPT_STR, FI(test_labels), "", NORANGE, NULL, "IDX test labels (optional)",
     0},
    {"output", NHGD_OPT_STR, FI(output), NHGD_IMPORT_DEFAULT_OUTPUT, NORANGE, NULL,
     "HDF5 file to write", 0},
    {"val-fraction", NHGD_OPT_REAL, FI(val_fraction),
     DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_VAL_FRACTION), 0, 1, NULL,
     "fraction of the rows that go to /val", NHGD_OPT_MIN_OPEN | NHGD_OPT_MAX_OPEN},
    {"seed", NHGD_OPT_U64, FI(seed), DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_SEED), NORANGE, NULL,
     "seed of the split", 0},
    {"standardize", NHGD_OPT_BOOL, FI(standardize), DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_STANDARDIZE),
     NORANGE, NULL, "standardise features with the train mean and deviation (else pixel/255)", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

#define FL(field)                                                                                  \
  offsetof(nhgd_import_libsvm_options, field), sizeof(((nhgd_import_libsvm_options *)0)->field)
static const nhgd_option_spec libsvm_specs[] = {
    {"input", NHGD_OPT_STR, FL(input), "", NORANGE, NULL, "LIBSVM text file (required)", 0},
    {"test", NHGD_OPT_STR, FL(test), "", NORANGE, NULL, "LIBSVM test file (optional)", 0},
    {"output", NHGD_OPT_STR, FL(output), NHGD_IMPORT_DEFAULT_OUTPUT, NORANGE, NULL,
     "HDF5 file to write", 0},
    {"features", NHGD_OPT_I64, FL(features), "0", 0, 1e9, NULL, "feature count (0: largest index)",
     0},
    {"regression", NHGD_OPT_BOOL, FL(regression), "0", NORANGE, NULL,
     "real targets (else class labels mapped to 0..C-1)", 0},
    {"val-fraction", NHGD_OPT_REAL, FL(val_fraction),
     DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_VAL_FRACTION), 0, 1, NULL,
     "fraction of the training rows that go to /val", NHGD_OPT_MIN_OPEN | NHGD_OPT_MAX_OPEN},
    {"test-fraction", NHGD_OPT_REAL, FL(test_fraction),
     DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_TEST_FRACTION), 0, 1, NULL,
     "fraction that goes to /test when no --test file is given", NHGD_OPT_MAX_OPEN},
    {"seed", NHGD_OPT_U64, FL(seed), DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_SEED), NORANGE, NULL,
     "seed of the split", 0},
    {"standardize", NHGD_OPT_BOOL, FL(standardize), DEFAULT_TEXT(NHGD_IMPORT_DEFAULT_STANDARDIZE),
     NORANGE, NULL, "standardise features with the train mean and deviation", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

#define FS(field) offsetof(nhgd_synth_options, field), sizeof(((nhgd_synth_options *)0)->field)
static const nhgd_option_spec synth_specs[] = {
    {"kind", NHGD_OPT_CHOICE, FS(kind), NHGD_SYNTH_DEFAULT_KIND, NORANGE, "ridge|logistic",
     "generated model", 0},
    {"output", NHGD_OPT_STR, FS(output), NHGD_SYNTH_DEFAULT_OUTPUT, NORANGE, NULL,
     "HDF5 file to write", 0},
    {"n-train", NHGD_OPT_I64, FS(n_train), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_N_TRAIN), 1, 1e12, NULL,
     "training rows", 0},
    {"n-val", NHGD_OPT_I64, FS(n_val), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_N_VAL), 1, 1e12, NULL,
     "validation rows", 0},
    {"n-test", NHGD_OPT_I64, FS(n_test), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_N_TEST), 0, 1e12, NULL,
     "test rows (0: no /test)", 0},
    {"features", NHGD_OPT_INT, FS(features), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_FEATURES), 1, 1e8,
     NULL, "features m", 0},
    {"classes", NHGD_OPT_INT, FS(classes), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_CLASSES), 2, 1e6, NULL,
     "classes C (logistic)", 0},
    {"noise", NHGD_OPT_REAL, FS(noise), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_NOISE), 0, 1e300, NULL,
     "noise deviation sigma (ridge)", 0},
    {"seed", NHGD_OPT_U64, FS(seed), DEFAULT_TEXT(NHGD_SYNTH_DEFAULT_SEED), NORANGE, NULL,
     "seed of the generator", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};

typedef struct {
  const char *name;
  const nhgd_option_spec *specs;
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
  const nhgd_option_block block = {kinds[k].name, kinds[k].specs, kinds[k].size, NULL, NULL};
  nhgd_options *o = NULL;
  int help = 0;
  int rc = nhgd_options_create(&o);
  if (!rc) rc = nhgd_options_add_block(o, &block);
  if (!rc) rc = nhgd_options_parse(o, argc - 1, argv + 1, NULL, &help);
  if (rc) {
    nhgd_cli_report_error(rc);
    nhgd_options_destroy(&o);
    return NHGD_EXIT_USAGE;
  }
  if (help) {
    if (rank == 0) {
      printf("nhgd data %s: %s\noptions:\n", kinds[k].name, kinds[k].what);
      nhgd_options_help(o, stdout);
    }
    nhgd_options_destroy(&o);
    return NHGD_EXIT_OK;
  }
  /* The library's own options struct of this kind, filled from the block. */
  void *opts = (void *)nhgd_options_block(o, kinds[k].name);
  if (rank == 0) rc = run_kind(k, opts);
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  nhgd_options_destroy(&o);
  if (rc) {
    nhgd_cli_report_error(rc);
    return NHGD_EXIT_ERROR;
  }
  if (rank == 0) printf("nhgd data %s: written\n", kinds[k].name);
  return NHGD_EXIT_OK;
}
