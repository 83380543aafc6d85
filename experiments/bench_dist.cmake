# Data-parallel scaling under mpirun (experiments/bench_dist.sh runs it; results in
# experiments/RESULTS-dist.md). Needs MPI.
if(DUET_MPI)
  duet_tool(bench_dist ${CMAKE_CURRENT_LIST_DIR}/bench_dist.c duet_train_mpi)
endif()
