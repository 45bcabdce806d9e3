# End-to-end tests of the capture pipeline: real programs under the shim,
# run through the real mlmem command, with exact figures asserted.

set(E2E_DIR ${CMAKE_BINARY_DIR}/bin/e2e)
foreach(prog e2e_peak e2e_realloc e2e_aligned e2e_mmap e2e_calloc_overflow e2e_threads
        e2e_fork e2e_sigkill e2e_signal_alloc e2e_dlopen e2e_exit e2e_annotate e2e_closefds
        e2e_handoff e2e_fileread e2e_phases e2e_fold e2e_fork_unwind)
  add_executable(${prog} e2e/${prog}.c)
  # -O0 keeps every allocation the source shows; -g for symbol checks.
  target_compile_options(${prog} PRIVATE -O0 -g -fno-builtin)
  set_target_properties(${prog} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
endforeach()
target_link_libraries(e2e_threads PRIVATE Threads::Threads)
target_link_libraries(e2e_exit PRIVATE Threads::Threads)
target_link_libraries(e2e_handoff PRIVATE Threads::Threads)
target_link_libraries(e2e_fold PRIVATE Threads::Threads)
target_link_libraries(e2e_fork_unwind PRIVATE Threads::Threads)
target_link_libraries(e2e_dlopen PRIVATE ${CMAKE_DL_LIBS})
add_executable(e2e_cxx e2e/e2e_cxx.cpp)
target_compile_options(e2e_cxx PRIVATE -O0 -g)
set_target_properties(e2e_cxx PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
add_library(e2e_plugin SHARED e2e/e2e_plugin.c)
target_compile_options(e2e_plugin PRIVATE -O0 -g)
set_target_properties(e2e_plugin PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${E2E_DIR})

mlmem_add_test(test_e2e_capture
  SOURCES test_e2e_capture.c e2e_harness.c
  LIBS PkgConfig::JANSSON)
add_dependencies(test_e2e_capture mlmem mlmem_preload e2e_peak e2e_realloc e2e_aligned
  e2e_mmap e2e_calloc_overflow e2e_threads e2e_fork e2e_sigkill e2e_signal_alloc
  e2e_dlopen e2e_exit e2e_annotate e2e_cxx e2e_plugin e2e_closefds e2e_handoff e2e_fileread
  e2e_phases e2e_fold e2e_fork_unwind mlmem-train)

# The shim's pieces that run outside a profiled process: no allocation hooks
# linked (the stack table writes definitions into rings, so the ring, record
# and writer code come along, and unwind.c's syscall and pipe2 with them).
mlmem_add_test(test_shim
  SOURCES test_shim.c ${CMAKE_SOURCE_DIR}/preload/log.c ${CMAKE_SOURCE_DIR}/preload/config.c
          ${CMAKE_SOURCE_DIR}/preload/stacks.c ${CMAKE_SOURCE_DIR}/preload/cfi.c
          ${CMAKE_SOURCE_DIR}/preload/state.c
          ${CMAKE_SOURCE_DIR}/preload/bootstrap.c
          ${CMAKE_SOURCE_DIR}/preload/record.c ${CMAKE_SOURCE_DIR}/preload/fold.c
          ${CMAKE_SOURCE_DIR}/preload/seq.c ${CMAKE_SOURCE_DIR}/preload/ring.c
          ${CMAKE_SOURCE_DIR}/preload/writer.c ${CMAKE_SOURCE_DIR}/preload/unwind.c
  LIBS PkgConfig::UNWIND Threads::Threads m ${CMAKE_DL_LIBS})

# A statically linked program, which no LD_PRELOAD shim can see into.
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -static)
check_c_source_compiles("int main(void){return 0;}" MLMEM_CAN_LINK_STATIC)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(MLMEM_CAN_LINK_STATIC)
  add_executable(e2e_static e2e/e2e_static.c)
  target_link_options(e2e_static PRIVATE -static)
  set_target_properties(e2e_static PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${E2E_DIR})
  add_dependencies(test_e2e_capture e2e_static)
endif()
