# Tests of the nhgd program: bad input on every rank count. About 200 s at 1 rank, nearly all
# of it mpirun's 2 s pause after each refused run; each case has its own hang limit, and the
# test's limit leaves room for CI's stages that run side by side (scripts/setup.sh).
foreach(np 1 2 4)
  nhgd_add_serial_test(cli_bad_input_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/cli/bad_input.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
  set_tests_properties(cli_bad_input_np${np} PROPERTIES TIMEOUT 900)
endforeach()

# The work counter /history/samples against its formula for every estimator.
foreach(np 1 2 4)
  nhgd_add_serial_test(cli_work_counter_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/cli/work_counter.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE}
            ${np}
    LABELS "mpi;fast")
endforeach()
