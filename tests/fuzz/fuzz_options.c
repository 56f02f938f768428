/* libFuzzer harness: the options-file parser (--config) of the run options, on arbitrary
 * bytes. Any input must give a status, never a crash, an overflow or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "nhgd/errors.h"
#include "nhgd/options.h"
#include "nhgd/solver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/nhgd_fuzz_options_%ld.cfg", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  nhgd_options *o = NULL;
  if (nhgd_options_create_run(&o) == NHGD_OK) {
    char *argv[] = {"--config", path, NULL};
    int help = 0;
    if (nhgd_options_parse(o, 2, argv, "NHGD_FUZZ_UNUSED_", &help) == NHGD_OK)
      (void)nhgd_options_validate(o);
  }
  nhgd_options_destroy(&o);
  nhgd_error_clear();
  remove(path);
  return 0;
}
