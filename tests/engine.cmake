# Tests of the engine: block-cyclic linear algebra, options, RNG, solver end to end.
nhgd_test_program(test_bcmat engine/test_bcmat.c)
nhgd_add_mpi_test(bcmat COMMAND $<TARGET_FILE:test_bcmat> LABELS fast)
nhgd_test_program(test_options engine/test_options.c)
nhgd_add_serial_test(options COMMAND $<TARGET_FILE:test_options>)
nhgd_test_program(test_ridge_exact engine/test_ridge_exact.c)
nhgd_add_mpi_test(ridge_exact COMMAND $<TARGET_FILE:test_ridge_exact> LABELS fast)
foreach(np 2 4)
  nhgd_add_serial_test(rank_invariance_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/engine/rank_invariance.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()
nhgd_test_program(test_efim_routes engine/test_efim_routes.c)
nhgd_add_mpi_test(efim_routes COMMAND $<TARGET_FILE:test_efim_routes> LABELS fast)
nhgd_test_program(test_ridge_fisher engine/test_ridge_fisher.c)
nhgd_add_mpi_test(ridge_fisher COMMAND $<TARGET_FILE:test_ridge_fisher> LABELS fast)
nhgd_test_program(test_kfac engine/test_kfac.c)
nhgd_add_mpi_test(kfac COMMAND $<TARGET_FILE:test_kfac> LABELS fast)
foreach(np 2 4)
  nhgd_add_serial_test(efim_samples_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/engine/efim_samples.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()

nhgd_test_program(test_kfac_net engine/test_kfac_net.c)
nhgd_add_mpi_test(kfac_net COMMAND $<TARGET_FILE:test_kfac_net> LABELS fast)
