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
    open(os.path.join(dst, out), 'w').write(s)
EOF

cxx="g++ -std=c++20 -O1 -w -I$out -I$here -I$root -I$cuda/include"
cc="gcc -std=c17 -O1 -w -DDUET_HAVE_CUDA=1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$root -I$root/tests -I$cuda/include"
cc="$cc $(pkg-config --cflags openblas libcjson inih 2>/dev/null || true)"
libs="$(pkg-config --libs openblas libcjson inih 2>/dev/null || echo -lopenblas -lcjson -linih) -lm -lpthread"

$cxx -c "$here/emu.cpp" -o "$out/obj/emu.o"
$cxx -c "$here/fake_backend.cpp" -o "$out/obj/fake_backend.o"
for f in "$out"/core/cuda/*.cpp; do $cxx -c "$f" -o "$out/obj/cu_$(basename "$f" .cpp).o"; done
for f in "$root"/core/*.c "$root"/core/cpu/*.c "$root/tests/testlib.c" "$root/tests/gpu/gpu_test.c"; do
  $cc -c "$f" -o "$out/obj/c_$(basename "$f" .c).o"
done
rm -f "$out/libemu.a"
ar rcs "$out/libemu.a" "$out"/obj/*.o

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for t in "$root"/tests/gpu/test_*.c; do n=$(basename "$t" .c); names+=("${n#test_}"); done
fi
status=0
for n in "${names[@]}"; do
  $cc -c "$root/tests/gpu/test_$n.c" -o "$out/test_$n.o"
  g++ -o "$out/test_$n" "$out/test_$n.o" "$out/libemu.a" $libs
  echo "== $n"
  "$out/test_$n" || status=1
done
exit $status
