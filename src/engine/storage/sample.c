/*
 * sample.c -- records picked at random without reading the collection:
 * $sample's random cursor.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sample/#behavior
 * When $sample is the first stage, its size is under 5% of the documents
 * and the collection holds more than 100, mongod reads records through a
 * random cursor instead of sorting them all by a random key. Here: a
 * random record id between the collection's first and last is drawn, and
 * the first record at or after it taken (wrapping to the first), repeated
 * until `size` different records are had (past the last record -- only if
 * records went meanwhile -- it wraps to the first). Like WiredTiger's
 * random cursor the draw is even when record ids are dense; a record after
 * a run of deleted ids is likelier.
 */
#include "storage-private.h"

#include <inttypes.h>
#include <sys/random.h>
#include <time.h>

/* A record id range's ends: the collection's first and last record ids
 * (both 0 when it is empty). */
static bool
rid_bounds (dj_ctx_t *ctx, const dj_coll_t *c, uint64_t *first, uint64_t *last, bson_error_t *error)
{
   dj_buf_t p;
   *first = *last = 0;
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, c->id);
   for (int dir = 1; dir >= -1; dir -= 2) {
      dj_walk_t w;
      if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, dir, error)) {
         dj_buf_cleanup (&p);
         return false;
      }
      if (dj_walk_next (&w) && w.k.mv_size == 16) {
         *(dir > 0 ? first : last) = dj_u64be_read ((uint8_t *) w.k.mv_data + 8);
      }
      if (!dj_walk_close (&w, "record ids", error)) {
         dj_buf_cleanup (&p);
         return false;
      }
   }
   dj_buf_cleanup (&p);
   return true;
}

/* xorshift64*, seeded from the kernel: this call's own generator (no
 * state shared between threads). */
static uint64_t
next_random (uint64_t *s)
{
   *s ^= *s >> 12;
   *s ^= *s << 25;
   *s ^= *s >> 27;
   return *s * 0x2545F4914F6CDD1DULL;
}

bool
dj_record_sample (dj_ctx_t *ctx, dj_coll_t *c, int64_t size, dj_scan_fn fn, void *fnctx, bson_error_t *error)
{
   uint64_t first, last, seed = 0;
   if (!rid_bounds (ctx, c, &first, &last, error)) {
      return false;
   }
   if (!first || size <= 0) {
      return true;
   }
   if (getrandom (&seed, sizeof seed, 0) != (ssize_t) sizeof seed || !seed) {
      seed = (uint64_t) (uintptr_t) &seed ^ (uint64_t) time (NULL) ^ 0x9E3779B97F4A7C15ULL;
   }
   /* the ids taken, in an open-addressing set (0 is never a record id) */
   size_t cap = 64;
   while (cap < (size_t) size * 2) {
      cap *= 2;
   }
   uint64_t *taken = bson_malloc0 (sizeof (uint64_t) * cap);
   dj_walk_t w;
   dj_buf_t p, k;
   dj_buf_init (&p);
   dj_buf_init (&k);
   dj_buf_put_u64be (&p, c->id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
   int64_t got = 0;
   int dups = 0;
   while (ok && got < size) {
      uint64_t rid = first + next_random (&seed) % (last - first + 1);
      dj_record_key (&k, c->id, rid);
      dj_walk_seek (&w, k.data, k.len);
      if (!dj_walk_next (&w)) {
         if (w.rc != MDB_NOTFOUND) {
            break;
         }
         dj_walk_seek (&w, p.data, p.len); /* past the last: the first */
         if (!dj_walk_next (&w)) {
            break;
         }
      }
      rid = dj_u64be_read ((uint8_t *) w.k.mv_data + 8);
      size_t h = (size_t) (rid * 0x9E3779B97F4A7C15ULL) & (cap - 1);
      while (taken[h] && taken[h] != rid) {
         h = (h + 1) & (cap - 1);
      }
      if (taken[h]) {
         /* as mongod's $sampleFromRandomCursor, which gives up after 100 in a row */
         if (++dups >= 100) {
            ok = dj_err (error, 28799, "$sample stage could not find a non-duplicate document after 100 while using a random cursor. This is likely a sporadic failure, please try again.");
         }
         continue;
      }
      dups = 0;
      taken[h] = rid;
      got++;
      bson_t doc;
      if (!bson_init_static (&doc, w.v.mv_data, w.v.mv_size)) {
         ok = dj_err (error, DJ_InternalError, "corrupt record %" PRIu64 " in %s", rid, c->ns);
         break;
      }
      if (!fn (rid, &doc, -1, fnctx)) {
         break;
      }
   }
   if (w.cur) {
      w.rc = w.rc == MDB_NOTFOUND ? 0 : w.rc;
      ok = dj_walk_close (&w, "sample", error) && ok;
   }
   dj_buf_cleanup (&p);
   dj_buf_cleanup (&k);
   bson_free (taken);
   return ok;
}
