# Tests of the live dashboard (issue 5): the model alone (no terminal), the
# drawing into an ncurses screen on /dev/null, and the real binary driven in
# tmux (e2e_tui.sh).

mlmem_add_test(test_ui_model
  SOURCES test_ui_model.c ${CMAKE_SOURCE_DIR}/ui/ui_model.c
          ${CMAKE_SOURCE_DIR}/profiler/prof_result.c)

find_program(TMUX_PROGRAM tmux)
if(TMUX_PROGRAM)
  add_test(NAME e2e_tui COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e_tui.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e_tui PROPERTIES TIMEOUT 300
    ENVIRONMENT "MLMEM_BUILD_DIR=${CMAKE_BINARY_DIR};MLMEM_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
else()
  message(STATUS "tmux not found: the dashboard's end-to-end test (e2e_tui) is not registered "
                 "(scripts/install-deps.sh installs it)")
endif()

mlmem_add_test(test_ui_view
  SOURCES test_ui_view.c
  LIBS mlmem_ui)

mlmem_add_test(test_ui_replay
  SOURCES test_ui_replay.c stream_builder.c
  LIBS mlmem_ui)
