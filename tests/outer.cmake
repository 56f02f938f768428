# Tests of outer/: the outer optimisers (lazy Adam against Adam and its formula) and a lazy-Adam
# run with a sparse hypergradient stopped and resumed; the sampled cross term (--cross-rows)
# against the full pass, and its unbiasedness.
nhgd_test_program(test_optim outer/test_optim.c)
nhgd_add_mpi_test(outer_optim COMMAND $<TARGET_FILE:test_optim> LABELS fast)
nhgd_test_program(test_cross_rows outer/test_cross_rows.c)
nhgd_add_mpi_test(cross_rows COMMAND $<TARGET_FILE:test_cross_rows> LABELS fast)
