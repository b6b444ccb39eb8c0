/*
 * dj_keep.c -- objects built from bytes, kept per key (see dj_keep.h).
 */
#include "dj_keep.h"

#include <bson/bson.h>
#include <pthread.h>
#include <string.h>

typedef struct {
   void *obj;    /* owned; NULL: a free slot */
   uint8_t *key; /* owned copy */
   size_t len;
   uint64_t stamp; /* when it was put: the oldest is replaced first */
} slot_t;

struct dj_keep {
   pthread_mutex_t mu; /* guards everything below */
   slot_t *slots;      /* owned array of n */
   int n;
   uint64_t clock;
   dj_keep_free_fn free_fn;
};

dj_keep_t *
dj_keep_new (int slots, dj_keep_free_fn free_fn)
{
   dj_keep_t *keep = bson_malloc0 (sizeof *keep);
   pthread_mutex_init (&keep->mu, NULL);
   keep->slots = bson_malloc0 (sizeof (slot_t) * (size_t) slots);
   keep->n = slots;
   keep->free_fn = free_fn;
   return keep;
}

void
dj_keep_destroy (dj_keep_t *keep)
{
   if (!keep) {
      return;
   }
   for (int i = 0; i < keep->n; i++) {
      if (keep->slots[i].obj) {
         keep->free_fn (keep->slots[i].obj);
      }
      bson_free (keep->slots[i].key);
   }
   bson_free (keep->slots);
   pthread_mutex_destroy (&keep->mu);
   bson_free (keep);
}

void *
dj_keep_take (dj_keep_t *keep, const void *key, size_t len)
{
   void *found = NULL;
   pthread_mutex_lock (&keep->mu);
   for (int i = 0; i < keep->n && !found; i++) {
      slot_t *s = &keep->slots[i];
      if (s->obj && s->len == len && !memcmp (s->key, key, len)) {
         found = s->obj;
         s->obj = NULL;
      }
   }
   pthread_mutex_unlock (&keep->mu);
   return found;
}

void
dj_keep_put (dj_keep_t *keep, const void *key, size_t len, void *obj)
{
   int at = -1, free_at = -1, oldest = 0;
   pthread_mutex_lock (&keep->mu);
   for (int i = 0; i < keep->n; i++) {
      slot_t *s = &keep->slots[i];
      if (s->key && s->len == len && !memcmp (s->key, key, len)) {
         at = i;
         break;
      }
      if (!s->obj && free_at < 0) {
         free_at = i;
      }
      if (s->stamp < keep->slots[oldest].stamp) {
         oldest = i;
      }
   }
   at = at >= 0 ? at : free_at >= 0 ? free_at : oldest;
   slot_t *s = &keep->slots[at];
   void *out = s->obj;
   uint8_t *old_key = s->key;
   s->obj = obj;
   s->key = bson_malloc (len ? len : 1);
   memcpy (s->key, key, len);
   s->len = len;
   s->stamp = ++keep->clock;
   pthread_mutex_unlock (&keep->mu);
   /* outside the lock */
   bson_free (old_key);
   if (out) {
      keep->free_fn (out);
   }
}
