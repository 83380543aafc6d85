# Clip-file writer and loader throughput (results in RESULTS-data.md).
duet_tool(bench_loader ${CMAKE_CURRENT_LIST_DIR}/bench_loader.c duet_data)
