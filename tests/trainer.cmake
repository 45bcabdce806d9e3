# Trainer tests (trainer/, docs/trainer.md): one cmocka file per module,
# linked against the same static library as mlmem-train.
foreach(t layers checkpointing precision accum data checkpoint compress memory cli)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_train_${t}.c)
    mlmem_add_test(test_train_${t}
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_train_${t}.c
      LIBS mlmem_train_core PkgConfig::ZLIB PkgConfig::JANSSON m)
  endif()
endforeach()
