# System tests of the solver through the program (tests/system/solver): the same run on 1, 2
# and 4 ranks, the nhgd estimator's sample count, the clocks of the records, and the sampled
# validation gradient (--val-batch).
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
foreach(script clocks val_batch)
  foreach(np 1 2 4)
    nhgd_add_serial_test(solver_${script}_np${np}
      COMMAND bash ${NHGD_TEST_DIR}/system/solver/${script}.sh $<TARGET_FILE:nhgd_cli>
              ${MPIEXEC_EXECUTABLE} ${np}
      LABELS "mpi;fast")
  endforeach()
endforeach()
