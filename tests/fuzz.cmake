# libFuzzer harnesses (configure with -DCMAKE_C_COMPILER=clang -DNHGD_FUZZ=ON
# -DNHGD_TEST_AREAS=fuzz): the options-file parser and the LIBSVM and IDX importers, each run for a
# bounded time from its committed seed corpus (label fuzz). Longer runs: the same program
# with a larger -max_total_time.
if(NHGD_FUZZ)
  set(NHGD_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz test runs")
  foreach(target options libsvm idx)
    add_executable(fuzz_${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${target}.c)
    target_compile_options(fuzz_${target} PRIVATE ${NHGD_WARNINGS})
    target_link_libraries(fuzz_${target} PRIVATE nhgd_internal)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    # A scratch copy of the seed corpus: new inputs libFuzzer finds go there, not into git.
    add_test(NAME fuzz_${target}
             COMMAND bash -c "rm -rf corpus_${target} && cp -r ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target} corpus_${target} && $<TARGET_FILE:fuzz_${target}> -max_total_time=${NHGD_FUZZ_SECONDS} -rss_limit_mb=2048 -print_final_stats=1 corpus_${target}"
             WORKING_DIRECTORY ${NHGD_TEST_WORK})
    set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 600
                         ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1")
  endforeach()
endif()
