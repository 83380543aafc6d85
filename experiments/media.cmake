# The synthetic generator, clip writing and footage decoding (results in RESULTS-synth.md).
duet_tool(bench_synth ${CMAKE_CURRENT_LIST_DIR}/bench_synth.c duet_data)
