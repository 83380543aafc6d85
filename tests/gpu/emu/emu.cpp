// The launch loop of the host emulation (emu.h).
#include "emu.h"

#include <atomic>

thread_local emu_idx threadIdx, blockIdx;
thread_local unsigned emu_linear;
emu_idx blockDim, gridDim;
alignas(16) unsigned char emu_smem[1 << 20];
std::barrier<> *emu_block_bar;
std::vector<std::unique_ptr<emu_warp>> emu_warps;

/* One worker per CUDA thread of a block, made once per launch; blocks run one at a time. */
void emu_run(dim3 g, dim3 b, const std::function<void()> &body) {
  unsigned n = b.x * b.y * b.z;
  blockDim = {b.x, b.y, b.z};
  gridDim = {g.x, g.y, g.z};
  std::barrier<> blk(n), start(n + 1), end(n + 1);
  emu_block_bar = &blk;
  emu_warps.clear();
  for (unsigned i = 0; i < (n + 31) / 32; i++) emu_warps.push_back(std::make_unique<emu_warp>());
  emu_idx cur{0, 0, 0};
  std::atomic<bool> done{false};
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < n; t++)
    ts.emplace_back([&, t]() {
      emu_linear = t;
      threadIdx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
      for (;;) {
        start.arrive_and_wait();
        if (done) return;
        blockIdx = cur;
        body();
        end.arrive_and_wait();
      }
    });
  for (unsigned z = 0; z < g.z; z++)
    for (unsigned y = 0; y < g.y; y++)
      for (unsigned x = 0; x < g.x; x++) {
        cur = {x, y, z};
        start.arrive_and_wait();
        end.arrive_and_wait();
      }
  done = true;
  start.arrive_and_wait();
  for (auto &th : ts) th.join();
}
