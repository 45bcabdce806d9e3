# Trainer tests (trainer/, docs/trainer.md): one cmocka file per module,
# linked against the same static library as mlmem-train.
foreach(t layers checkpointing precision accum data checkpoint compress memory cli)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_train_${t}.c)
    mlmem_add_test(test_train_${t}
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_train_${t}.c
      LIBS mlmem_train_core PkgConfig::ZLIB PkgConfig::JANSSON m)
  endif()
endforeach()

# A stand-in for the shim that counts annotation calls (test_train_cli).
add_library(test_train_fakeshim MODULE ${CMAKE_CURRENT_LIST_DIR}/test_train_fakeshim.c)
set_target_properties(test_train_fakeshim PROPERTIES
  PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
if(TARGET test_train_cli)
  add_dependencies(test_train_cli test_train_fakeshim mlmem-train)
endif()
