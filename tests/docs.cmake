# Documentation: docs/options.md is what the built program's help says (regenerated here and
# compared).
nhgd_add_serial_test(docs_options
  COMMAND bash ${NHGD_TEST_DIR}/docs/options.sh $<TARGET_FILE:nhgd_cli> ${PROJECT_SOURCE_DIR})
