# Op throughput on the CPU backend against raw OpenBLAS (results in RESULTS-core.md).
duet_tool(bench_ops ${CMAKE_CURRENT_LIST_DIR}/bench_ops.c duet_core)
