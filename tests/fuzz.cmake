# libFuzzer harnesses (configure with -DCMAKE_C_COMPILER=clang -DNHGD_FUZZ=ON
# -DNHGD_TEST_AREAS=fuzz): the options-file parser, the LIBSVM and IDX importers, the reader of
# data files (h5data) and the checkpoint reader (checkpoint), the last two on HDF5 files in
# memory; each run for a bounded time from its committed seed corpus (label fuzz). Longer
# runs: bench/fuzz.sh, or the same programs with a larger -max_total_time.
if(NHGD_FUZZ)
  set(NHGD_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz test runs")
  # HDF5 itself asks malloc for whatever size a damaged object header claims (petabytes) and
  # copes with NULL: for the harnesses that open HDF5 files such requests return NULL instead
  # of ending the run; real use of memory is still bounded by -rss_limit_mb.
  set(fuzz_env_h5data "allocator_may_return_null=1:")
  set(fuzz_env_checkpoint "allocator_may_return_null=1:")
  set(fuzz_args_h5data "-malloc_limit_mb=4000000000")
  set(fuzz_args_checkpoint "-malloc_limit_mb=4000000000")
  foreach(target options libsvm idx h5data checkpoint)
    add_executable(fuzz_${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c)
    target_compile_options(fuzz_${target} PRIVATE ${NHGD_WARNINGS})
    target_link_libraries(fuzz_${target} PRIVATE nhgd_internal)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    target_compile_definitions(
      fuzz_${target} PRIVATE NHGD_FUZZ_CHECKPOINT_CFG="${CMAKE_CURRENT_SOURCE_DIR}/fuzz/checkpoint.cfg")
    # A scratch copy of the seed corpus: new inputs libFuzzer finds go there, not into git.
    add_test(NAME fuzz_${target}
             COMMAND bash -c "rm -rf corpus_${target} && cp -r ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target} corpus_${target} && $<TARGET_FILE:fuzz_${target}> -max_total_time=${NHGD_FUZZ_SECONDS} -rss_limit_mb=2048 ${fuzz_args_${target}} -print_final_stats=1 corpus_${target}"
             WORKING_DIRECTORY ${NHGD_TEST_WORK})
    set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 600
                         ENVIRONMENT "ASAN_OPTIONS=${fuzz_env_${target}}detect_leaks=1:fast_unwind_on_malloc=0;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/lsan.supp:print_suppressions=0")
  endforeach()
  # The data reader on the file bytes themselves (HDF5's parser included): the committed files
  # and the inputs fuzzing found once each, no new fuzzing (HDF5 1.10.8 itself crashes on some
  # damaged files; bench/fuzz.sh fuzzes this mode and reports them).
  add_test(NAME fuzz_h5data_raw
           COMMAND $<TARGET_FILE:fuzz_h5data> -runs=0 ${fuzz_args_h5data}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/h5data_raw
           WORKING_DIRECTORY ${NHGD_TEST_WORK})
  set_tests_properties(fuzz_h5data_raw PROPERTIES LABELS fuzz TIMEOUT 120
                       ENVIRONMENT "NHGD_FUZZ_RAW=1;ASAN_OPTIONS=${fuzz_env_h5data}detect_leaks=1:fast_unwind_on_malloc=0;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/lsan.supp:print_suppressions=0")
endif()
