# The structure of src/: every include points down the layers (scripts/check-layers.py), and
# HDF5 stays out of core, linalg, problems, inner and the estimators.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  nhgd_add_serial_test(layers COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/check-layers.py
                       ${PROJECT_SOURCE_DIR})
endif()
