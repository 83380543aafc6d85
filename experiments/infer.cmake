# Diagnostics of trained checkpoints (results in experiments/RESULTS-quickstart.md).
duet_tool(probe_denoise ${CMAKE_CURRENT_LIST_DIR}/probe_denoise.c duet_infer)
