# Faults (issue 12): the numbered defects through the program, a real full disk (a tmpfs;
# skipped where mounting is not allowed), the divergence guard and its rollbacks and, in builds
# with NHGD_FAULTS, the sweep of injected failures. Each runs at 1, 2 and 4 ranks; the kill -9
# chaos run (seeded, NHGD_CHAOS_SEED) at 2.
foreach(np 1 2 4)
  nhgd_add_serial_test(faults_defects_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/faults/defects.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;faults")
  nhgd_add_serial_test(faults_full_disk_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/faults/full_disk.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;faults")
  set_tests_properties(faults_full_disk_np${np} PROPERTIES SKIP_RETURN_CODE 77
                       RESOURCE_LOCK faults_tmpfs)
  nhgd_add_serial_test(faults_divergence_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/faults/divergence.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;faults")
  if(NHGD_FAULTS)
    nhgd_add_serial_test(faults_sweep_np${np}
      COMMAND bash ${NHGD_TEST_DIR}/system/faults/sweep.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
      LABELS "mpi;faults")
    set_tests_properties(faults_sweep_np${np} PROPERTIES TIMEOUT 1500)
  endif()
endforeach()
nhgd_add_serial_test(faults_chaos_np2
  COMMAND bash ${NHGD_TEST_DIR}/system/faults/chaos.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} 2
  LABELS "mpi;faults")
