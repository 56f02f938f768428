# Tests of outer/: the outer optimisers (lazy Adam against Adam and its formula) and a lazy-Adam
# run with a sparse hypergradient stopped and resumed.
nhgd_test_program(test_optim outer/test_optim.c)
nhgd_add_mpi_test(outer_optim COMMAND $<TARGET_FILE:test_optim> LABELS fast)
