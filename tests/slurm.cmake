# SLURM tests: a real single-node cluster (scripts/slurm-local.sh) runs the jobs/ batch scripts with nhgd.
# The fixture starts the cluster once in the work directory and stops it after the last test.
set(NHGD_SLURM_CLUSTER ${NHGD_TEST_WORK}/slurm-cluster)

nhgd_add_serial_test(slurm_cluster_start
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/slurm-local.sh start ${NHGD_SLURM_CLUSTER}
  LABELS slurm)
set_tests_properties(slurm_cluster_start PROPERTIES FIXTURES_SETUP nhgd_slurm TIMEOUT 600)

nhgd_add_serial_test(slurm_cluster_stop
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/slurm-local.sh stop ${NHGD_SLURM_CLUSTER}
  LABELS slurm)
set_tests_properties(slurm_cluster_stop PROPERTIES FIXTURES_CLEANUP nhgd_slurm TIMEOUT 300)

# name -> labels; each test waits for its jobs with bounds below its timeout. The tests run
# one at a time (RESOURCE_LOCK) and take both cores: their jobs and direct runs share them.
foreach(t signal_requeue signal_traps array chain time_limit)
  set(labels slurm)
  set(timeout 900)
  if(t STREQUAL "time_limit")
    set(labels "slurm;slow")
    set(timeout 1800)
  endif()
  nhgd_add_serial_test(slurm_${t}
    COMMAND bash ${NHGD_TEST_DIR}/system/slurm/${t}.sh $<TARGET_FILE:nhgd_cli> ${PROJECT_SOURCE_DIR}
            ${NHGD_SLURM_CLUSTER}
    LABELS "${labels}")
  set_tests_properties(slurm_${t} PROPERTIES FIXTURES_REQUIRED nhgd_slurm TIMEOUT ${timeout}
                       RESOURCE_LOCK nhgd_slurm_cluster PROCESSORS 2)
endforeach()

# The same signals with the srun launcher (NHGD_LAUNCH=srun): srun killed the ranks on the
# SIGHUP of scancel --full (job FAILED 137, no checkpoint).
nhgd_add_serial_test(slurm_signal_traps_srun
  COMMAND bash ${NHGD_TEST_DIR}/system/slurm/signal_traps.sh $<TARGET_FILE:nhgd_cli>
          ${PROJECT_SOURCE_DIR} ${NHGD_SLURM_CLUSTER}
  LABELS slurm)
set_tests_properties(slurm_signal_traps_srun PROPERTIES FIXTURES_REQUIRED nhgd_slurm TIMEOUT 900
                     RESOURCE_LOCK nhgd_slurm_cluster PROCESSORS 2 ENVIRONMENT NHGD_LAUNCH=srun)

# Two clusters on one machine: one of its own beside a listener on the default port (no
# fixture; it stops its cluster itself).
nhgd_add_serial_test(slurm_port
  COMMAND bash ${NHGD_TEST_DIR}/system/slurm/port.sh $<TARGET_FILE:nhgd_cli> ${PROJECT_SOURCE_DIR}
          ${NHGD_TEST_WORK}/slurm-port-cluster
  LABELS slurm)
set_tests_properties(slurm_port PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
                     RESOURCE_LOCK nhgd_slurm_cluster)
