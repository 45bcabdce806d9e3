# The benchmark scripts (bench/) run on tiny inputs: a smoke test, no timing.
add_test(NAME bench_scripts_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_smoke.sh ${CMAKE_BINARY_DIR})
set_tests_properties(bench_scripts_smoke PROPERTIES TIMEOUT 300)
