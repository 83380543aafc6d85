# Op throughput on the CPU backend against raw OpenBLAS (results in RESULTS-core.md).
duet_tool(bench_ops ${CMAKE_CURRENT_LIST_DIR}/bench_ops.c duet_core)
duet_tool(bench_rng ${CMAKE_CURRENT_LIST_DIR}/bench_rng.c duet_core)
# The products of one training pass, timed alone (gemm_pass/; results in RESULTS-train.md).
duet_tool(bench_gemm_pass ${CMAKE_CURRENT_LIST_DIR}/gemm_pass/bench_gemm_pass.c duet_core)
