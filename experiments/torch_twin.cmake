# The PyTorch twin of the MMDiT (experiments/torch_twin/README.md): this dumps one forward and
# backward pass of duet's model for experiments/torch_twin/check.py to compare against.
duet_tool(duet_twin_dump ${CMAKE_CURRENT_LIST_DIR}/torch_twin/dump_duet.c duet_model)
