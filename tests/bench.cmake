# The benchmark suite end to end in quick mode (about 10 minutes: label slow, not in CI), into
# a scratch folder; the project's README and results are not touched.
if(NHGD_BUILD_BENCH)
  nhgd_add_serial_test(bench_suite_quick
    COMMAND bash ${NHGD_TEST_DIR}/system/bench/suite_quick.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}
    LABELS slow)
  set_tests_properties(bench_suite_quick PROPERTIES TIMEOUT 1800)
  # bench/pass_bandwidth.sh on small sizes: it runs and prints every field (nothing timed).
  nhgd_add_serial_test(bench_pass_bandwidth
    COMMAND bash ${NHGD_TEST_DIR}/system/bench/pass_bandwidth.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}
    LABELS bench)
endif()
