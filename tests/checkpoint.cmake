# Checkpoint and restart: stop/resume bit-identical, other rank counts, damaged files, kill -9.
foreach(np 1 2 4)
  nhgd_add_serial_test(checkpoint_restart_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/restart.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
foreach(np 1 4)
  nhgd_add_serial_test(checkpoint_kill9_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/kill9.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
foreach(np 1 2 4)
  nhgd_add_serial_test(checkpoint_restart_models_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/restart_models.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
# Stop and resume with a sampled cross term (--cross-rows), bit-identical.
foreach(np 1 2 4)
  nhgd_add_serial_test(checkpoint_restart_cross_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/restart_cross.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
# The baseline estimators' stop and resume, bit-identical.
foreach(np 1 2 4)
  nhgd_add_serial_test(baselines_restart_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/baselines_restart.sh $<TARGET_FILE:nhgd_cli>
            ${MPIEXEC_EXECUTABLE} ${np}
    LABELS "mpi;checkpoint")
endforeach()
# Signals: SIGTERM, SIGINT and SIGHUP to the ranks, at start-up, through jobs/nhgd-launch, and
# to mpirun itself.
foreach(np 1 2)
  nhgd_add_serial_test(checkpoint_signals_np${np}
    COMMAND bash ${NHGD_TEST_DIR}/system/checkpoint/signals.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE}
            ${np}
    LABELS "mpi;checkpoint")
endforeach()
