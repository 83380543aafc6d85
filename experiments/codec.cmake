# The audio and video codecs: speed and Griffin-Lim fidelity (results in experiments/codec.md).
duet_tool(bench_codec ${CMAKE_CURRENT_LIST_DIR}/bench_codec.c duet_model)
