# Attention and matrix-product throughput of the CUDA backend (figures in RESULTS-gpu.md once
# run on a GPU; see docs/cuda.md).
if(DUET_CUDA)
  duet_tool(bench_gpu ${CMAKE_CURRENT_LIST_DIR}/bench_gpu.c duet_core)
endif()
