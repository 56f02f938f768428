/* The C side of the Python package: thin wrappers that take the communicator by address, so
 * that the cffi declarations never need the MPI implementation's handle type (an int in
 * MPICH, a pointer in Open MPI), and the trampolines from the library's callbacks into Python.
 * Compiled into the extension module only; it uses the installed public headers alone. */
#ifndef NHGD_PY_GLUE_H
#define NHGD_PY_GLUE_H

#include <mpi.h>
#include <signal.h>
#include <string.h>

#include "nhgd/nhgd.h"

static int pynhgd_error_agree(const MPI_Comm *comm, int status) {
  return nhgd_error_agree(*comm, status);
}

static void pynhgd_log_init(const MPI_Comm *comm, int level) {
  nhgd_log_init(*comm, level);
}

static int pynhgd_data_load(const MPI_Comm *comm, const char *path, nhgd_data **out) {
  return nhgd_data_load(*comm, path, out);
}

static int pynhgd_solver_create(const MPI_Comm *comm, const nhgd_options *o, const nhgd_data *data,
                                nhgd_problem *pb, nhgd_solver **out) {
  return nhgd_solver_create(*comm, o, data, pb, out);
}

static int pynhgd_output_check(const MPI_Comm *comm, const char *path) {
  return nhgd_output_check(*comm, path);
}

static int pynhgd_checkpoint_folder_lock(const MPI_Comm *comm, const char *dir) {
  return nhgd_checkpoint_folder_lock(*comm, dir);
}

static void pynhgd_checkpoint_folder_unlock(const MPI_Comm *comm, const char *dir) {
  nhgd_checkpoint_folder_unlock(*comm, dir);
}

/* Whether the data was loaded on a communicator with the same ranks in the same order as
 * comm (what nhgd_solver_create asks of its caller). Not collective. */
static int pynhgd_same_ranks(const MPI_Comm *comm, const nhgd_data *data) {
  int result = MPI_UNEQUAL;
  if (MPI_Comm_compare(*comm, data->comm, &result) != MPI_SUCCESS) return 0;
  return result == MPI_IDENT || result == MPI_CONGRUENT;
}

/* Give data built by the caller its communicator (a duplicate the caller owns). */
static void pynhgd_data_set_comm(nhgd_data *data, const MPI_Comm *comm) {
  data->comm = *comm;
}

/* Set an error whose message is given whole (the library's setter takes a format). */
static int pynhgd_error_set(int code, const char *message) {
  return nhgd_error_set(code, "python", 0, "%s", message);
}

/* A stop signal asks the solver for a checkpoint and a stop at its next inner step, at once:
 * a handler in C runs while the engine computes, where a Python handler would wait for the
 * next call into Python. It only sets the library's flag (async-signal-safe). */
static void pynhgd_on_stop_signal(int sig) {
  (void)sig;
  nhgd_request_stop();
}

/* Install that handler for sig: 0, or -1 with errno set. */
static int pynhgd_stop_on_signal(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = pynhgd_on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  return sigaction(sig, &sa, NULL);
}

/* The library's version and the commit it was built from. */
static const char *pynhgd_version(void) {
  return NHGD_VERSION_STRING " (" NHGD_GIT_REVISION ")";
}

#endif
