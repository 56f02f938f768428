# Tests of the data module (src/data): partition, collective loader, writers and importers.
set(NHGD_DATA_TEST_UTIL ${NHGD_TEST_DIR}/data/testutil.c)

foreach(t partition synth idx libsvm fmnist)
  nhgd_test_program(test_data_${t} ${NHGD_TEST_DIR}/data/test_${t}.c ${NHGD_DATA_TEST_UTIL})
  target_link_libraries(test_data_${t} PRIVATE ZLIB::ZLIB)
endforeach()
nhgd_add_serial_test(data_partition COMMAND $<TARGET_FILE:test_data_partition>)
nhgd_add_serial_test(data_synth COMMAND $<TARGET_FILE:test_data_synth>)
nhgd_add_serial_test(data_idx COMMAND $<TARGET_FILE:test_data_idx>)
nhgd_add_serial_test(data_libsvm COMMAND $<TARGET_FILE:test_data_libsvm>)
nhgd_add_serial_test(data_fmnist COMMAND $<TARGET_FILE:test_data_fmnist>)
set_tests_properties(data_partition data_synth data_idx data_libsvm data_fmnist
                     PROPERTIES TIMEOUT 120)

# Collective loader: round trip at 1, 2 and 4 ranks.
nhgd_test_program(test_data_load_roundtrip ${NHGD_TEST_DIR}/data/test_load_roundtrip.c
                  ${NHGD_DATA_TEST_UTIL})
target_link_libraries(test_data_load_roundtrip PRIVATE ZLIB::ZLIB)
nhgd_add_mpi_test(data_load_roundtrip COMMAND $<TARGET_FILE:test_data_load_roundtrip>)
set_tests_properties(data_load_roundtrip_np1 data_load_roundtrip_np2 data_load_roundtrip_np4
                     PROPERTIES TIMEOUT 60)

# Collective loader on bad input: one test per case and rank count, so that a hang or a
# wrong message names its case. A hang shows up as the timeout.
nhgd_test_program(test_data_load_bad ${NHGD_TEST_DIR}/data/test_load_bad.c ${NHGD_DATA_TEST_UTIL})
target_link_libraries(test_data_load_bad PRIVATE ZLIB::ZLIB)
set(NHGD_DATA_BAD_CASES
    missing_group missing_test_y missing_x x_1d y_2d row_mismatch label_out_of_range
    label_huge label_negative nan_x inf_x huge_x nan_y_regression float_y_classification int_y_regression
    int_x string_x feature_mismatch test_feature_mismatch few_rows empty_split n_classes_1
    n_classes_float format_version not_hdf5 empty_file truncated nonexistent directory)
foreach(case IN LISTS NHGD_DATA_BAD_CASES)
  nhgd_add_mpi_test(data_load_bad_${case} COMMAND $<TARGET_FILE:test_data_load_bad> ${case})
  set_tests_properties(data_load_bad_${case}_np1 data_load_bad_${case}_np2
                       data_load_bad_${case}_np4 PROPERTIES TIMEOUT 30)
endforeach()
# The same program on a valid file made the way h5py users make them (float32 X, int64 y, no
# format attributes).
nhgd_add_mpi_test(data_load_h5py_style COMMAND $<TARGET_FILE:test_data_load_bad> h5py_style)
set_tests_properties(data_load_h5py_style_np1 data_load_h5py_style_np2 data_load_h5py_style_np4
                     PROPERTIES TIMEOUT 30)
