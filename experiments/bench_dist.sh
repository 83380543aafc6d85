#!/bin/sh
# Data-parallel scaling of one config on this machine: one process against two MPI ranks, as a
# Markdown table (the rows come from build/bin/bench_dist; results in RESULTS-dist.md).
#
#   experiments/bench_dist.sh [BUILD_DIR] [CONFIG] [STEPS]     (defaults: build configs/small.ini 5)
#
# Rows: one process with 1 thread (the unit of the efficiency), 2 ranks x 1 thread (bucketed
# all-reduce overlapped with backward, the default; the same after backward; one all-reduce
# per parameter; ZeRO-1), and one process with 2 threads at the same per-process batch and at
# the 2-rank global batch. ROWS=overlap runs only the first three (the overlap comparison).
# OMP_WAIT_POLICY comes from the environment, as for duet-train (RESULTS-dist.md's figures
# were taken with PASSIVE, which slows the 2-thread rows: RESULTS-train.md, "Wait policy with one thread pool");
# each rank gets OMP_NUM_THREADS=1 so that two ranks use two cores, not four threads on two
# cores.
set -eu
build=${1:-build}
config=${2:-configs/small.ini}
steps=${3:-5}
bench="$build/bin/bench_dist"
mpiexec=${MPIEXEC:-mpiexec}
[ -x "$bench" ] || { echo "bench_dist.sh: $bench not built (cmake -DDUET_MPI=ON, target bench_dist)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $cpu, $(nproc) CPUs, $(uname -sr), $($mpiexec --version | head -1)"
echo
echo "$config, batch 1 per process; medians over $steps timed steps after 1 warm-up step; load average at start:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | ranks | threads/rank | batch/rank | global batch | parameters | s/step | clips/s | grad all-reduce ms/step | of it after backward ms/step | loss-sum wait ms/step | ZeRO gather ms/step | moments MiB/rank | RSS MiB/rank after | peak RSS MiB/rank |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"

one() { # label threads batch [args...]
  label=$1 threads=$2 batch=$3
  shift 3
  OMP_NUM_THREADS=$threads "$bench" --config "$config" --batch "$batch" --steps "$steps" --label "$label" "$@"
}
two() { # label [args...]
  label=$1
  shift
  OMP_NUM_THREADS=1 "$mpiexec" --allow-run-as-root -np 2 --bind-to core --map-by core \
    "$bench" --config "$config" --batch 1 --steps "$steps" --label "$label" "$@"
}

one "1 process, 1 thread" 1 1
two "2 ranks, bucketed, overlapped with backward"
two "2 ranks, bucketed, after backward" --no-overlap
[ "${ROWS:-all}" = overlap ] && exit 0
two "2 ranks, all-reduce per parameter" --per-param
two "2 ranks, ZeRO-1" --zero1
one "1 process, 2 threads" 2 1
one "1 process, 2 threads, 2-rank global batch" 2 2
