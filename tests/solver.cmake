# System tests of the solver through the program (tests/system/solver): the same run on 1, 2
# and 4 ranks, the nhgd estimator's sample count, and the clocks of the records.
foreach(np 2 4)
  nhgd_add_serial_test(rank_invariance_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/solver/rank_invariance.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()
foreach(np 2 4)
  nhgd_add_serial_test(efim_samples_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/solver/efim_samples.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()
foreach(np 1 2 4)
  nhgd_add_serial_test(solver_clocks_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/solver/clocks.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;fast")
endforeach()
