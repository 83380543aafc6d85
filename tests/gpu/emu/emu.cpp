// The launch loop of the host emulation (emu.h): the CUDA threads of a block are fibers
// (ucontext) of the launching host thread, run in turn; one that waits at a barrier yields to
// the next. (Earlier this made one OS thread per CUDA thread, and the barriers' wake-ups of
// hundreds of threads on a few cores made a training step take minutes.)
#include "emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>

emu_idx threadIdx, blockIdx;
unsigned emu_linear;
emu_idx blockDim, gridDim;
alignas(16) unsigned char emu_smem[1 << 20];
emu_barrier *emu_block_bar;
std::vector<std::unique_ptr<emu_warp>> emu_warps;

namespace {
/* Kernels keep arrays of registers (attention's accumulators): a generous stack, which the
 * kernel only touches as deep as it goes. */
constexpr size_t STACK = 512 << 10;

struct fiber {
  ucontext_t ctx;
  void *stack = nullptr;
  bool done = false;
  emu_idx idx;
};
std::vector<fiber> fibers;
ucontext_t sched;
unsigned running;
const std::function<void()> *cur_body;

void fiber_main() {
  (*cur_body)();
  fibers[running].done = true;
  /* Returning switches to uc_link (the scheduler). */
}

void resume(unsigned i) {
  running = i;
  emu_linear = i;
  threadIdx = fibers[i].idx;
  if (swapcontext(&sched, &fibers[i].ctx)) {
    perror("emu: swapcontext");
    abort();
  }
}
}  // namespace

void emu_barrier::arrive_and_wait() {
  unsigned g = gen;
  if (++count == n) {
    count = 0;
    gen++;
    return;
  }
  unsigned me = running;
  while (gen == g)
    if (swapcontext(&fibers[me].ctx, &sched)) {
      perror("emu: swapcontext");
      abort();
    }
  /* Back from the scheduler, which set this fiber's indices again. */
}

void emu_run(dim3 g, dim3 b, const std::function<void()> &body) {
  unsigned n = b.x * b.y * b.z;
  blockDim = {b.x, b.y, b.z};
  gridDim = {g.x, g.y, g.z};
  emu_barrier blk;
  blk.n = n;
  emu_block_bar = &blk;
  emu_warps.clear();
  for (unsigned i = 0; i < (n + 31) / 32; i++) {
    emu_warps.push_back(std::make_unique<emu_warp>());
    emu_warps.back()->bar.n = n - 32 * i < 32 ? n - 32 * i : 32;
  }
  while (fibers.size() < n) {
    fibers.emplace_back();
    fibers.back().stack = malloc(STACK);
    if (!fibers.back().stack) {
      fprintf(stderr, "emu: out of memory for fiber stacks\n");
      abort();
    }
  }
  cur_body = &body;
  for (unsigned t = 0; t < n; t++) fibers[t].idx = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
  for (unsigned z = 0; z < g.z; z++)
    for (unsigned y = 0; y < g.y; y++)
      for (unsigned x = 0; x < g.x; x++) {
        blockIdx = {x, y, z};
        for (unsigned t = 0; t < n; t++) {
          fiber &f = fibers[t];
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack;
          f.ctx.uc_stack.ss_size = STACK;
          f.ctx.uc_link = &sched;
          makecontext(&f.ctx, fiber_main, 0);
          f.done = false;
        }
        for (unsigned left = n; left;) {
          left = 0;
          for (unsigned t = 0; t < n; t++)
            if (!fibers[t].done) {
              resume(t);
              left += !fibers[t].done;
            }
        }
      }
  emu_block_bar = nullptr;
}
