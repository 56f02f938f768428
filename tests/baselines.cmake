# Baseline estimators (cg, neumann, soba): agreement with `exact` and dense references, bad
# options, and bit-identical stop and resume.
nhgd_test_program(test_baselines baselines/test_baselines.c)
nhgd_add_mpi_test(baselines COMMAND $<TARGET_FILE:test_baselines> LABELS fast)
foreach(np 1 2 4)
  nhgd_add_serial_test(baselines_restart_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/baselines/restart.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
