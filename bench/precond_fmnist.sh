#!/usr/bin/env bash
# NBO and NHGD's curvature as a preconditioner, end to end on the Fashion-MNIST protocols:
#   linear  the main job (jobs/hyperclean_fmnist.cfg: 20,000 training rows with half the
#           labels redrawn, linear 784 x 10 model, 30 outer steps of SGD 5000 on the sampled
#           hypergradient, T = 20 inner steps of B = 256);
#   mlp     the same with a 784-256-10 tanh network (bench/mlp.sh's protocol).
# Per method and seed one run; the table gives the final and best test accuracy and the
# solver time (the method's own work, without test evaluations) to 0.81 and 0.82, medians
# over seeds. Methods: the job's nhgd, soba, nbo with each solver (with and without its Newton
# step), cg and nbo preconditioned by NHGD's M at a few steps Q, and, since a more exact
# hypergradient has another magnitude than NHGD's (bench/precond_accuracy.md), the
# preconditioned ones also at other outer step sizes.
# Writes bench/results/precond_fmnist_runs.csv, precond_mlp_runs.csv and precond_fmnist.md.
# usage: bench/precond_fmnist.sh [ranks] [seeds] [sections]
#        (defaults: 2 "0 1 2 3 4" "linear mlp")
source "$(dirname "$0")/common.sh"
NHGD_SUITE_OUT=$results source "$(dirname "$0")/suite/lib.sh"
P=${1:-2}
seeds=${2:-"0 1 2 3 4"}
sections=${3:-"linear mlp"}
K=30
cfg=$root/jobs/hyperclean_fmnist.cfg
labels=$work/precond_labels.tsv
: >"$labels"
declare -A est

# define NAME OPTIONS...: a method of the tables.
define() {
  local name=$1
  shift
  est[$name]="$*"
  printf '%s\t%s\n' "$name" "$*" >>"$labels"
}

define nhgd --estimator nhgd
define soba --estimator soba --soba-rho 0.1
define nbo-gd --estimator nbo --nbo-solver gd --nbo-steps 3 --nbo-lr 0.1 --nbo-batch 256
define nbo-gd-nonewton --estimator nbo --nbo-solver gd --nbo-steps 3 --nbo-lr 0.1 --nbo-batch 256 --nbo-newton 0
define nbo-sgd --estimator nbo --nbo-solver sgd --nbo-steps 3 --nbo-lr 0.1 --nbo-batch 256
define nbo-cg --estimator nbo --nbo-solver cg --nbo-steps 3 --nbo-batch 2048
define nbo-cg-nonewton --estimator nbo --nbo-solver cg --nbo-steps 3 --nbo-batch 2048 --nbo-newton 0
define cg --estimator cg --hvp-steps 10 --hvp-batch 2048
for Q in 1 3; do
  define cg-precond-q$Q --estimator cg --precond nhgd --hvp-steps $Q --hvp-batch 2048
  for lr in 1000 2000; do
    define cg-precond-q$Q-lr$lr --estimator cg --precond nhgd --hvp-steps $Q --hvp-batch 2048 \
      --outer-lr $lr
  done
done
define nbo-gd-precond --estimator nbo --precond nhgd --nbo-solver gd --nbo-steps 1 --nbo-lr 1 --nbo-batch 2048
define nbo-cg-precond --estimator nbo --precond nhgd --nbo-solver cg --nbo-steps 1 --nbo-batch 2048 --nbo-newton 0
linear="nhgd soba nbo-gd nbo-gd-nonewton nbo-sgd nbo-cg nbo-cg-nonewton cg cg-precond-q1 cg-precond-q1-lr1000 cg-precond-q1-lr2000 cg-precond-q3 cg-precond-q3-lr1000 cg-precond-q3-lr2000 nbo-gd-precond nbo-cg-precond"
# The network: the baselines' products through the Gauss-Newton matrix (its Hessian is
# indefinite, bench/mlp.sh), so nbo's gd and the preconditioned cg.
net=(--problem mlp-hyperclean --hidden 256 --activation tanh --mlp-hvp gauss-newton)
mlp="nhgd nbo-gd nbo-gd-nonewton cg-precond-q1 cg-precond-q1-lr1000 nbo-gd-precond"

for sec in $sections; do
  case $sec in
  linear) accuracy_runs "$results/precond_fmnist_runs.csv" "$linear" "$seeds" ;;
  mlp) accuracy_runs "$results/precond_mlp_runs.csv" "$mlp" "$seeds" "${net[@]}" ;;
  *) echo "precond_fmnist: unknown section $sec" >&2 && exit 2 ;;
  esac
done

{
  echo "# NBO and the preconditioned estimators on the Fashion-MNIST protocols"
  echo
  machine_record
  echo
  echo "Command: \`bench/precond_fmnist.sh $P \"$seeds\" \"$sections\"\`. The main job's"
  echo "protocol (jobs/hyperclean_fmnist.cfg, $K outer steps, $P ranks) with each method's"
  echo "options (last column; every other setting is the job's, including outer SGD 5000 unless"
  echo "the row sets --outer-lr). Solver time to a target: the solver_time of the first outer"
  echo "step at or above it, median over the seeds that reach it (how many in brackets);"
  echo "accuracies are medians over seeds $seeds; run seconds: wall time of the whole run."
  for sec in $sections; do
    echo
    if [ "$sec" = linear ]; then
      echo "## Linear model (the main job)"
      echo
      $python "$root/bench/accuracy_table.py" "$results/precond_fmnist_runs.csv" "$linear" \
        "0.81 0.82" "$labels"
    else
      echo "## 784-256-10 tanh network (\`${net[*]}\`)"
      echo
      $python "$root/bench/accuracy_table.py" "$results/precond_mlp_runs.csv" "$mlp" \
        "0.81 0.82" "$labels"
    fi
  done
} >"$results/precond_fmnist.md"
echo "bench/precond_fmnist.sh: wrote $results/precond_fmnist.md"
