# Tests of linalg/ (with io/bcmat_h5): the block-cyclic matrix, its kernels and its datasets.
nhgd_test_program(test_bcmat linalg/test_bcmat.c)
nhgd_add_mpi_test(bcmat COMMAND $<TARGET_FILE:test_bcmat> LABELS fast)
