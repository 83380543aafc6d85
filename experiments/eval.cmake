# eval: speed of offset estimation and AV-Align (results in experiments/RESULTS-eval.md).
add_executable(bench_eval ${CMAKE_CURRENT_LIST_DIR}/bench_eval.c)
target_link_libraries(bench_eval PRIVATE duet_eval)
