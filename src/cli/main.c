/* The nhgd program: run, hypergrad and data subcommands on top of libnhgd. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/signals.h"
#include "nhgd/nhgd.h"

static int world_rank(void) {
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

void nhgd_cli_report_error(int rc) {
  if (world_rank() != 0) return;
  fprintf(stderr, "nhgd: error: %s\n", nhgd_error_message());
  if (nhgd_log_level() >= NHGD_LOG_DEBUG)
    fprintf(stderr, "nhgd: (%s; at %s)\n", nhgd_strerror(rc), nhgd_error_where());
  fflush(stderr);
}

static void usage(FILE *out) {
  fprintf(out,
          "nhgd %s: natural hypergradient descent for stochastic bilevel problems (MPI)\n\n"
          "usage: mpirun -n P nhgd COMMAND [options]\n\n"
          "commands:\n"
          "  run        solve the bilevel problem (outer loop of hypergradient steps)\n"
          "  hypergrad  one inner loop at the given v; write the hypergradient and u\n"
          "  data       write input files: nhgd data {fashion-mnist|import-idx|import-libsvm|"
          "synth} --help\n"
          "  info FILE  what an input, output or checkpoint file holds\n"
          "  --version  print the version\n\n"
          "exit codes: 0 done, 1 error, 2 usage error, 75 checkpointed and stopped (resume\n"
          "with --restart auto)\n\n"
          "Options of run and hypergrad (file < environment NHGD_<NAME> < command line;\n"
          "--config FILE reads 'name = value' lines):\n",
          NHGD_VERSION_STRING);
  nhgd_options_help(out);
}

static void log_option(const char *name, const char *value, void *arg) {
  nhgd_log(NHGD_LOG_INFO, "config: %s = %s", name, value);
}

static int solve(const char *cmd, int argc, char **argv) {
  nhgd_options o;
  nhgd_options_default(&o);
  int help = 0;
  int rc = nhgd_options_parse(&o, argc, argv, &help);
  if (!rc) rc = nhgd_options_validate(&o);
  if (rc) {
    nhgd_cli_report_error(rc);
    return NHGD_EXIT_USAGE;
  }
  if (help) {
    if (world_rank() == 0) usage(stdout);
    return NHGD_EXIT_OK;
  }
  /* With checkpoints, a stop request that arrives while the data is still loading must not
   * kill the ranks: it is honoured at the first inner step. */
  if (o.checkpoint_dir[0]) nhgd_signals_install();
  nhgd_log_init(MPI_COMM_WORLD, o.log_level);
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  nhgd_log(NHGD_LOG_INFO, "nhgd %s (%s) %s on %d ranks", NHGD_VERSION_STRING, NHGD_GIT_REVISION,
           cmd, P);
  nhgd_options_foreach(&o, log_option, NULL);

  nhgd_data *data = NULL;
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  rc = nhgd_data_load(MPI_COMM_WORLD, o.data, &data);
  if (!rc) {
    nhgd_log(NHGD_LOG_INFO, "data %s: %lld train, %lld val, %lld test rows, %d features, %s",
             o.data, (long long)data->train.n_global, (long long)data->val.n_global,
             (long long)(data->has_test ? data->test.n_global : 0), data->m,
             data->task == NHGD_TASK_CLASSIFICATION ? "classification" : "regression");
    nhgd_problem_params pp;
    nhgd_problem_params_default(&pp);
    pp.noise_sigma = o.noise_sigma;
    pp.clean_reg = o.clean_reg;
    pp.v_init = o.v_init;
    rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create(o.problem, data, &pp, &pb));
  }
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, &o, data, pb, &s);
  if (!rc) rc = !strcmp(cmd, "run") ? nhgd_solver_run(s) : nhgd_solver_hypergrad(s);
  /* Stopped on request after a checkpoint: still write what has been done so far. */
  const int stopped = rc == NHGD_STOPPED;
  if (stopped) {
    nhgd_error_clear();
    rc = NHGD_OK;
  }
  if (!rc) rc = nhgd_solver_write(s, o.output);
  if (!rc) rc = nhgd_solver_report(s);
  if (!rc && stopped) {
    nhgd_log(NHGD_LOG_INFO, "stopped after a checkpoint; continue with --restart auto (exit %d)",
             NHGD_EXIT_CHECKPOINTED);
    nhgd_solver_destroy(&s);
    nhgd_problem_destroy(&pb);
    nhgd_data_destroy(&data);
    return NHGD_EXIT_CHECKPOINTED;
  }
  if (!rc) {
    double acc = nhgd_solver_test_accuracy(s);
    if (acc == acc) nhgd_log(NHGD_LOG_INFO, "final test accuracy %.4f", acc);
    nhgd_log(NHGD_LOG_INFO, "final validation loss %.6g; output written to %s",
             nhgd_solver_val_loss(s), o.output);
  }
  if (rc) nhgd_cli_report_error(rc);
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  nhgd_data_destroy(&data);
  return rc ? NHGD_EXIT_ERROR : NHGD_EXIT_OK;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int code;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    if (world_rank() == 0) usage(stdout);
    code = argc < 2 ? NHGD_EXIT_USAGE : NHGD_EXIT_OK;
  } else if (!strcmp(argv[1], "--version")) {
    if (world_rank() == 0) printf("nhgd %s (%s)\n", NHGD_VERSION_STRING, NHGD_GIT_REVISION);
    code = NHGD_EXIT_OK;
  } else if (!strcmp(argv[1], "run") || !strcmp(argv[1], "hypergrad")) {
    code = solve(argv[1], argc - 2, argv + 2);
  } else if (!strcmp(argv[1], "info")) {
    code = nhgd_cli_info(argc - 2, argv + 2);
  } else if (!strcmp(argv[1], "data")) {
    code = nhgd_cli_data(argc - 2, argv + 2);
  } else {
    if (world_rank() == 0)
      fprintf(stderr, "nhgd: error: unknown command '%s' (try nhgd --help)\n", argv[1]);
    code = NHGD_EXIT_USAGE;
  }
  MPI_Finalize();
  return code;
}
