#!/usr/bin/env bash
# Runs the CUDA backend's kernels on the host, under the tests/gpu programs, on a machine
# without a GPU: patched copies of core/cuda/*.cu are compiled as C++20 against emu.h (one
# thread per CUDA thread), the backend's host side is replaced by fake_backend.cpp, and each
# test_*.c is linked against them and the real core/ library sources.
#
# What passes here: the kernels' indexing, their arithmetic against the CPU reference, the
# use of the mma fragment layouts, and the tests' own logic. What it cannot show: anything
# about the hardware (timing, races that only a real GPU schedules, memory ordering, cuBLASLt).
# Slow (minutes: thousands of threads per launch). Needs g++ >= 11, python3 and the CUDA
# headers (CUDA_HOME, default /usr/local/cuda).
#
# Usage: tests/gpu/emu/run.sh [test names, e.g. attention nn]   (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cuda=${CUDA_HOME:-/usr/local/cuda}
out=${TMPDIR:-/tmp}/duet-cuda-emu
mkdir -p "$out/core/cuda" "$out/obj"

# kernel<<<grid, block, smem, stream>>>(args) -> emu_launch(kernel, grid, block, smem, stream)(args);
# the mma's inline PTX -> emu_mma; the dynamic shared-memory array -> the emulator's buffer.
python3 - "$root/core/cuda" "$out/core/cuda" <<'EOF'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    if not (name.endswith('.cu') or name.endswith('.cuh')):
        continue
    s = open(os.path.join(src, name)).read()
    s = s.replace('extern __shared__ __align__(16) unsigned char duet_smem[];', 'unsigned char *duet_smem = emu_smem;')
    s = re.sub(r'asm volatile\((.|\n)*?\);', 'emu_mma(d, a, b0, b1);', s)
    s = re.sub(r'(\w+(?:<[^<>;]*?>)?)<<<(.*?)>>>\(', r'emu_launch(\1, \2)(', s, flags=re.S)
    # A host launch needs the kernel's template fully named where CUDA deduces the rest.
    s = re.sub(r'emu_launch\((colsum_(?:wide|narrow))<NOUT>,', r'emu_launch(\1<NOUT, F>,', s)
    s = s.replace('emu_launch(colsum_finish<NOUT>,', 'emu_launch(colsum_finish<NOUT, W>,')
    if name == 'cuda_util.cuh':
        s = s.replace('#include <cuda_bf16.h>', '#include "emu.h"\n#include <cuda_bf16.h>')
    out = name[:-3] + '.cpp' if name.endswith('.cu') else name
    path = os.path.join(dst, out)
    if not os.path.exists(path) or open(path).read() != s:  # unchanged copies keep their objects
        open(path, 'w').write(s)
EOF

cxx="g++ -std=c++20 -O1 -w -I$out -I$here -I$root -I$cuda/include"
cc="gcc -std=c17 -O1 -w -fopenmp -DDUET_HAVE_CUDA=1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$root -I$root/tests -I$cuda/include"
# The libraries CMake finds for core/ (OpenBLAS, cJSON, inih) and for data/, model/ and train/
# (HDF5, FFTW, libpng, zlib). FFmpeg is left out: data/media*.c then build their stubs, which
# no GPU test reaches.
pc="openblas libcjson inih hdf5 fftw3f fftw3 libpng zlib"
cc="$cc $(pkg-config --cflags $pc 2>/dev/null || echo -I/usr/include/hdf5/serial)"
libs="$(pkg-config --libs $pc 2>/dev/null || echo -lopenblas -lcjson -linih -lhdf5 -lfftw3f -lfftw3 -lpng -lz) -fopenmp -lm -lpthread"

# Objects are rebuilt only when their source, or a header they include, is newer (-MMD).
stale() { # object source
  [ -f "$1" ] || return 0
  [ "$2" -nt "$1" ] && return 0
  local d="${1%.o}.d" h
  [ -f "$d" ] || return 0
  for h in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do [ "$h" -nt "$1" ] && return 0; done
  return 1
}
jobs=${EMU_JOBS:-2}
build() { # compiler object source
  local c="$1" o="$2" s="$3"
  if stale "$o" "$s"; then $c -MMD -c "$s" -o "$o"; fi
}
export -f stale build
objs=()
queue=()
add() { objs+=("$2"); queue+=("$1|$2|$3"); }
add "$cxx" "$out/obj/emu.o" "$here/emu.cpp"
add "$cxx" "$out/obj/fake_backend.o" "$here/fake_backend.cpp"
for f in "$out"/core/cuda/*.cpp; do add "$cxx" "$out/obj/cu_$(basename "$f" .cpp).o" "$f"; done
for f in "$root"/core/*.c "$root"/core/cpu/*.c "$root/tests/testlib.c" "$root/tests/gpu/gpu_test.c"; do
  add "$cc" "$out/obj/c_$(basename "$f" .c).o" "$f"
done
# data/, model/ and train/ (without the tool mains and the MPI seam), and the train tests'
# fixture, for the tests that run the trainer (test_train).
for d in data model train; do
  for f in "$root/$d"/*.c; do
    case "$(basename "$f")" in tool_*|dist_mpi.c) continue ;; esac
    add "$cc" "$out/obj/${d}_$(basename "$f" .c).o" "$f"
  done
done
add "$cc -DDUET_TRAIN_BIN=\"/bin/false\" -I$root/tests/train" "$out/obj/train_fixture.o" "$root/tests/train/train_fixture.c"
printf '%s\n' "${queue[@]}" | xargs -P "$jobs" -d '\n' -I{} bash -c 'IFS="|" read -r c o s <<< "$1"; build "$c" "$o" "$s"' _ {}
rm -f "$out/libemu.a"
ar rcs "$out/libemu.a" "${objs[@]}"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for t in "$root"/tests/gpu/test_*.c; do n=$(basename "$t" .c); names+=("${n#test_}"); done
fi
status=0
for n in "${names[@]}"; do
  $cc -I"$root/tests/train" -c "$root/tests/gpu/test_$n.c" -o "$out/test_$n.o"
  g++ -o "$out/test_$n" "$out/test_$n.o" "$out/libemu.a" $libs
  echo "== $n"
  "$out/test_$n" || status=1
done
exit $status
