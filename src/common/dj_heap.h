/*
 * dj_heap.h -- the one step a binary heap needs besides its array: an
 * element moved down to its place. The array is the caller's; the caller
 * says which of two elements belongs nearer the root (`above`) and swaps
 * them (`swap`), so any element type and order serves: a top-k's max-heap
 * of results (commands/cmd_read.c), a k-way merge's heap of runs
 * (storage/spill.c).
 */
#ifndef DJ_HEAP_H
#define DJ_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* Moves element i of the heap [0, n) down until neither child belongs above it. */
static inline void
dj_heap_sift_down (void *ctx, size_t n, size_t i, bool (*above) (void *ctx, size_t a, size_t b),
                   void (*swap) (void *ctx, size_t a, size_t b))
{
   for (;;) {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < n && above (ctx, l, m)) {
         m = l;
      }
      if (r < n && above (ctx, r, m)) {
         m = r;
      }
      if (m == i) {
         return;
      }
      swap (ctx, i, m);
      i = m;
   }
}

#endif
