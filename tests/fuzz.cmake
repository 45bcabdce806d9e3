# A short, repeatable fuzzing run (fixed seed, 3000 inputs each) of the
# readers of files users hand us: the event stream and trace readers, the
# attribution rules parser, the JSON report reader (with advice and the text
# summary over what it reads) and the trainer's gzipped IDX reader, on their
# seed corpora (tests/fuzz/corpus), built with clang's libFuzzer, ASan and
# UBSan. Longer, random runs: tests/fuzz/run.sh BUILD_DIR 0 SECONDS [NAME...].
find_program(MLMEM_CLANG clang)
if(MLMEM_CLANG)
  add_test(NAME fuzz_readers
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh ${CMAKE_BINARY_DIR} 3000)
  set_tests_properties(fuzz_readers PROPERTIES TIMEOUT 600)
endif()
