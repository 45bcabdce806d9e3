# The analyzer's stream stages: decoder, reorder, trace file, session.
# stream_builder.c builds shim-format streams for them without the shim.
set(MLMEM_SB ${CMAKE_CURRENT_SOURCE_DIR}/stream_builder.c)

mlmem_add_test(test_decode
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_decode.c ${MLMEM_SB} LIBS mlmem_analyzer)
mlmem_add_test(test_reorder
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_reorder.c LIBS mlmem_analyzer)
mlmem_add_test(test_trace_file
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_trace_file.c ${MLMEM_SB} LIBS mlmem_analyzer)
mlmem_add_test(test_session
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_session.c ${MLMEM_SB} LIBS mlmem_analyzer)
mlmem_add_test(test_stack_store
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_stack_store.c LIBS mlmem_analyzer)
mlmem_add_test(test_debug_cache
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_debug_cache.c LIBS mlmem_analyzer)
