# Tests of the symbolizer and the reports (issue 2).
# symbols.c (with its debug_cache.c and frame_cache.c) is compiled in
# directly so the test does not wait on the profiler library; the test's own
# files are built -O0 -g so lines are exact.

mlmem_add_test(test_symbols
  SOURCES test_symbols.c test_symbols_cxx.cpp ${CMAKE_SOURCE_DIR}/profiler/symbols.c
    ${CMAKE_SOURCE_DIR}/profiler/debug_cache.c ${CMAKE_SOURCE_DIR}/profiler/frame_cache.c
  LIBS PkgConfig::LIBDW stdc++ ${CMAKE_DL_LIBS})
set_source_files_properties(test_symbols.c test_symbols_cxx.cpp
  PROPERTIES COMPILE_OPTIONS "-O0;-g")

# The report tests release results with prof_result_free(), compiled in
# from profiler/prof_result.c (it needs nothing else of the profiler).
if(TARGET mlmem_reports)
  set(REPORT_TEST_SOURCES test_report_fixture.c ${CMAKE_SOURCE_DIR}/profiler/prof_result.c)
  mlmem_add_test(test_report_json
    SOURCES test_report_json.c ${REPORT_TEST_SOURCES}
    LIBS mlmem_reports PkgConfig::JANSSON)
  mlmem_add_test(test_report_text
    SOURCES test_report_text.c ${REPORT_TEST_SOURCES}
    LIBS mlmem_reports)
  mlmem_add_test(test_report_diff
    SOURCES test_report_diff.c ${REPORT_TEST_SOURCES}
    LIBS mlmem_reports PkgConfig::JANSSON)
endif()
