# The exact heap accounting stage. Its sources are compiled in directly so the
# test does not wait on the rest of the profiler library.
set(MLMEM_ACCT_SOURCES
  ${CMAKE_SOURCE_DIR}/profiler/accounting.c
  ${CMAKE_SOURCE_DIR}/profiler/heap_table.c
  ${CMAKE_SOURCE_DIR}/profiler/interval_map.c
  ${CMAKE_SOURCE_DIR}/profiler/prof_result.c)

mlmem_add_test(test_accounting
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_accounting.c ${MLMEM_ACCT_SOURCES})

# Throughput benchmark of prof_acct_apply(): built with the tests, not run by
# ctest (bin/acct_throughput [events]).
add_executable(acct_throughput ${CMAKE_SOURCE_DIR}/bench/acct_throughput.c ${MLMEM_ACCT_SOURCES})
target_include_directories(acct_throughput PRIVATE ${CMAKE_SOURCE_DIR})
