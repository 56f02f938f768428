/* Fault injection for the fault tests: a chosen allocation or HDF5 transfer fails. */
#ifndef NHGD_CORE_FAULT_H
#define NHGD_CORE_FAULT_H

/* Fault injection (test builds with -DNHGD_FAULTS=ON): NHGD_FAULT=KIND:N[:RANK] makes the
 * N-th call of that kind fail on world rank RANK (default 0): h5, the data transfers checked
 * by NHGD_H5_TRY (H5Dwrite, H5Dread, H5Awrite, H5Aread); alloc, nhgd_calloc. A transfer
 * fails after it ran, the last call of its helper, so the ranks' HDF5 metadata stays the same
 * (a rank that skipped a metadata call would leave HDF5 itself in different collectives).
 * NHGD_FAULT_COUNT=FILE appends each rank's number of calls of each kind to FILE at exit. Without
 * the option nhgd_fault_hit is the constant 0. */
enum { NHGD_FAULT_H5 = 0, NHGD_FAULT_ALLOC = 1, NHGD_FAULT_KINDS = 2 };
#ifdef NHGD_FAULTS
int nhgd_fault_hit(int kind);
/* call: the text of the HDF5 call; counts (and may fail) only data transfers. */
int nhgd_fault_hit_h5(const char *call);
#else
#define nhgd_fault_hit(kind) 0
#define nhgd_fault_hit_h5(call) 0
#endif

#endif
