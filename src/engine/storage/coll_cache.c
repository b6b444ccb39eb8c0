/*
 * coll_cache.c -- collections built from their catalog entries, kept per
 * engine handle for the reads that follow.
 *
 * Every find, count, distinct and aggregate starts by building its
 * collection (store.c, coll_from_entry): the options, every index's spec
 * (paths, collation, partial filter) and the validator -- for a point read,
 * more work than the read itself. What it builds depends on nothing but
 * db, name and the entry's bytes, so a collection built once serves every
 * later read that finds the very same bytes in its own snapshot: any
 * change (an index made or dropped, a multikey flag set, collMod, a drop
 * and re-create, which takes a new id) changes the bytes, and the entry
 * no longer matches. No invalidation is needed, and a reader in an older
 * snapshot still gets the collection as its snapshot has it.
 *
 * A kept collection is handed to one reader at a time: take removes it
 * from the cache, put returns it (the reader may evaluate its matchers,
 * which is not safe from two threads at once). Two readers of one
 * collection at the same time: the second builds its own, and whichever
 * is put back last stays. The cache holds at most DJ_COLL_CACHE_SLOTS
 * collections, one per namespace; a full cache replaces its oldest.
 *
 * Locking: the cache's mutex guards its slots; nothing else is shared.
 * Ownership: the cache owns what it holds (freed by dj_coll_cache_free,
 * at dj_storage_close); a taken collection is the taker's.
 */
#include "storage-private.h"

#include <string.h>

#define DJ_COLL_CACHE_SLOTS 16

struct dj_coll_cache {
   pthread_mutex_t mu;
   dj_coll_t *slots[DJ_COLL_CACHE_SLOTS]; /* owned, NULL when free */
   uint64_t stamp[DJ_COLL_CACHE_SLOTS];   /* when each was put: the oldest goes first */
   uint64_t clock;
};

struct dj_coll_cache *
dj_coll_cache_new (void)
{
   struct dj_coll_cache *cache = bson_malloc0 (sizeof *cache);
   pthread_mutex_init (&cache->mu, NULL);
   return cache;
}

void
dj_coll_cache_free (struct dj_coll_cache *cache)
{
   if (!cache) {
      return;
   }
   for (int i = 0; i < DJ_COLL_CACHE_SLOTS; i++) {
      dj_coll_free (cache->slots[i]);
   }
   pthread_mutex_destroy (&cache->mu);
   bson_free (cache);
}

static bool
same_ns (const dj_coll_t *c, const char *db, const char *name)
{
   return !strcmp (c->name, name) && !strcmp (c->db, db);
}

dj_coll_t *
dj_coll_cache_take (struct dj_coll_cache *cache, const char *db, const char *name, const void *entry, size_t len)
{
   dj_coll_t *found = NULL;
   pthread_mutex_lock (&cache->mu);
   for (int i = 0; i < DJ_COLL_CACHE_SLOTS && !found; i++) {
      dj_coll_t *c = cache->slots[i];
      if (c && c->entry_len == len && same_ns (c, db, name) && !memcmp (c->entry, entry, len)) {
         found = c;
         cache->slots[i] = NULL;
      }
   }
   pthread_mutex_unlock (&cache->mu);
   return found;
}

void
dj_coll_cache_put (struct dj_coll_cache *cache, dj_coll_t *c)
{
   if (!c || !c->entry) {
      dj_coll_free (c);
      return;
   }
   dj_coll_t *out;
   pthread_mutex_lock (&cache->mu);
   /* the namespace's slot (an older build of it goes), else a free one,
    * else the oldest */
   int at = -1, free_at = -1, oldest = 0;
   for (int i = 0; i < DJ_COLL_CACHE_SLOTS; i++) {
      dj_coll_t *s = cache->slots[i];
      if (s && same_ns (s, c->db, c->name)) {
         at = i;
         break;
      }
      if (!s && free_at < 0) {
         free_at = i;
      }
      if (cache->stamp[i] < cache->stamp[oldest]) {
         oldest = i;
      }
   }
   at = at >= 0 ? at : free_at >= 0 ? free_at : oldest;
   out = cache->slots[at];
   cache->slots[at] = c;
   cache->stamp[at] = ++cache->clock;
   pthread_mutex_unlock (&cache->mu);
   dj_coll_free (out); /* outside the lock */
}
