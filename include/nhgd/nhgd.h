/* libnhgd: natural hypergradient descent for stochastic bilevel optimisation on MPI. */
#ifndef NHGD_NHGD_H
#define NHGD_NHGD_H

#include "nhgd/data.h"
#include "nhgd/errors.h"
#include "nhgd/export.h"
#include "nhgd/log.h"
#include "nhgd/options.h"
#include "nhgd/problem.h"
#include "nhgd/solver.h"
#include "nhgd/version.h"

#endif
