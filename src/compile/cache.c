/*
 * cache.c -- the plan cache (dj_compile.h): SQL text -> shared plan.
 *
 * A hash table (open chaining, text_hash) and an LRU list, both
 * under one mutex held only for the lookup or the insert: parsing happens
 * outside it, so two threads missing on the same text both parse and the
 * second insert finds the first's entry and drops its own copy.
 * Plans are immutable; each carries a reference count (cache: one; each
 * dj_plan_cache_get: one more) so an evicted plan lives until released.
 */
#include <pthread.h>
#include <string.h>

#include "compile-private.h"


typedef struct entry {
   struct entry *hnext;        /* hash chain */
   struct entry *prev, *next;  /* LRU list, most recent first */
   uint64_t hash;
   char *sql;                  /* owned copy of the text */
   size_t len;
   dj_plan_t *plan;            /* one reference held by the cache */
} entry_t;

struct dj_plan_cache {
   pthread_mutex_t mu;         /* guards everything below */
   entry_t **buckets;
   size_t nbuckets, count, capacity;
   entry_t *head, *tail;
   uint64_t hits, misses;
};

/* The text's hash: FNV-1a's step over 8 bytes at a time (a byte at a time
 * was ~1,200 instructions for a Django get()'s 250 bytes of SQL, on every
 * execution), the last 0..7 bytes a byte each, then a final mix so that
 * the low bits (the bucket) depend on every byte. */
static uint64_t
text_hash (const char *s, size_t n)
{
   uint64_t h = 1469598103934665603ULL, w;
   size_t i = 0;
   for (; i + 8 <= n; i += 8) {
      memcpy (&w, s + i, 8);
      h = (h ^ w) * 1099511628211ULL;
      h ^= h >> 29;
   }
   for (; i < n; i++) {
      h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
   }
   h ^= h >> 33;
   h *= 0xff51afd7ed558ccdULL;
   h ^= h >> 33;
   return h;
}

dj_plan_cache_t *
dj_plan_cache_new (size_t capacity)
{
   dj_plan_cache_t *c = bson_malloc0 (sizeof *c);
   pthread_mutex_init (&c->mu, NULL);
   c->capacity = capacity ? capacity : 512;
   c->nbuckets = 1;
   while (c->nbuckets < c->capacity * 2) {
      c->nbuckets <<= 1;
   }
   c->buckets = bson_malloc0 (sizeof (entry_t *) * c->nbuckets);
   return c;
}

void
dj_plan_release (dj_plan_t *plan)
{
   if (plan && __atomic_sub_fetch (&plan->refs, 1, __ATOMIC_ACQ_REL) == 0) {
      dj_sql_stmt_destroy (plan->stmt);
      bson_free (plan);
   }
}

static void
lru_unlink (dj_plan_cache_t *c, entry_t *e)
{
   if (e->prev) {
      e->prev->next = e->next;
   } else {
      c->head = e->next;
   }
   if (e->next) {
      e->next->prev = e->prev;
   } else {
      c->tail = e->prev;
   }
   e->prev = e->next = NULL;
}

static void
lru_push_front (dj_plan_cache_t *c, entry_t *e)
{
   e->next = c->head;
   e->prev = NULL;
   if (c->head) {
      c->head->prev = e;
   }
   c->head = e;
   if (!c->tail) {
      c->tail = e;
   }
}

static entry_t *
find (dj_plan_cache_t *c, uint64_t h, const char *sql, size_t len)
{
   for (entry_t *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
      if (e->hash == h && e->len == len && !memcmp (e->sql, sql, len)) {
         return e;
      }
   }
   return NULL;
}

/* Removes e from the table and the list; the caller releases e->plan. */
static void
drop (dj_plan_cache_t *c, entry_t *e)
{
   entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
   while (*pp != e) {
      pp = &(*pp)->hnext;
   }
   *pp = e->hnext;
   lru_unlink (c, e);
   c->count--;
}

dj_plan_t *
dj_plan_cache_get (dj_plan_cache_t *c, const char *sql, size_t len, bson_error_t *error)
{
   uint64_t h = text_hash (sql, len);
   pthread_mutex_lock (&c->mu);
   entry_t *e = find (c, h, sql, len);
   if (e) {
      c->hits++;
      lru_unlink (c, e);
      lru_push_front (c, e);
      __atomic_add_fetch (&e->plan->refs, 1, __ATOMIC_RELAXED);
      dj_plan_t *p = e->plan;
      pthread_mutex_unlock (&c->mu);
      return p;
   }
   c->misses++;
   pthread_mutex_unlock (&c->mu);

   dj_plan_t *plan = dj_plan_new (sql, len, error); /* outside the lock */
   if (!plan) {
      return NULL;
   }
   plan->refs = 2; /* the cache's and the caller's */
   entry_t *victim = NULL;
   pthread_mutex_lock (&c->mu);
   entry_t *raced = find (c, h, sql, len);
   if (raced) {
      /* another thread parsed the same text meanwhile: use its plan */
      __atomic_add_fetch (&raced->plan->refs, 1, __ATOMIC_RELAXED);
      dj_plan_t *p = raced->plan;
      pthread_mutex_unlock (&c->mu);
      plan->refs = 1;
      dj_plan_release (plan);
      return p;
   }
   e = bson_malloc0 (sizeof *e);
   e->hash = h;
   e->sql = bson_malloc (len + 1);
   memcpy (e->sql, sql, len);
   e->sql[len] = '\0';
   e->len = len;
   e->plan = plan;
   e->hnext = c->buckets[h & (c->nbuckets - 1)];
   c->buckets[h & (c->nbuckets - 1)] = e;
   lru_push_front (c, e);
   if (++c->count > c->capacity) {
      victim = c->tail;
      drop (c, victim);
   }
   pthread_mutex_unlock (&c->mu);
   if (victim) {
      dj_plan_release (victim->plan);
      bson_free (victim->sql);
      bson_free (victim);
   }
   return plan;
}

void
dj_plan_cache_stats (dj_plan_cache_t *c, uint64_t *hits, uint64_t *misses)
{
   pthread_mutex_lock (&c->mu);
   *hits = c->hits;
   *misses = c->misses;
   pthread_mutex_unlock (&c->mu);
}

void
dj_plan_cache_destroy (dj_plan_cache_t *c)
{
   if (!c) {
      return;
   }
   while (c->head) {
      entry_t *e = c->head;
      drop (c, e);
      dj_plan_release (e->plan);
      bson_free (e->sql);
      bson_free (e);
   }
   bson_free (c->buckets);
   pthread_mutex_destroy (&c->mu);
   bson_free (c);
}
