/*
 * dj_buf.h -- a growable byte buffer (the sds of this project, much smaller).
 *
 * Ownership: a dj_buf_t owns `data`; dj_buf_cleanup() frees it. The struct
 * itself is caller storage (stack or embedded): dj_buf_init / dj_buf_cleanup.
 * Appends abort() on out-of-memory, as libbson's allocator does: a half-built
 * key or document is never handed on.
 */
#ifndef DJ_BUF_H
#define DJ_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
   uint8_t *data;
   size_t len;
   size_t cap;
} dj_buf_t;

void dj_buf_init (dj_buf_t *b);
void dj_buf_cleanup (dj_buf_t *b);
/* An owned array of n buffers: each cleaned up, then the array freed. */
void dj_bufs_free (dj_buf_t *v, size_t n);
void dj_buf_reserve (dj_buf_t *b, size_t extra);
void dj_buf_append (dj_buf_t *b, const void *p, size_t n);
static inline void
dj_buf_putc (dj_buf_t *b, uint8_t c)
{
   if (b->len == b->cap) {
      dj_buf_reserve (b, 1);
   }
   b->data[b->len++] = c;
}
/* Big-endian fixed-width appends (order-preserving for unsigned values). */
void dj_buf_put_u64be (dj_buf_t *b, uint64_t v);
void dj_buf_put_u32be (dj_buf_t *b, uint32_t v);

/* A uint64 written big-endian over 8 bytes at p (a key built in place), read. */
void dj_u64be_write (uint8_t *p, uint64_t v);
uint64_t dj_u64be_read (const uint8_t *p);
/* Little-endian int32s, BSON's and the wire protocol's: appended, written
 * over 4 bytes at p (a length patched in once known), read. */
void dj_buf_put_u32le (dj_buf_t *b, uint32_t v);
void dj_le32_write (uint8_t *p, uint32_t v);
int32_t dj_le32_read (const uint8_t *p);

/* The l bytes at s copied to w when they are few, as a rule (a field's
 * name, a short value or text): overlapping moves, not a call to memcpy. */
static inline void
dj_copy_short (uint8_t *w, const uint8_t *s, size_t l)
{
   if (l > 16) {
      memcpy (w, s, l);
   } else if (l >= 8) {
      memcpy (w, s, 8);
      memcpy (w + l - 8, s + l - 8, 8);
   } else if (l >= 4) {
      memcpy (w, s, 4);
      memcpy (w + l - 4, s + l - 4, 4);
   } else if (l) {
      /* 1 to 3 bytes: the first, the middle and the last (one or two of them the same) */
      w[0] = s[0];
      w[l / 2] = s[l / 2];
      w[l - 1] = s[l - 1];
   }
}

/* Room for element n of the growable array v (capacity cap, any integer
 * types): when it is full the capacity doubles, starting at `first`. v is
 * bson_realloc'd, so pointers into it do not survive the call. */
#define DJ_GROW(v, n, cap, first)                                  \
   do {                                                            \
      if ((size_t) (n) >= (size_t) (cap)) {                        \
         (cap) = (cap) ? (cap) * 2 : (first);                      \
         (v) = bson_realloc ((v), sizeof *(v) * (size_t) (cap));   \
      }                                                            \
   } while (0)

/* bson_free()s each of the n pointers at v (a NULL one is skipped, as
 * bson_free does): what a struct owns, usually the struct last. */
void dj_free_n (void *const *v, size_t n);
/* An owned array of n owned strings (or other bson_malloc'd pointers), with them. */
void dj_strv_free (char **v, int n);
/* DJ_FREE (a, b, c): dj_free_n over the pointers given, in that order. */
#define DJ_FREE(...) \
   dj_free_n ((void *const[]) {__VA_ARGS__}, sizeof ((void *const[]) {__VA_ARGS__}) / sizeof (void *))

#endif
