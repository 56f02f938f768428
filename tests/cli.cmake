# Tests of the nhgd program: bad input on every rank count.
foreach(np 1 2 4)
  nhgd_add_serial_test(cli_bad_input_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/cli/bad_input.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()

# The work counter /history/samples against its formula for every estimator.
foreach(np 1 2 4)
  nhgd_add_serial_test(cli_work_counter_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/cli/work_counter.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE}
            ${np}
    LABELS "mpi;fast")
endforeach()
