/* libnhgd: natural hypergradient descent for stochastic bilevel optimisation on MPI. */
#ifndef NHGD_NHGD_H
#define NHGD_NHGD_H

#include "nhgd/checkpoint.h"
#include "nhgd/data.h"
#include "nhgd/errors.h"
#include "nhgd/export.h"
#include "nhgd/history.h"
#include "nhgd/log.h"
#include "nhgd/metrics.h"
#include "nhgd/options.h"
#include "nhgd/output.h"
#include "nhgd/problem.h"
#include "nhgd/solver.h"
#include "nhgd/stop.h"
#include "nhgd/version.h"

#endif
