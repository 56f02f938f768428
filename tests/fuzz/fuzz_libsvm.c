/* libFuzzer harness: the LIBSVM importer on arbitrary bytes (classification, then
 * regression). Any input must give a status, never a crash, an overflow or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nhgd/data.h"
#include "nhgd/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The importers refuse dense splits above this, below libFuzzer's 2 GiB allocation limit. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("NHGD_MAX_DENSE_MB", "512", 1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  nhgd_import_libsvm_options o;
  nhgd_import_libsvm_options_default(&o);
  snprintf(o.input, sizeof o.input, "/tmp/nhgd_fuzz_libsvm_%ld.txt", (long)getpid());
  snprintf(o.output, sizeof o.output, "/tmp/nhgd_fuzz_libsvm_%ld.h5", (long)getpid());
  FILE *f = fopen(o.input, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  for (int regression = 0; regression < 2; ++regression) {
    o.regression = regression;
    (void)nhgd_data_import_libsvm(&o);
    nhgd_error_clear();
  }
  remove(o.input);
  remove(o.output);
  return 0;
}
