/* Levelled logger (public in nhgd/log.h) and the clock. */
#ifndef NHGD_CORE_LOG_H
#define NHGD_CORE_LOG_H

#include "nhgd/log.h"

/* Seconds since the epoch (MPI_Wtime based clock). */
double nhgd_wtime(void);

#endif
