#!/usr/bin/env bash
# What CI runs: set-up, configure, build, the whole ctest suite, then the core and data
# suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

jobs=$(nproc)
werror=OFF
if [ "${CI:-}" = "true" ] || [ "${DUET_WERROR:-}" = "1" ]; then werror=ON; fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUET_WERROR=$werror
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDUET_SANITIZE=ON \
      -DDUET_CUDA=OFF -DDUET_WERROR=$werror
cmake --build build-asan -j "$jobs"
# LeakSanitizer is kept on: every test frees what it allocates.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -L sanitize
