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
/* 64-byte aligned; NULL only when the system is out of memory. */
void *duet_arena_alloc(duet_arena *a, size_t bytes);
void *duet_arena_calloc(duet_arena *a, size_t bytes);
void duet_arena_reset(duet_arena *a);
void duet_arena_free(duet_arena *a);

#endif
