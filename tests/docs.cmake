# Documentation: docs/options.md is what the built program's help says (regenerated here and
# compared), and every relative link in the README, docs/, bench/ and jobs/ markdown points to
# a file that exists.
nhgd_add_serial_test(docs_options
  COMMAND bash ${NHGD_TEST_DIR}/system/docs/options.sh $<TARGET_FILE:nhgd_cli> ${PROJECT_SOURCE_DIR})
nhgd_add_serial_test(docs_links
  COMMAND bash ${NHGD_TEST_DIR}/system/docs/links.sh ${PROJECT_SOURCE_DIR})
