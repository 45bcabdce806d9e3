# The shim's threads under helgrind (issue 7): needs Valgrind and the
# checking build of the shim (preload/CMakeLists.txt builds it where
# valgrind/helgrind.h is installed; scripts/install-deps.sh installs it).
find_program(VALGRIND_EXECUTABLE valgrind)
if(VALGRIND_EXECUTABLE AND TARGET mlmem_preload_helgrind)
  add_test(NAME shim_helgrind
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/shim_helgrind.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(shim_helgrind PROPERTIES TIMEOUT 600)
else()
  message(STATUS "valgrind or valgrind/helgrind.h missing: shim_helgrind is not run")
endif()
