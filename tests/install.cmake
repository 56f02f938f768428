# The installed library, headers, CMake package and pkg-config file work for another project.
# Not in sanitizer builds: a consumer without the sanitizer runtime cannot load such a library.
if(NOT NHGD_SANITIZE)
  nhgd_add_serial_test(install_consumer
    COMMAND bash ${NHGD_TEST_DIR}/install/consumer.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
endif()
