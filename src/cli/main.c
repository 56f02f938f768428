/* The nhgd program: run, hypergrad and data subcommands on top of libnhgd. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "nhgd/log.h"
#include "nhgd/nhgd.h"

/* The program's own options: where the input is and where the results go. */
typedef struct cli_opts {
  char data[NHGD_PATH_MAX];
  char output[NHGD_PATH_MAX];
  char metrics[NHGD_PATH_MAX];
} cli_opts;

#define F(field) offsetof(cli_opts, field), sizeof(((cli_opts *)0)->field)
static const nhgd_option_spec cli_specs[] = {
    {"data", NHGD_OPT_STR, F(data), "fashion_mnist.h5", 1, 0, NULL, "input HDF5 file", 0},
    {"output", NHGD_OPT_STR, F(output), "nhgd_out.h5", 1, 0, NULL, "output HDF5 file", 0},
    {"metrics", NHGD_OPT_STR, F(metrics), "", 1, 0, NULL,
     "JSON-lines metrics file, one line per outer step (\"\": none)", 0},
    {NULL, NHGD_OPT_INT, 0, 0, NULL, 0, 0, NULL, NULL, 0}};
#undef F

static int cli_check(const void *block, const nhgd_options *all) {
  const cli_opts *c = block;
  if (!c->data[0]) NHGD_FAIL(NHGD_ERR_ARG, "option --data: an input file is required");
  if (!c->output[0]) NHGD_FAIL(NHGD_ERR_ARG, "option --output: an output file is required");
  return NHGD_OK;
}

static const nhgd_option_block cli_block = {"cli", cli_specs, sizeof(cli_opts), cli_check, NULL};

/* The options of run and hypergrad: the library's and the program's own. */
static int run_options(nhgd_options **o) {
  NHGD_CHECK(nhgd_options_create_run(o));
  int rc = nhgd_options_add_block(*o, &cli_block);
  if (rc) nhgd_options_destroy(o);
  return rc;
}

/* SIGUSR1, SIGTERM, SIGINT and SIGHUP ask the solver for a checkpoint and a stop at its next
 * inner step. A signal only sets a flag, so one that arrives during a checkpoint write changes
 * nothing until the write is done. The handlers are installed first thing, before MPI_Init
 * and the options: a signal in the first moments is remembered, not fatal. Once the command
 * and its options are known, a run without --checkpoint-dir (and any other command) gets the
 * default actions back, and a signal that came meanwhile then ends it as it would have. */
static const int stop_signals[] = {SIGUSR1, SIGTERM, SIGINT, SIGHUP};
#define N_STOP_SIGNALS ((int)(sizeof stop_signals / sizeof stop_signals[0]))
static volatile sig_atomic_t stop_signal;      /* the first one received (0: none) */
static volatile sig_atomic_t stop_from_parent; /* it came from the launcher (mpirun, orted) */
static pid_t launcher_pid; /* the parent when it is Open MPI's launcher or daemon, else 0 */

/* The parent process when it is Open MPI's launcher or daemon (it signals the ranks itself
 * when it ends a job), else 0. */
static pid_t find_launcher(void) {
  static const char *const names[] = {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted"};
  const pid_t parent = getppid();
  char path[64], comm[64] = "";
  snprintf(path, sizeof path, "/proc/%d/comm", (int)parent);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
  fclose(f);
  comm[strcspn(comm, "\n")] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (!strcmp(comm, names[i])) return parent;
  return 0;
}

static const char *signal_name(int sig) {
  return sig == SIGUSR1   ? "SIGUSR1"
         : sig == SIGTERM ? "SIGTERM"
         : sig == SIGINT  ? "SIGINT"
         : sig == SIGHUP  ? "SIGHUP"
                          : "a signal";
}

static void on_stop_signal(int sig, siginfo_t *info, void *context) {
  (void)context;
  const int saved_errno = errno; /* the interrupted code may be about to read errno */
  if (!stop_signal) {
    stop_signal = sig;
    stop_from_parent = launcher_pid > 0 && info && info->si_pid == launcher_pid;
    /* A launcher that ends the job stops reading what the ranks print: a write to a full
     * pipe would block them before their checkpoint, until the SIGKILL. Output that cannot
     * go now is dropped instead. */
    if (stop_from_parent && sig != SIGUSR1) {
      fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
      fcntl(STDERR_FILENO, F_SETFL, fcntl(STDERR_FILENO, F_GETFL) | O_NONBLOCK);
    }
  }
  nhgd_request_stop();
  errno = saved_errno;
}

static void install_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  for (int i = 0; i < N_STOP_SIGNALS; ++i)
    sigaction(stop_signals[i], &sa, NULL);
}

/* The default actions back; a stop signal received so far is delivered again (and ends the
 * process, as it would have without the early handlers). */
static void restore_stop_signals(void) {
  for (int i = 0; i < N_STOP_SIGNALS; ++i)
    signal(stop_signals[i], SIG_DFL);
  if (stop_signal) {
    fprintf(stderr,
            "nhgd: %s during start-up, and nothing to checkpoint (no --checkpoint-dir): "
            "ending\n",
            signal_name(stop_signal));
    fflush(stderr);
    raise(stop_signal);
  }
}

/* After a stop on a signal: name it, and say what the launcher will report. Open MPI's mpirun
 * answers SIGTERM, SIGINT and SIGHUP by sending SIGTERM to every rank (the one the ranks
 * see), then SIGKILL a second later, and exits 1 whatever the ranks return; only SIGUSR1 (and
 * SIGUSR2) does it pass on. */
static void log_stop_signal(void) {
  if (!stop_signal) return;
  nhgd_log(NHGD_LOG_INFO, "stopped on %s%s", signal_name(stop_signal),
           stop_from_parent ? " from the launcher (mpirun)" : "");
  if (stop_from_parent && stop_signal != SIGUSR1)
    nhgd_log(NHGD_LOG_WARN,
             "the launcher sent %s: mpirun does so when it is itself sent SIGTERM, SIGINT "
             "(Ctrl-C) or SIGHUP, and then exits 1 whatever the ranks return; the checkpoint is "
             "written and --restart auto continues from it. To stop with exit 75, send SIGUSR1 "
             "to mpirun, or start it through jobs/nhgd-launch",
             signal_name(stop_signal));
}

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
  nhgd_options *o = NULL;
  if (run_options(&o) == NHGD_OK) nhgd_options_help(o, out);
  nhgd_options_destroy(&o);
}

static void log_option(const char *name, const char *value, unsigned flags, void *arg) {
  nhgd_log(NHGD_LOG_INFO, "config: %s = %s", name, value);
}

/* The options file of the command line (--config), else of the environment (NHGD_CONFIG). */
static const char *config_file(int argc, char **argv) {
  for (int i = 0; i < argc; ++i) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) return argv[i + 1];
    if (!strncmp(argv[i], "--config=", 9)) return argv[i] + 9;
  }
  return getenv("NHGD_CONFIG");
}

/* Collective: no path the run writes is one it reads or another it writes (rank 0 looks). */
static int check_paths(const nhgd_options *o, const cli_opts *co, int argc, char **argv) {
  const char *ckpt_dir = "", *v_from = "", *restart = "auto";
  nhgd_options_get_string(o, "checkpoint-dir", &ckpt_dir);
  nhgd_options_get_string(o, "v-from", &v_from);
  nhgd_options_get_string(o, "restart", &restart);
  const int restart_file = strcmp(restart, "auto") && strcmp(restart, "never");
  const nhgd_path paths[] = {{"--data", co->data, NHGD_PATH_READ},
                             {"--config", config_file(argc, argv), NHGD_PATH_READ},
                             {"--v-from", v_from, NHGD_PATH_READ},
                             {"--restart", restart_file ? restart : NULL, NHGD_PATH_READ},
                             {"--output", co->output, NHGD_PATH_WRITE},
                             {"--metrics", co->metrics, NHGD_PATH_APPEND},
                             {"--checkpoint-dir", ckpt_dir, NHGD_PATH_FOLDER}};
  int rc = NHGD_OK;
  if (world_rank() == 0) rc = nhgd_paths_check(paths, (int)(sizeof paths / sizeof paths[0]));
  return nhgd_error_agree(MPI_COMM_WORLD, rc);
}

static int solve(const char *cmd, int argc, char **argv) {
  nhgd_options *o = NULL;
  int help = 0;
  /* Warnings of the parser (an option set twice in a file) are printed once, on rank 0. */
  nhgd_log_init(MPI_COMM_WORLD, NHGD_LOG_INFO);
  int rc = run_options(&o);
  if (!rc) rc = nhgd_options_parse(o, argc, argv, "NHGD_", &help);
  if (!rc) rc = nhgd_options_validate(o);
  /* The same verdict on every rank (an allocation may fail on one only). */
  rc = nhgd_error_agree(MPI_COMM_WORLD, rc);
  if (rc) {
    nhgd_cli_report_error(rc);
    nhgd_options_destroy(&o);
    return rc == NHGD_ERR_MEM ? NHGD_EXIT_ERROR : NHGD_EXIT_USAGE;
  }
  if (help) {
    if (world_rank() == 0) usage(stdout);
    nhgd_options_destroy(&o);
    return NHGD_EXIT_OK;
  }
  const cli_opts *co = nhgd_options_block(o, "cli");
  const char *ckpt_dir = "";
  int64_t level = NHGD_LOG_INFO, grid_rows = 0;
  nhgd_options_get_string(o, "checkpoint-dir", &ckpt_dir);
  nhgd_options_get_int(o, "log-level", &level);
  nhgd_options_get_int(o, "grid-rows", &grid_rows);
  int P;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  /* The process grid is a property of the launch: a value that cannot fit it is a usage
   * error like any other out-of-range value. */
  if (grid_rows > 0 && (grid_rows > P || P % grid_rows != 0)) {
    nhgd_error_set(NHGD_ERR_ARG, __FILE__, __LINE__,
                   "option --grid-rows: %lld does not divide the number of ranks (%d)",
                   (long long)grid_rows, P);
    nhgd_cli_report_error(NHGD_ERR_ARG);
    nhgd_options_destroy(&o);
    return NHGD_EXIT_USAGE;
  }
  /* With checkpoints, a stop request that arrives while the data is still loading must not
   * kill the ranks: it is honoured at the first inner step. Without, a signal ends the run. */
  if (!ckpt_dir[0]) restore_stop_signals();
  nhgd_log_init(MPI_COMM_WORLD, (int)level);
  nhgd_log(NHGD_LOG_INFO, "nhgd %s (%s) %s on %d ranks", NHGD_VERSION_STRING, NHGD_GIT_REVISION,
           cmd, P);
  nhgd_options_foreach(o, log_option, NULL);
  /* No output may overwrite an input or another output. */
  rc = check_paths(o, co, argc, argv);
  if (rc) {
    nhgd_cli_report_error(rc);
    nhgd_options_destroy(&o);
    return NHGD_EXIT_USAGE;
  }
  /* A bad --output and a bad --checkpoint-dir (a file, a folder that cannot be written,
   * another run's) are found now, not after the data is read or at the first checkpoint. The
   * folder stays this process's until the end. */
  rc = nhgd_output_check(MPI_COMM_WORLD, co->output);
  if (!rc && ckpt_dir[0]) rc = nhgd_checkpoint_folder_lock(MPI_COMM_WORLD, ckpt_dir);
  if (rc) {
    nhgd_cli_report_error(rc);
    nhgd_options_destroy(&o);
    return NHGD_EXIT_ERROR;
  }

  nhgd_data *data = NULL;
  nhgd_problem *pb = NULL;
  nhgd_solver *s = NULL;
  nhgd_metrics *metrics = NULL;
  rc = nhgd_data_load(MPI_COMM_WORLD, co->data, &data);
  if (!rc) {
    nhgd_log(NHGD_LOG_INFO, "data %s: %lld train, %lld val, %lld test rows, %d features, %s",
             co->data, (long long)data->train.n_global, (long long)data->val.n_global,
             (long long)(data->has_test ? data->test.n_global : 0), data->m,
             data->task == NHGD_TASK_CLASSIFICATION ? "classification" : "regression");
    rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_problem_create_from_options(o, data, &pb));
  }
  /* Options that ask more of the data than it holds are usage errors, found before any work. */
  int usage = 0;
  if (!rc) {
    rc = nhgd_error_agree(MPI_COMM_WORLD, nhgd_solver_check_data(o, pb));
    usage = rc != NHGD_OK;
  }
  if (!rc) rc = nhgd_solver_create(MPI_COMM_WORLD, o, data, pb, &s);
  if (!rc && co->metrics[0]) rc = nhgd_metrics_open(s, co->metrics, &metrics);
  if (!rc && metrics) {
    nhgd_solver_set_progress(s, nhgd_metrics_progress, metrics);
    nhgd_solver_set_rollback(s, nhgd_metrics_rollback, metrics);
  }
  if (!rc) rc = !strcmp(cmd, "run") ? nhgd_solver_run(s) : nhgd_solver_hypergrad(s);
  /* Stopped on request after a checkpoint: still write what has been done so far. */
  const int stopped = rc == NHGD_STOPPED;
  if (stopped) {
    nhgd_error_clear();
    rc = NHGD_OK;
  }
  if (!rc) rc = nhgd_solver_write(s, co->output);
  if (!rc && stopped) {
    int64_t K = 0;
    nhgd_options_get_int(o, "outer-steps", &K);
    nhgd_log(NHGD_LOG_INFO,
             "output %s now holds the state after %lld of %lld outer steps (it replaces what "
             "was there; the run writes it again when it ends)",
             co->output, (long long)nhgd_solver_outer_steps_done(s), (long long)K);
  }
  if (!rc) rc = nhgd_solver_report(s);
  if (!rc) rc = nhgd_metrics_timing(metrics, s);
  /* A metrics line that could not be written ends the run with an error (after the stop it
   * requested, and its checkpoint). */
  if (metrics) {
    const int mrc = nhgd_metrics_close(&metrics, ckpt_dir);
    if (!rc) rc = mrc;
  }
  if (!rc && stopped) {
    log_stop_signal();
    nhgd_log(NHGD_LOG_INFO, "stopped after a checkpoint; continue with --restart auto (exit %d)",
             NHGD_EXIT_CHECKPOINTED);
  }
  if (!rc && !stopped) {
    double acc = nhgd_solver_test_accuracy(s);
    if (acc == acc) nhgd_log(NHGD_LOG_INFO, "final test accuracy %.4f", acc);
    nhgd_log(NHGD_LOG_INFO, "final validation loss %.6g; output written to %s",
             nhgd_solver_val_loss(s), co->output);
  }
  if (rc) nhgd_cli_report_error(rc);
  nhgd_solver_destroy(&s);
  nhgd_problem_destroy(&pb);
  nhgd_data_destroy(&data);
  if (ckpt_dir[0]) nhgd_checkpoint_folder_unlock(MPI_COMM_WORLD, ckpt_dir);
  nhgd_options_destroy(&o);
  if (rc) return usage ? NHGD_EXIT_USAGE : NHGD_EXIT_ERROR;
  return stopped ? NHGD_EXIT_CHECKPOINTED : NHGD_EXIT_OK;
}

int main(int argc, char **argv) {
  launcher_pid = find_launcher();
  install_stop_signals();
  /* Only run and hypergrad stop on request; every other command ends on a signal. */
  if (argc < 2 || (strcmp(argv[1], "run") && strcmp(argv[1], "hypergrad"))) restore_stop_signals();
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
