# A short, repeatable fuzzing run (fixed seed, 3000 inputs each) of the
# stream and trace readers on their seed corpora (tests/fuzz/corpus), built
# with clang's libFuzzer, ASan and UBSan. Longer, random runs:
# tests/fuzz/run.sh BUILD_DIR 0 SECONDS.
find_program(MLMEM_CLANG clang)
if(MLMEM_CLANG)
  add_test(NAME fuzz_readers
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh ${CMAKE_BINARY_DIR} 3000)
  set_tests_properties(fuzz_readers PROPERTIES TIMEOUT 600)
endif()
