# Attribution on programs this project did not tune it on (issue 4): a C++
# training loop with std::vector per tensor (tests/e2e/e2e_cxx_train.cpp)
# and, where python3 can import torch, a PyTorch CPU training script
# (bench/torch_attribution.py). Both are profiled without annotations and
# their categories at the peak compared with their own ground truth by
# bench/attribution_accuracy_torch.py (>= 95% of the bytes at the peak).
add_executable(e2e_cxx_train e2e/e2e_cxx_train.cpp)
# -O2: the loop trains in well under a second; -g for the frames.
target_compile_options(e2e_cxx_train PRIVATE -O2 -g)
target_link_libraries(e2e_cxx_train PRIVATE PkgConfig::ZLIB)
set_target_properties(e2e_cxx_train PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin/e2e)

find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND AND TARGET mlmem)
  add_test(NAME attribution_cxx
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/attribution_accuracy_torch.py
            --build ${CMAKE_BINARY_DIR} --only cxx --min 95)
  set_tests_properties(attribution_cxx PROPERTIES TIMEOUT 120)
  # Skipped (exit 77) when no python3 on the machine can import torch
  # (Debian: apt-get install python3-torch).
  add_test(NAME attribution_torch
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/attribution_accuracy_torch.py
            --build ${CMAKE_BINARY_DIR} --only torch --quick --min 95)
  set_tests_properties(attribution_torch PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
