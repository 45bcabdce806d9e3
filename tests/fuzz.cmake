# A short fuzzing run of the stream and trace readers on their seed corpora
# (tests/fuzz/corpus), built with clang's libFuzzer, ASan and UBSan. Longer
# runs: tests/fuzz/run.sh BUILD_DIR SECONDS.
find_program(MLMEM_CLANG clang)
if(MLMEM_CLANG)
  add_test(NAME fuzz_readers
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh ${CMAKE_BINARY_DIR} 15)
  set_tests_properties(fuzz_readers PROPERTIES TIMEOUT 600)
endif()
