#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static duet_arena_block *block_new(duet_arena *a, size_t size) {
  size = align_up(size);
  duet_arena_block *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->base = aligned_alloc(ARENA_ALIGN, size);
  if (!b->base) {
    free(b);
    return NULL;
  }
  b->size = size;
  b->used = 0;
  b->next = NULL;
  a->capacity += size;
  a->heap_allocs++;
  return b;
}

size_t duet_arena_fold_size(size_t high_water) { return high_water + high_water / 64; }

void duet_arena_init(duet_arena *a, size_t initial_bytes) {
  memset(a, 0, sizeof *a);
  if (initial_bytes) a->head = block_new(a, initial_bytes);
}

void *duet_arena_alloc(duet_arena *a, size_t bytes) {
  size_t need = align_up(bytes ? bytes : 1);
  duet_arena_block *b = a->head;
  if (!b || b->size - b->used < need) {
    /* Grow geometrically so a first step needs only a handful of blocks. */
    size_t size = a->capacity > need ? a->capacity : need;
    if (size < ((size_t)1 << 20)) size = (size_t)1 << 20;
    duet_arena_block *nb = block_new(a, size);
    if (!nb) return NULL;
    nb->next = a->head;
    a->head = nb;
    b = nb;
  }
  void *p = b->base + b->used;
  b->used += need;
  a->used += need;
  if (a->used > a->high_water) a->high_water = a->used;
  return p;
}

void *duet_arena_calloc(duet_arena *a, size_t bytes) {
  void *p = duet_arena_alloc(a, bytes);
  if (p) memset(p, 0, bytes);
  return p;
}

static void free_blocks(duet_arena_block *b) {
  while (b) {
    duet_arena_block *next = b->next;
    free(b->base);
    free(b);
    b = next;
  }
}

void duet_arena_reset(duet_arena *a) {
  if (a->head && a->head->next) {
    /* Several blocks: replace them by one that holds the largest step seen so far. */
    size_t want = duet_arena_fold_size(a->high_water);
    free_blocks(a->head);
    a->head = NULL;
    a->capacity = 0;
    a->head = block_new(a, want);
  } else if (a->head) {
    a->head->used = 0;
  }
  a->used = 0;
}

void duet_arena_free(duet_arena *a) {
  free_blocks(a->head);
  memset(a, 0, sizeof *a);
}
