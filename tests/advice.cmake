# Advice (issue 4): recommendations, plans and the JSON report's
# recommendations read back (tests/test_advice.c).
if(TARGET mlmem_reports AND TARGET mlmem_analyzer)
  mlmem_add_test(test_advice
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_advice.c
    LIBS mlmem_reports mlmem_analyzer)
endif()

# End to end: each recommendation's flags applied to the reference trainer,
# the measured peak within 10% of the predicted one, and `mlmem advise`'s
# plans (bench/advice_accuracy.py, about 15 s).
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mlmem AND TARGET mlmem-train)
  add_test(NAME advice_accuracy
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/advice_accuracy.py
            --build ${CMAKE_BINARY_DIR})
  set_tests_properties(advice_accuracy PROPERTIES TIMEOUT 120)
endif()
