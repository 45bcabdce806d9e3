# Issue 7's faults not covered by capture.cmake: a stopped analyzer, a full
# disk, programs with their own allocator, vfork/posix_spawn, 64 threads,
# deep recursion, setuid, hostile names (test_e2e_reliability), and the
# escaping of hostile names in the reports and the dashboard (test_escaping).

set(E2E_DIR ${CMAKE_BINARY_DIR}/bin/e2e)
set(RELIABILITY_PROGS e2e_stall e2e_spawn e2e_threads64 e2e_deep e2e_setuid e2e_sockpath
  e2e_takefds e2e_errno)
foreach(prog ${RELIABILITY_PROGS})
  add_executable(${prog} e2e/${prog}.c)
  target_compile_options(${prog} PRIVATE -O0 -g -fno-builtin)
  set_target_properties(${prog} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
endforeach()
target_link_libraries(e2e_threads64 PRIVATE Threads::Threads)
target_link_libraries(e2e_takefds PRIVATE Threads::Threads)
target_link_libraries(e2e_errno PRIVATE Threads::Threads)
target_link_libraries(e2e_setuid PRIVATE ${CMAKE_DL_LIBS})
foreach(prog e2e_names e2e_ownalloc)
  add_executable(${prog} e2e/${prog}.cpp)
  target_compile_options(${prog} PRIVATE -O0 -g)
  set_target_properties(${prog} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
  list(APPEND RELIABILITY_PROGS ${prog})
endforeach()

# The same program linked with jemalloc and with tcmalloc, where installed
# (scripts/install-deps.sh installs libjemalloc-dev and
# libgoogle-perftools-dev); the tests skip the ones that are missing.
find_library(JEMALLOC_LIBRARY NAMES jemalloc libjemalloc.so.2)
find_library(TCMALLOC_LIBRARY NAMES tcmalloc libtcmalloc.so.4)
if(JEMALLOC_LIBRARY)
  add_executable(e2e_ownalloc_je e2e/e2e_ownalloc.cpp)
  target_link_options(e2e_ownalloc_je PRIVATE -Wl,--no-as-needed)
  target_link_libraries(e2e_ownalloc_je PRIVATE ${JEMALLOC_LIBRARY})
  list(APPEND RELIABILITY_PROGS e2e_ownalloc_je)
else()
  message(STATUS "jemalloc not found: its e2e test is skipped (scripts/install-deps.sh)")
endif()
if(TCMALLOC_LIBRARY)
  add_executable(e2e_ownalloc_tc e2e/e2e_ownalloc.cpp)
  target_link_options(e2e_ownalloc_tc PRIVATE -Wl,--no-as-needed)
  target_link_libraries(e2e_ownalloc_tc PRIVATE ${TCMALLOC_LIBRARY})
  list(APPEND RELIABILITY_PROGS e2e_ownalloc_tc)
else()
  message(STATUS "tcmalloc not found: its e2e test is skipped (scripts/install-deps.sh)")
endif()
foreach(prog e2e_ownalloc_je e2e_ownalloc_tc)
  if(TARGET ${prog})
    target_compile_options(${prog} PRIVATE -O0 -g)
    set_target_properties(${prog} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
  endif()
endforeach()

mlmem_add_test(test_e2e_reliability
  SOURCES test_e2e_reliability.c e2e_harness.c stream_builder.c
  LIBS PkgConfig::JANSSON)
add_dependencies(test_e2e_reliability mlmem mlmem_preload e2e_peak e2e_exit alloc_storm ${RELIABILITY_PROGS})

if(TARGET mlmem_reports AND TARGET mlmem_ui)
  mlmem_add_test(test_escaping
    SOURCES test_escaping.c test_report_fixture.c
    LIBS mlmem_reports mlmem_ui PkgConfig::JANSSON)
endif()
