"""Generate the C source of the extension module nhgd._nhgd_ffi with cffi in API mode.

usage: python3 build_ffi.py OUTPUT.c

The declarations below are the subset of the public headers (include/nhgd/) the package
uses. In API mode the C compiler checks them against the real headers when CMake compiles
OUTPUT.c: a declaration that does not match is a build error, not a crash at run time.
MPI_Comm is opaque here and crosses only by address (glue.h), so nothing depends on how the
MPI implementation defines it.
"""
import sys

import cffi

CDEF = """
typedef ... MPI_Comm;

typedef enum nhgd_status {
  NHGD_OK = 0, NHGD_ERR_ARG = 1, NHGD_ERR_MEM = 2, NHGD_ERR_IO = 3, NHGD_ERR_DATA = 4,
  NHGD_ERR_MPI = 5, NHGD_ERR_HDF5 = 6, NHGD_ERR_SCALAPACK = 7, NHGD_ERR_NUMERIC = 8,
  NHGD_ERR_INTERNAL = 9, NHGD_ERR_OTHER_RANK = 10, NHGD_STOPPED = 11
} nhgd_status;
const char *nhgd_strerror(int code);
const char *nhgd_error_message(void);
const char *nhgd_error_where(void);
void nhgd_error_clear(void);

typedef struct nhgd_options nhgd_options;
int nhgd_options_create_run(nhgd_options **out);
int nhgd_options_copy(const nhgd_options *o, nhgd_options **out);
void nhgd_options_destroy(nhgd_options **o);
int nhgd_options_parse(nhgd_options *o, int argc, char **argv, const char *env_prefix,
                       int *help);
int nhgd_options_set(nhgd_options *o, const char *name, const char *value, const char *source);
int nhgd_options_get_int(const nhgd_options *o, const char *name, int64_t *value);
int nhgd_options_get_real(const nhgd_options *o, const char *name, double *value);
int nhgd_options_get_string(const nhgd_options *o, const char *name, const char **value);
int nhgd_options_validate(const nhgd_options *o);
int nhgd_options_is_default(const nhgd_options *o, const char *name, int *is_default);
void nhgd_options_foreach(const nhgd_options *o,
                          void (*fn)(const char *name, const char *value, unsigned flags,
                                     void *arg),
                          void *arg);

typedef enum nhgd_task { NHGD_TASK_REGRESSION = 0, NHGD_TASK_CLASSIFICATION = 1 } nhgd_task;
typedef struct nhgd_split {
  int64_t n_global;
  int64_t lo;
  int n_local;
  int m;
  double *X;
  int32_t *y_class;
  double *y_real;
} nhgd_split;
typedef struct nhgd_data {
  int rank, size;
  nhgd_task task;
  int n_classes;
  int m;
  nhgd_split train, val, test;
  int has_test;
  char path[4096];
  ...;
} nhgd_data;
void nhgd_data_destroy(nhgd_data **data);
typedef struct nhgd_fmnist_options {
  char dir[4096];
  char output[4096];
  int64_t n_train;
  int64_t n_val;
  double corruption;
  uint64_t seed;
  int standardize;
} nhgd_fmnist_options;
void nhgd_fmnist_options_default(nhgd_fmnist_options *o);
int nhgd_data_fashion_mnist(const nhgd_fmnist_options *o);

typedef struct nhgd_problem nhgd_problem;
typedef struct nhgd_problem_ops {
  int (*init)(const nhgd_problem *pb, double *theta, double *v);
  int (*inner_grad)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                    const int *rows, double *g, double *loss);
  int (*sample_grads)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, double *S, double *c);
  int (*hess_factors)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                      const int *rows, double *Z);
  int (*hvp)(const nhgd_problem *pb, const double *theta, const double *v, int nb, const int *rows,
             const double *V, double *HV);
  int (*reg)(const nhgd_problem *pb, const double *theta, const double *v, double *value,
             double *grad, double *hdiag);
  int (*eval)(const nhgd_problem *pb, const nhgd_split *split, const double *theta,
              const double *v, double *loss_sum, double *gtheta, int64_t *correct);
  int (*outer_grad_v)(const nhgd_problem *pb, const double *theta, const double *v, double *gv);
  int (*cross)(const nhgd_problem *pb, const double *theta, const double *v, const double *u,
               double *out);
  int (*layer_factors)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                       const int *rows, int after_grad, double *const *a, double *const *g,
                       double *c);
  int (*cross_keep)(const nhgd_problem *pb, const double *theta, const double *v, int nb,
                    const int *rows, int after_grad, double *K);
  int (*cross_apply)(const nhgd_problem *pb, const double *v, const double *u, int nb,
                     const int *rows, const double *K, const double *scale, double *out);
  ...;
} nhgd_problem_ops;
struct nhgd_problem {
  const char *name;
  void *ctx;
  const nhgd_data *data;
  int64_t d;
  int64_t p;
  int v_per_sample;
  int hess_rank;
  int is_classifier;
  int n_layers;
  const int *layer_in, *layer_out;
  nhgd_problem_ops ops;
  int cross_width;
  ...;
};
int nhgd_problem_create_custom(const char *name, const nhgd_data *data,
                               const nhgd_problem_ops *ops, size_t ops_size, void *ctx,
                               nhgd_problem **out);
int nhgd_problem_create_from_options(const nhgd_options *o, const nhgd_data *data,
                                     nhgd_problem **out);
void nhgd_problem_destroy(nhgd_problem **pb);

typedef struct nhgd_progress {
  int64_t step;
  double val_loss, val_acc, test_loss, test_acc, inner_loss, hypergrad_norm, wall_time;
  double samples;
  int64_t val_rows;
  double val_loss_full;
  double solver_time;
  double eval_time;
} nhgd_progress;
typedef void (*nhgd_progress_fn)(const nhgd_progress *p, void *arg);

typedef enum nhgd_path_use {
  NHGD_PATH_READ = 0, NHGD_PATH_WRITE = 1, NHGD_PATH_APPEND = 2, NHGD_PATH_FOLDER = 3
} nhgd_path_use;
typedef struct nhgd_path {
  const char *option;
  const char *path;
  nhgd_path_use use;
} nhgd_path;
int nhgd_paths_check(const nhgd_path *paths, int n);

typedef struct nhgd_solver nhgd_solver;
int nhgd_solver_check_data(const nhgd_options *o, const nhgd_problem *pb);
int nhgd_solver_run(nhgd_solver *s);
int nhgd_solver_hypergrad(nhgd_solver *s);
int nhgd_solver_write(nhgd_solver *s, const char *path);
int nhgd_solver_report(nhgd_solver *s);
int nhgd_solver_timing(nhgd_solver *s, int *n, const char **names, double *mn, double *avg,
                       double *mx);
int nhgd_solver_resumed(const nhgd_solver *s);
int64_t nhgd_solver_outer_steps_done(const nhgd_solver *s);
void nhgd_solver_set_progress(nhgd_solver *s, nhgd_progress_fn fn, void *arg);
typedef struct nhgd_rollback nhgd_rollback;
typedef void (*nhgd_rollback_fn)(const nhgd_rollback *r, void *arg);
void nhgd_solver_set_rollback(nhgd_solver *s, nhgd_rollback_fn fn, void *arg);
typedef struct nhgd_metrics nhgd_metrics;
int nhgd_metrics_open(nhgd_solver *s, const char *path, nhgd_metrics **out);
void nhgd_metrics_progress(const nhgd_progress *p, void *metrics);
void nhgd_metrics_rollback(const nhgd_rollback *r, void *metrics);
int nhgd_metrics_timing(nhgd_metrics *m, nhgd_solver *s);
int nhgd_metrics_close(nhgd_metrics **m, const char *checkpoint_dir);
const double *nhgd_solver_theta(const nhgd_solver *s);
const double *nhgd_solver_v(const nhgd_solver *s);
const double *nhgd_solver_u(const nhgd_solver *s);
const double *nhgd_solver_hypergradient(const nhgd_solver *s);
int64_t nhgd_solver_v_local(const nhgd_solver *s);
double nhgd_solver_val_loss(const nhgd_solver *s);
double nhgd_solver_test_accuracy(const nhgd_solver *s);
void nhgd_solver_destroy(nhgd_solver **s);

void nhgd_request_stop(void);
void nhgd_clear_stop_request(void);
int nhgd_log_level(void);

int pynhgd_error_agree(const MPI_Comm *comm, int status);
void pynhgd_log_init(const MPI_Comm *comm, int level);
int pynhgd_data_load(const MPI_Comm *comm, const char *path, nhgd_data **out);
int pynhgd_solver_create(const MPI_Comm *comm, const nhgd_options *o, const nhgd_data *data,
                         nhgd_problem *pb, nhgd_solver **out);
int pynhgd_output_check(const MPI_Comm *comm, const char *path);
int pynhgd_checkpoint_folder_lock(const MPI_Comm *comm, const char *dir);
void pynhgd_checkpoint_folder_unlock(const MPI_Comm *comm, const char *dir);
int pynhgd_same_ranks(const MPI_Comm *comm, const nhgd_data *data);
void pynhgd_data_set_comm(nhgd_data *data, const MPI_Comm *comm);
void nhgd_partition(int64_t n_global, int P, int r, int64_t *lo, int64_t *n);
int pynhgd_error_set(int code, const char *message);
const char *pynhgd_version(void);
int pynhgd_stop_on_signal(int sig);

extern "Python" int pynhgd_cb_init(const nhgd_problem *pb, double *theta, double *v);
extern "Python" int pynhgd_cb_inner_grad(const nhgd_problem *pb, const double *theta,
                                         const double *v, int nb, const int *rows, double *g,
                                         double *loss);
extern "Python" int pynhgd_cb_sample_grads(const nhgd_problem *pb, const double *theta,
                                           const double *v, int nb, const int *rows, double *S,
                                           double *c);
extern "Python" int pynhgd_cb_hess_factors(const nhgd_problem *pb, const double *theta,
                                           const double *v, int nb, const int *rows, double *Z);
extern "Python" int pynhgd_cb_hvp(const nhgd_problem *pb, const double *theta, const double *v,
                                  int nb, const int *rows, const double *V, double *HV);
extern "Python" int pynhgd_cb_reg(const nhgd_problem *pb, const double *theta, const double *v,
                                  double *value, double *grad, double *hdiag);
extern "Python" int pynhgd_cb_eval(const nhgd_problem *pb, const nhgd_split *split,
                                   const double *theta, const double *v, double *loss_sum,
                                   double *gtheta, int64_t *correct);
extern "Python" int pynhgd_cb_outer_grad_v(const nhgd_problem *pb, const double *theta,
                                           const double *v, double *gv);
extern "Python" int pynhgd_cb_cross(const nhgd_problem *pb, const double *theta,
                                    const double *v, const double *u, double *out);
extern "Python" int pynhgd_cb_layer_factors(const nhgd_problem *pb, const double *theta,
                                            const double *v, int nb, const int *rows,
                                            int after_grad, double *const *a, double *const *g,
                                            double *c);
extern "Python" int pynhgd_cb_cross_keep(const nhgd_problem *pb, const double *theta,
                                         const double *v, int nb, const int *rows, int after_grad,
                                         double *K);
extern "Python" int pynhgd_cb_cross_apply(const nhgd_problem *pb, const double *v,
                                          const double *u, int nb, const int *rows,
                                          const double *K, const double *scale, double *out);
extern "Python" void pynhgd_on_progress(const nhgd_progress *p, void *arg);
extern "Python" void pynhgd_on_option(const char *name, const char *value, unsigned flags,
                                      void *arg);
"""


def make_ffi():
    """The FFI builder of nhgd._nhgd_ffi (its C source includes glue.h)."""
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("nhgd._nhgd_ffi", '#include "glue.h"')
    return ffi


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    make_ffi().emit_c_code(sys.argv[1])
