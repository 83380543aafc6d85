/* A bump allocator for one training or sampling step.
 *
 * Everything a step creates (activation tensors, their gradients, the autograd tape) comes
 * from here, and duet_arena_reset() drops it all at once. The first step may outgrow the
 * first block; the reset after it folds all blocks into one block as large as the step
 * needed, so from the second step on a step of the same shape makes no heap allocation.
 * The counters make that testable. */
#ifndef DUET_CORE_ARENA_H
#define DUET_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct duet_arena_block {
  struct duet_arena_block *next;
  size_t size, used;
  unsigned char *base;
} duet_arena_block;

typedef struct duet_arena {
  duet_arena_block *head; /* current block; older ones follow */
  size_t used;            /* bytes handed out since the last reset, all blocks */
  size_t high_water;      /* most bytes ever handed out between two resets */
  size_t capacity;        /* bytes in all blocks */
  int64_t heap_allocs;    /* blocks allocated so far (ever) */
} duet_arena;

void duet_arena_init(duet_arena *a, size_t initial_bytes);
/* The size of the one block a reset folds several into: the high-water mark and 1/64 more,
 * so that a step a little larger than any before (another task's masks, a last short batch)
 * still fits. Not the blocks' total: they grew geometrically, so their sum can be twice
 * what a step uses, and a block that size may not exist (small.ini at batch 16 on a 24 GB
 * machine: the blocks summed to 27 GB, that one block could not be had, and every step grew
 * the arena again from nothing and faulted all its pages in anew). */
size_t duet_arena_fold_size(size_t high_water);
/* 64-byte aligned; NULL only when the system is out of memory. */
void *duet_arena_alloc(duet_arena *a, size_t bytes);
void *duet_arena_calloc(duet_arena *a, size_t bytes);
void duet_arena_reset(duet_arena *a);
void duet_arena_free(duet_arena *a);

#endif
