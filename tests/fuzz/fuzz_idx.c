/* libFuzzer harness: the IDX importer on arbitrary bytes. The first two bytes give where
 * the input is cut into the image file and the label file. Any input must give a status,
 * never a crash, an overflow or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

static int put(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(p, 1, n, f);
  return fclose(f) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t cut = ((size_t)data[0] << 8 | data[1]);
  data += 2;
  size -= 2;
  if (cut > size) cut = size;
  nhgd_import_idx_options o;
  nhgd_import_idx_options_default(&o);
  const long pid = (long)getpid();
  snprintf(o.images, sizeof o.images, "/tmp/nhgd_fuzz_idx_%ld.images", pid);
  snprintf(o.labels, sizeof o.labels, "/tmp/nhgd_fuzz_idx_%ld.labels", pid);
  snprintf(o.output, sizeof o.output, "/tmp/nhgd_fuzz_idx_%ld.h5", pid);
  if (put(o.images, data, cut) && put(o.labels, data + cut, size - cut))
    (void)nhgd_data_import_idx(&o);
  nhgd_error_clear();
  remove(o.images);
  remove(o.labels);
  remove(o.output);
  return 0;
}
