# Tests of the Python package (label python): the main job from Python equals the program's
# output bit for bit, errors reach every rank alike, stop and resume is bit-identical, data
# from arrays solves as the file it came from, a numpy problem matches its built-in twin and
# its failures reach every rank (at 1, 2 and 4 ranks); the installed package imports and runs.
# A torch MLP (nhgd.torch) equals the built-in mlp-hyperclean and its example runs; without
# PyTorch these tests are reported as skipped. Without the package (Python, numpy, cffi or
# mpi4py missing; a sanitizer build) one test says why and is reported as skipped.
if(NHGD_PYTHON_BUILT)
  set(nhgd_py_env "PYTHONPATH=${PROJECT_BINARY_DIR}/python")
  foreach(t errors restart arrays problem)
    nhgd_add_mpi_test(python_${t}
      COMMAND ${NHGD_PYTHON_EXECUTABLE} ${NHGD_TEST_DIR}/python/test_${t}.py LABELS "python;fast")
    foreach(np 1 2 4)
      set_property(TEST python_${t}_np${np} APPEND PROPERTY ENVIRONMENT ${nhgd_py_env})
    endforeach()
  endforeach()
  # The numpy problem's example runs as its usage line says.
  nhgd_add_mpi_test(python_example_numpy_logreg
    COMMAND ${NHGD_PYTHON_EXECUTABLE} ${PROJECT_SOURCE_DIR}/examples/python/numpy_logreg.py
    LABELS "python;fast")
  foreach(np 1 2 4)
    set_property(TEST python_example_numpy_logreg_np${np} APPEND PROPERTY ENVIRONMENT ${nhgd_py_env})
    nhgd_add_serial_test(python_main_job_np${np}
      COMMAND bash ${NHGD_TEST_DIR}/python/main_job.sh $<TARGET_FILE:nhgd_cli> ${MPIEXEC_EXECUTABLE}
              ${np} ${NHGD_PYTHON_EXECUTABLE}
      LABELS "mpi;python")
    set_property(TEST python_main_job_np${np} APPEND PROPERTY ENVIRONMENT ${nhgd_py_env})
  endforeach()
  # PyTorch problems: the test scripts exit 77 (skipped) without torch.
  nhgd_add_mpi_test(python_torch
    COMMAND ${NHGD_PYTHON_EXECUTABLE} ${NHGD_TEST_DIR}/python/test_torch.py LABELS "python;fast")
  foreach(np 1 2 4)
    set_property(TEST python_torch_np${np} APPEND PROPERTY ENVIRONMENT ${nhgd_py_env})
    set_tests_properties(python_torch_np${np} PROPERTIES SKIP_RETURN_CODE 77)
    nhgd_add_serial_test(python_example_torch_hyperclean_np${np}
      COMMAND bash ${NHGD_TEST_DIR}/python/torch_example.sh ${MPIEXEC_EXECUTABLE} ${np}
              ${NHGD_PYTHON_EXECUTABLE}
      LABELS "mpi;python")
    set_tests_properties(python_example_torch_hyperclean_np${np} PROPERTIES SKIP_RETURN_CODE 77
                         PROCESSORS 2)
    set_property(TEST python_example_torch_hyperclean_np${np} APPEND PROPERTY ENVIRONMENT
                 ${nhgd_py_env})
  endforeach()
  nhgd_add_serial_test(python_install
    COMMAND bash ${NHGD_TEST_DIR}/python/install.sh ${PROJECT_BINARY_DIR} ${NHGD_PYTHON_EXECUTABLE}
    LABELS "python;fast")
else()
  add_test(NAME python_skipped
           COMMAND sh -c "echo 'skipped: the Python package is not built (${NHGD_PYTHON_MISSING})'; exit 77")
  set_tests_properties(python_skipped PROPERTIES LABELS "python;fast" SKIP_RETURN_CODE 77)
endif()
