/* libFuzzer harness: the checkpoint reader (what a restart does with a checkpoint file: the
 * options and data checks, every field of the solver's and the estimator's parts) on
 * arbitrary bytes, opened as an HDF5 file in memory through HDF5's core driver, on one
 * process. The solver is made once, with the options of checkpoint.cfg on the synthetic data
 * below; tests/fuzz/make_corpus.sh writes the seed checkpoints with the same two. Any input
 * must give a status, never a crash, an overflow or a leak. */
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nhgd/data.h"
#include "nhgd/errors.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"
#include "outer/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static nhgd_options *opts;
static nhgd_data *input;
static nhgd_problem *problem;
static nhgd_solver *solver;

static void fail(const char *what) {
  fprintf(stderr, "fuzz_checkpoint: %s: %s\n", what, nhgd_error_message());
  exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  MPI_Init(argc, argv);
  char dir[64], ckdir[96];
  snprintf(dir, sizeof dir, "/tmp/nhgd_fuzz_ckpt_%ld", (long)getpid());
  snprintf(ckdir, sizeof ckdir, "--checkpoint-dir=%s/ck", dir);
  /* The data of make_corpus.sh: nhgd data synth --kind ridge --features 6 --n-train 40
   * --n-val 20 --n-test 10 --seed 0 (the checkpoints record its digest). */
  nhgd_synth_options so;
  nhgd_synth_options_default(&so);
  so = (nhgd_synth_options){.kind = "ridge",
                            .n_train = 40,
                            .n_val = 20,
                            .n_test = 10,
                            .features = 6,
                            .classes = so.classes,
                            .noise = so.noise,
                            .seed = 0};
  snprintf(so.output, sizeof so.output, "%s.h5", dir);
  if (nhgd_data_synth(&so)) fail("data");
  if (nhgd_data_load(MPI_COMM_SELF, so.output, &input)) fail("load");
  remove(so.output);
  char *args[] = {"--config", NHGD_FUZZ_CHECKPOINT_CFG, ckdir, NULL};
  int help = 0;
  if (nhgd_options_create_run(&opts) || nhgd_options_parse(opts, 3, args, "NHGD_FUZZ_", &help))
    fail("options");
  if (nhgd_problem_create_from_options(opts, input, &problem)) fail("problem");
  if (nhgd_solver_create(MPI_COMM_SELF, opts, input, problem, &solver)) fail("solver");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  (void)nhgd_solver_load_image(solver, data, size);
  nhgd_error_clear();
  return 0;
}
