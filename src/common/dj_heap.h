/*
 * dj_heap.h -- the one step a binary heap needs besides its array: an
 * element moved down to its place. The array is the caller's (n elements
 * of `size` bytes at base); the caller says which of two elements belongs
 * nearer the root (`above`), so any element type and order serves: a
 * top-k's max-heap of results (commands/cmd_read.c, aggregation/topk.c), a
 * k-way merge's heap of runs (storage/spill.c).
 */
#ifndef DJ_HEAP_H
#define DJ_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Moves element i of the heap [0, n) down until neither child belongs above it. */
static inline void
dj_heap_sift_down (void *base, size_t size, size_t n, size_t i, bool (*above) (void *ctx, const void *a, const void *b),
                   void *ctx)
{
   uint8_t *v = base;
   for (;;) {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < n && above (ctx, v + l * size, v + m * size)) {
         m = l;
      }
      if (r < n && above (ctx, v + r * size, v + m * size)) {
         m = r;
      }
      if (m == i) {
         return;
      }
      for (size_t b = 0; b < size; b++) { /* swap i and m */
         uint8_t t = v[i * size + b];
         v[i * size + b] = v[m * size + b];
         v[m * size + b] = t;
      }
      i = m;
   }
}

#endif
