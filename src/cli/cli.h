/* Subcommands of the nhgd program. */
#ifndef NHGD_CLI_H
#define NHGD_CLI_H

/* Exit codes of the program (documented in README.md and docs/usage.md). */
enum { NHGD_EXIT_OK = 0, NHGD_EXIT_ERROR = 1, NHGD_EXIT_USAGE = 2, NHGD_EXIT_CHECKPOINTED = 75 };

/* `nhgd data KIND [options]`: collective over MPI_COMM_WORLD; rank 0 does the work. */
int nhgd_cli_data(int argc, char **argv);
/* `nhgd info FILE`: rank 0 prints what the file holds. */
int nhgd_cli_info(int argc, char **argv);
/* Print the error recorded by libnhgd on rank 0. */
void nhgd_cli_report_error(int rc);

#endif
