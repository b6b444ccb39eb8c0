/* dj_buf.c -- see dj_buf.h. */
#include "dj_buf.h"

#include <bson/bson.h>
#include <stdlib.h>

void
dj_buf_init (dj_buf_t *b)
{
   b->data = NULL;
   b->len = 0;
   b->cap = 0;
}

void
dj_buf_cleanup (dj_buf_t *b)
{
   bson_free (b->data);
   dj_buf_init (b);
}

void
dj_free_n (void *const *v, size_t n)
{
   for (size_t i = 0; i < n; i++) {
      bson_free (v[i]);
   }
}

void
dj_strv_free (char **v, int n)
{
   dj_free_n ((void *const *) v, n > 0 ? (size_t) n : 0); /* char * and void * share a representation (C11 6.2.5) */
   bson_free (v);
}

void
dj_bufs_free (dj_buf_t *v, size_t n)
{
   for (size_t i = 0; i < n; i++) {
      dj_buf_cleanup (&v[i]);
   }
   bson_free (v);
}

void
dj_buf_reserve (dj_buf_t *b, size_t extra)
{
   size_t want = b->len + extra;

   if (want <= b->cap) {
      return;
   }
   size_t cap = b->cap ? b->cap : 64;
   while (cap < want) {
      cap *= 2;
   }
   b->data = bson_realloc (b->data, cap); /* aborts on OOM */
   b->cap = cap;
}

void
dj_buf_append (dj_buf_t *b, const void *p, size_t n)
{
   if (!n) {
      return;
   }
   dj_buf_reserve (b, n);
   memcpy (b->data + b->len, p, n);
   b->len += n;
}

/* (written in place: index keys put two or three of these each, a
 * statement's deletes thousands of keys) */
void
dj_buf_put_u64be (dj_buf_t *b, uint64_t v)
{
   dj_buf_reserve (b, 8);
   dj_u64be_write (b->data + b->len, v);
   b->len += 8;
}

void
dj_u64be_write (uint8_t *p, uint64_t v)
{
   p[0] = (uint8_t) (v >> 56);
   p[1] = (uint8_t) (v >> 48);
   p[2] = (uint8_t) (v >> 40);
   p[3] = (uint8_t) (v >> 32);
   p[4] = (uint8_t) (v >> 24);
   p[5] = (uint8_t) (v >> 16);
   p[6] = (uint8_t) (v >> 8);
   p[7] = (uint8_t) v;
}

void
dj_buf_put_u32be (dj_buf_t *b, uint32_t v)
{
   uint8_t out[4] = {(uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v};
   dj_buf_append (b, out, 4);
}

void
dj_le32_write (uint8_t *p, uint32_t v)
{
   p[0] = (uint8_t) v;
   p[1] = (uint8_t) (v >> 8);
   p[2] = (uint8_t) (v >> 16);
   p[3] = (uint8_t) (v >> 24);
}

void
dj_buf_put_u32le (dj_buf_t *b, uint32_t v)
{
   dj_buf_reserve (b, 4);
   dj_le32_write (b->data + b->len, v);
   b->len += 4;
}

int32_t
dj_le32_read (const uint8_t *p)
{
   return (int32_t) ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
}

uint64_t
dj_u64be_read (const uint8_t *p)
{
   uint64_t v = 0;
   for (int i = 0; i < 8; i++) {
      v = (v << 8) | p[i];
   }
   return v;
}
