#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, synthesize a small dataset of
# bouncing objects with impact sounds, train configs/tiny.ini, sample a clip from a prompt and
# measure its audio-video sync. Everything goes under out/quickstart/ (override with OUT=...).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-out/quickstart}
clips=${CLIPS:-768}
steps=${STEPS:-}
# Two data-parallel ranks of one thread each when there are two cores: tiny.ini's products are
# too small to gain from a second thread, but two ranks of 2 clips take 0.07 s a step where one
# process of 4 clips takes 0.11 s (experiments/RESULTS-quickstart.md). RANKS=1: one process.
ranks=${RANKS:-2}
case "$ranks" in 1 | 2 | 4) ;; *) echo "quickstart: RANKS must be 1, 2 or 4 (the 4 clips of a step are split over the ranks)" >&2; exit 2 ;; esac
if [ "$(nproc)" -lt "$ranks" ] || ! command -v mpirun > /dev/null; then ranks=1; fi
# A caption in the synthetic data's own words (duet-synth: size, colour, material, shape, bounces, floor).
prompt=${PROMPT:-"a large red metal ball bounces three times on a blue floor and comes to rest"}
start=$(date +%s)
stamp() { printf '[quickstart %4ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

stamp "installing dependencies"
scripts/setup.sh

stamp "building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build

mkdir -p "$out"
stamp "synthesizing $clips clips (16x16, 16 fps, 2 s, 16 kHz)"
# Objects at twice the default size: at 16x16 the default ones are 2-4 pixels across.
build/bin/duet-synth --out "$out/clips.h5" --count "$clips" --size 16 --seconds 2 --fps 16 \
  --objects 1 --object-scale 2 --seed 1 --force

stamp "training configs/tiny.ini"
rm -rf "$out/run" # the quickstart's own run folder: every quickstart trains afresh
train_args=(--config configs/tiny.ini --set "data.path=$out/clips.h5" --set "train.run_dir=$out/run")
if [ -n "$steps" ]; then train_args+=(--set "train.steps=$steps" --set "train.warmup=$(( steps / 10 ))"); fi
if [ "$ranks" -gt 1 ]; then
  # The same 4 clips per step, split over the ranks (tiny.ini's data.batch = 4).
  train_args+=(--set "data.batch=$(( 4 / ranks ))" --set train.threads=1)
  root=(); if [ "$(id -u)" = 0 ]; then root=(--allow-run-as-root); fi
  mpirun "${root[@]}" -np "$ranks" --bind-to core --map-by core \
    -x OMP_NUM_THREADS=1 build/bin/duet-train "${train_args[@]}"
else
  build/bin/duet-train "${train_args[@]}"
fi

stamp "sampling: \"$prompt\""
# Guidance 1 (none); 2 measured no better (experiments/RESULTS-quickstart.md).
build/bin/duet-infer --ckpt "$out/run/last" --prompt "$prompt" --out "$out/sample.mp4" \
  --frames-dir "$out/sample-frames" --wav "$out/sample.wav" --steps 25 --seed 0 \
  --cfg-video 1 --cfg-audio 1 --force

stamp "measuring sync"
build/bin/duet-eval sync "$out/sample.mp4" --out "$out/eval" || true

stamp "done in $(( $(date +%s) - start )) s"
cat <<MSG

  sample (H.264 + AAC):   $out/sample.mp4
  its frames and sound:   $out/sample-frames/, $out/sample.wav
  sync report:            $out/eval/report.md  (metrics.json beside it)
  training run:           $out/run/  (metrics.jsonl, loss.png, checkpoints, config.ini)

MSG
