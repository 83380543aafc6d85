# The training loop's throughput and memory per config (results in experiments/RESULTS-train.md).
duet_tool(bench_train ${CMAKE_CURRENT_LIST_DIR}/bench_train.c duet_train)
