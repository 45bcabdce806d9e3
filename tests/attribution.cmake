# Attribution (issue 4): categories from annotations, rules and behaviour.
# The unit tests compile the accounting and attribution sources directly.
mlmem_add_test(test_attribution
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_attribution.c
          ${CMAKE_SOURCE_DIR}/profiler/accounting.c
          ${CMAKE_SOURCE_DIR}/profiler/attribution.c
          ${CMAKE_SOURCE_DIR}/profiler/heap_table.c
          ${CMAKE_SOURCE_DIR}/profiler/interval_map.c
          ${CMAKE_SOURCE_DIR}/profiler/prof_result.c)

# The reports' side: JSON categories/steps and the text report's bar.
if(TARGET mlmem_reports AND TARGET mlmem_analyzer)
  mlmem_add_test(test_attribution_report
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_attribution_report.c
    LIBS mlmem_reports mlmem_analyzer)
endif()

# End to end: the reference trainer profiled with and without --annotate,
# categories at the peak against its own ground truth (bench/attribution_accuracy.py:
# all six configurations, 4000 samples, about 10 s; with fewer samples no steps
# are found, and step detection must be covered).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mlmem AND TARGET mlmem-train)
  add_test(NAME attribution_accuracy
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/attribution_accuracy.py
            --build ${CMAKE_BINARY_DIR})
  set_tests_properties(attribution_accuracy PROPERTIES TIMEOUT 120)
endif()
