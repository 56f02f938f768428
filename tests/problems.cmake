# Tests of the built-in problems (src/problems) and of the user-defined problem example.
nhgd_test_program(test_problems ${NHGD_TEST_DIR}/problems/test_problems.c)
foreach(group ridge logreg hyperclean hyperclean-cross registry)
  nhgd_add_serial_test(problem_${group} COMMAND $<TARGET_FILE:test_problems> ${group})
endforeach()

nhgd_test_program(test_problems_mpi ${NHGD_TEST_DIR}/problems/test_problems_mpi.c)
nhgd_add_mpi_test(problem_hyperclean_mpi COMMAND $<TARGET_FILE:test_problems_mpi>)

nhgd_test_program(custom_problem ${PROJECT_SOURCE_DIR}/examples/custom_problem.c)
nhgd_add_serial_test(problem_custom_example COMMAND $<TARGET_FILE:custom_problem>)

nhgd_test_program(test_mlp ${NHGD_TEST_DIR}/problems/test_mlp.c)
foreach(group tanh-hyperclean relu-hyperclean tanh-hpo deep-hpo gauss-newton errors)
  nhgd_add_serial_test(problem_mlp_${group} COMMAND $<TARGET_FILE:test_mlp> ${group})
endforeach()

nhgd_test_program(test_distill ${NHGD_TEST_DIR}/problems/test_distill.c)
nhgd_add_serial_test(problem_distill COMMAND $<TARGET_FILE:test_distill>)

nhgd_test_program(test_problem_custom ${NHGD_TEST_DIR}/problems/test_problem_custom.c)
nhgd_add_serial_test(problem_custom_create COMMAND $<TARGET_FILE:test_problem_custom>)
