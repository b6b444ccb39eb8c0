/*
 * test_count_range -- a key range's entries counted (storage/count_range.c,
 * dj_count_range), and the covered counts that use it:
 *
 *  - over every pair of bounds (none, inside, between the values, past
 *    them, another type's, one an entry's whole key is a prefix of;
 *    exclusive and inclusive) on an index holding
 *    ints, doubles, strings, nulls and missing fields, the count is the
 *    number of keys a plain walk finds between the same bounds, whatever
 *    the sizes of the first walk and of the chunks the two walkers claim
 *    (down to one key: every chunk a race between them);
 *  - a long range is split between the caller and the helper (the helper
 *    counts some of it) in a read transaction;
 *  - in a write transaction with its own uncommitted inserts the count
 *    sees them, and no helper (it could not) counts any;
 *  - in a snapshot that a later commit left behind, the count is the
 *    snapshot's, and no helper (it would see the newer one) counts any;
 *  - with half of LMDB's reader slots in use, no helper takes one;
 *  - through the count command, past the default first walk, a covered
 *    count is the count of the documents a collection scan matches; so is
 *    one over a record-keyed index (storage/ridkey.c), which has no
 *    entries (its records counted), and over the same index turned plain.
 *
 * https://www.mongodb.com/docs/manual/reference/command/count/#accuracy-and-sharded-clusters
 * (a count on a standalone is exact)
 */
#include <stdlib.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"
#include "dj_storage.h"

static void
run (dj_engine_t *e, const char *json)
{
   bson_t *cmd = J (json), reply;
   dj_engine_run_command (e, "test", cmd, &reply);
   bson_destroy (&reply);
   bson_destroy (cmd);
}

/* n documents into coll, document i made by mk(i, d). */
static void
insert_many (dj_engine_t *e, dj_engine_txn_t *t, const char *coll, int from, int n, void (*mk) (int, bson_t *))
{
   for (int lo = from; lo < from + n; lo += 5000) {
      bson_t *ins = bson_new (), arr, reply;
      BSON_APPEND_UTF8 (ins, "insert", coll);
      BSON_APPEND_ARRAY_BEGIN (ins, "documents", &arr);
      for (int i = lo; i < from + n && i < lo + 5000; i++) {
         char k[16];
         bson_t d;
         snprintf (k, sizeof k, "%d", i - lo);
         BSON_APPEND_DOCUMENT_BEGIN (&arr, k, &d);
         BSON_APPEND_INT32 (&d, "_id", i);
         mk (i, &d);
         bson_append_document_end (&arr, &d);
      }
      bson_append_array_end (ins, &arr);
      dj_engine_run_command_in (e, t, "test", ins, &reply);
      bson_destroy (&reply);
      bson_destroy (ins);
   }
}

/* ints, doubles between them, strings, nulls and missing fields */
static void
mixed (int i, bson_t *d)
{
   switch (i % 11) {
   case 3: BSON_APPEND_DOUBLE (d, "a", i % 50 + 0.5); break;
   case 5: BSON_APPEND_NULL (d, "a"); break;
   case 7: break;
   case 9: {
      char s[16];
      snprintf (s, sizeof s, "s%d", i % 13);
      BSON_APPEND_UTF8 (d, "a", s);
      break;
   }
   default: BSON_APPEND_INT32 (d, "a", i % 50);
   }
}

static void
ints (int i, bson_t *d)
{
   BSON_APPEND_INT32 (d, "a", i % 100);
}

/* ids 1, 4, 7, ...: the record ids of a record-keyed index, with gaps */
static void
spaced_ids (int i, bson_t *d)
{
   BSON_APPEND_INT32 (d, "id", 3 * i + 1);
}

/* The keys of index prefix id in the bounds, found by a walk of them all. */
static int64_t
walk_count (dj_ctx_t *ctx, uint64_t id, const dj_buf_t *lo, bool lo_skip, const dj_buf_t *hi, bool hi_incl)
{
   dj_walk_t w;
   dj_buf_t p;
   bson_error_t err;
   int64_t n = 0;
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, id);
   if (!dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, &err)) {
      return -1;
   }
   while (dj_walk_next (&w)) {
      const uint8_t *key = (const uint8_t *) w.k.mv_data + 8;
      size_t klen = w.k.mv_size - 8;
      if (lo) {
         size_t m = klen < lo->len ? klen : lo->len;
         int c = memcmp (key, lo->data, m);
         if (c < 0 || (c == 0 && klen < lo->len) || (lo_skip && c == 0)) {
            continue;
         }
      }
      if (hi) {
         size_t m = klen < hi->len ? klen : hi->len;
         int c = memcmp (key, hi->data, m);
         if (c > 0 || (c == 0 && klen >= hi->len && !hi_incl)) {
            continue;
         }
      }
      n++;
   }
   dj_walk_close (&w, "test walk", &err);
   dj_buf_cleanup (&p);
   return n;
}

static uint64_t
index_id (dj_ctx_t *ctx, const char *coll)
{
   bson_error_t err;
   dj_coll_t *c = dj_coll_load (ctx, "test", coll, &err);
   uint64_t id = 0;
   for (int i = 0; c && i < c->nindexes; i++) {
      if (!c->indexes[i].is_id) {
         id = c->indexes[i].id;
      }
   }
   dj_coll_free (c);
   return id;
}

/* Counts [lo, hi) of ix in ctx by both ways; *helped: the helper's part. */
static bool
same (dj_ctx_t *ctx, uint64_t ix, const dj_buf_t *lo, bool lo_skip, const dj_buf_t *hi, bool hi_incl, size_t serial,
      size_t chunk, int64_t *n, int64_t *helped)
{
   bson_error_t err;
   dj_count_range_t r = {.id = ix, .lo = lo, .hi = hi, .lo_skip = lo_skip, .hi_incl = hi_incl, .serial_keys = serial,
                         .chunk_keys = chunk, .helped = helped};
   int64_t want = walk_count (ctx, ix, lo, lo_skip, hi, hi_incl);
   *n = -2;
   if (!dj_count_range (ctx, &r, n, &err)) {
      printf ("dj_count_range: %s\n", err.message);
      return false;
   }
   if (*n != want) {
      printf ("counted %lld, the walk %lld (serial %zu, chunk %zu)\n", (long long) *n, (long long) want, serial, chunk);
   }
   return *n == want;
}

/* The whole index counted 20 times in chunks of 1 to 3 keys (each chunk a
 * race between the walkers): whether each count was `want`; *most: the
 * most the helper counted. */
static bool
whole_counts (dj_ctx_t *ctx, uint64_t ix, int64_t want, int64_t *most)
{
   bool exact = true;
   int64_t n, helped;
   *most = 0;
   for (int round = 0; round < 20; round++) {
      exact &= same (ctx, ix, NULL, false, NULL, false, 1, 1 + round % 3, &n, &helped) && n == want;
      *most = helped > *most ? helped : *most;
   }
   return exact;
}

static int64_t
count_cmd (dj_engine_t *e, const char *json)
{
   bson_t *cmd = J (json), reply;
   bson_iter_t it;
   int64_t n = -1;
   dj_engine_run_command (e, "test", cmd, &reply);
   if (bson_iter_init_find (&it, &reply, "n")) {
      n = bson_iter_as_int64 (&it);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return n;
}

int
main (void)
{
   char dir[] = "/tmp/djongo-count-range-XXXXXX";
   bson_error_t err;
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      return 2;
   }
   run (e, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\"}]}");
   insert_many (e, NULL, "c", 0, 3000, mixed);

   /* ---- every pair of bounds, every split ---- */
   bson_value_t vals[7] = {{.value_type = BSON_TYPE_INT32}, {.value_type = BSON_TYPE_INT32},
                           {.value_type = BSON_TYPE_DOUBLE}, {.value_type = BSON_TYPE_INT32},
                           {.value_type = BSON_TYPE_INT32}, {.value_type = BSON_TYPE_NULL}};
   vals[0].value.v_int32 = 0;
   vals[1].value.v_int32 = 10;
   vals[2].value.v_double = 25.5;
   vals[3].value.v_int32 = 49;
   vals[4].value.v_int32 = 1000;
   vals[6].value_type = BSON_TYPE_UTF8;
   vals[6].value.v_utf8.str = "s5";
   vals[6].value.v_utf8.len = 2;
   dj_buf_t keys[8];
   for (int i = 0; i < 7; i++) {
      dj_buf_init (&keys[i]);
      dj_key_append (&keys[i], &vals[i], false);
   }
   const size_t splits[][2] = {{0, 0}, {1, 1}, {1, 2}, {3, 5}, {2, 64}, {100, 3}};
   dj_ctx_t ctx = {0};
   CHECK (dj_txn_begin (e, false, &ctx, &err), "read");
   uint64_t ix = index_id (&ctx, "c");
   CHECK (ix, "the index a_1");
   /* a bound one entry's whole key (value and record id) is a prefix of:
    * that entry lies below it */
   dj_buf_init (&keys[7]);
   {
      dj_walk_t w;
      dj_buf_t p;
      dj_buf_init (&p);
      dj_buf_put_u64be (&p, ix);
      CHECK (dj_walk_open (&w, &ctx, e->dbi_data, p.data, p.len, 1, &err), "walk");
      for (int i = 0; i < 1000 && dj_walk_next (&w); i++) {
         keys[7].len = 0;
         dj_buf_append (&keys[7], (const uint8_t *) w.k.mv_data + 8, w.k.mv_size - 8);
      }
      dj_walk_close (&w, "test walk", &err);
      dj_buf_putc (&keys[7], 0);
      dj_buf_cleanup (&p);
   }
   int bad = 0, tried = 0;
   for (int l = -1; l < 8; l++) {
      for (int h = -1; h < 8; h++) {
         for (int flags = 0; flags < 4; flags++) {
            for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
               int64_t n, helped;
               tried++;
               bad += !same (&ctx, ix, l < 0 ? NULL : &keys[l], flags & 1, h < 0 ? NULL : &keys[h], flags & 2,
                             splits[s][0], splits[s][1], &n, &helped);
            }
         }
      }
   }
   CHECK (bad == 0, "%d of %d bounds and splits counted as the walk counts", bad, tried);

   /* ---- a long range split between the two walkers ---- */
   int64_t n, helped, most = 0;
   bool exact = true;
   for (int tries = 0; tries < 10 && exact && most == 0; tries++) {
      exact = whole_counts (&ctx, ix, 3000, &most);
   }
   CHECK (exact, "the whole index: 3000 keys each time");
   CHECK (most > 0 && most < 3000, "the helper counted part of it (at most %lld)", (long long) most);
   dj_txn_abort (&ctx);

   /* ---- a write transaction's own inserts ---- */
   dj_engine_txn_t *t = dj_engine_txn_begin (e, NULL, &err), *saved;
   CHECK (t, "begin");
   insert_many (e, t, "c", 3000, 500, mixed);
   CHECK (dj_txn_enter (e, t, &saved, &err), "enter");
   CHECK (dj_txn_begin (e, false, &ctx, &err), "a read in it");
   exact = whole_counts (&ctx, ix, 3500, &most);
   exact &= same (&ctx, ix, &keys[1], false, &keys[3], true, 1, 2, &n, &helped);
   most = helped > most ? helped : most;
   CHECK (exact, "its own 500 inserts counted (3500 keys)");
   CHECK (most == 0, "no helper counted in a write transaction (%lld)", (long long) most);
   dj_txn_abort (&ctx);
   dj_txn_leave (saved);
   dj_engine_txn_abort (t);

   /* ---- a snapshot left behind by a later commit ---- */
   t = dj_engine_txn_begin_snapshot (e, &err);
   CHECK (t, "snapshot");
   CHECK (dj_txn_enter (e, t, &saved, &err), "enter");
   CHECK (dj_txn_begin (e, false, &ctx, &err), "a read in it");
   CHECK (same (&ctx, ix, NULL, false, NULL, false, 1, 1, &n, &helped) && n == 3000, "the snapshot's 3000");
   dj_txn_abort (&ctx);
   dj_txn_leave (saved);
   insert_many (e, NULL, "c", 3000, 700, mixed); /* committed outside it */
   CHECK (dj_txn_enter (e, t, &saved, &err), "enter again");
   CHECK (dj_txn_begin (e, false, &ctx, &err), "a read in it");
   exact = whole_counts (&ctx, ix, 3000, &most);
   CHECK (exact, "still the snapshot's 3000, not 3700");
   CHECK (most == 0, "no helper counted in an older snapshot (%lld)", (long long) most);
   dj_txn_abort (&ctx);
   dj_txn_leave (saved);
   dj_engine_txn_abort (t);
   for (int i = 0; i < 8; i++) {
      dj_buf_cleanup (&keys[i]);
   }

   /* ---- covered counts through the count command, past the first walk ---- */
   run (e, "{\"createIndexes\": \"big\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\"}]}");
   insert_many (e, NULL, "big", 0, 80000, ints);
   insert_many (e, NULL, "big", 80000, 2000, mixed);
   static const char *filters[] = {
      "{\"a\": {\"$lt\": 50}}", "{\"a\": {\"$gte\": 3}}", "{\"a\": {\"$gt\": 3, \"$lte\": 97}}",
      "{\"a\": {\"$lte\": 99.5}}", "{\"a\": null}", "{\"a\": {\"$in\": [3, 7, 7.5]}}", "{\"a\": {\"$gte\": \"s\"}}",
      "{\"a\": 7}", "{\"a\": {\"$gt\": -1e300}}", "{}",
   };
   for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
      char *by_index = bson_strdup_printf ("{\"count\": \"big\", \"query\": %s}", filters[f]);
      char *by_docs = bson_strdup_printf ("{\"count\": \"big\", \"query\": %s, \"hint\": {\"$natural\": 1}}", filters[f]);
      int64_t a = count_cmd (e, by_index), b = count_cmd (e, by_docs);
      CHECK (a == b && a >= 0, "%s: %lld through the index, %lld by the documents", filters[f], (long long) a,
             (long long) b);
      bson_free (by_index);
      bson_free (by_docs);
   }
   CHECK (count_cmd (e, "{\"count\": \"big\", \"query\": {\"a\": {\"$gte\": 0}}}") > 32768,
          "a range longer than the first walk");
   /* an array makes the index multikey: a document once, however many keys */
   run (e, "{\"insert\": \"big\", \"documents\": [{\"_id\": -1, \"a\": [1, 2, 3, 60]}]}");
   CHECK (count_cmd (e, "{\"count\": \"big\", \"query\": {\"a\": {\"$lt\": 50}}}") ==
             count_cmd (e, "{\"count\": \"big\", \"query\": {\"a\": {\"$lt\": 50}}, \"hint\": {\"$natural\": 1}}"),
          "multikey: as the documents count");

   /* ---- a record-keyed index (storage/ridkey.c): no entries of its own,
    * its covered counts count the records between the ids its bounds
    * stand for, past the first walk too; the same once it turned plain ---- */
   run (e, "{\"createIndexes\": \"keyed\", \"indexes\": [{\"key\": {\"id\": 1}, \"name\": \"id_pk\", "
           "\"unique\": true, \"djongoRecordKeyed\": true}]}");
   insert_many (e, NULL, "keyed", 0, 40000, spaced_ids);
   static const char *keyed_filters[] = {
      "{\"id\": {\"$lt\": 50000}}", "{\"id\": {\"$gte\": 7}}", "{\"id\": {\"$gt\": 7, \"$lte\": 90001}}",
      "{\"id\": {\"$gte\": 2.5, \"$lt\": 100000.5}}", "{\"id\": {\"$gt\": 4, \"$lt\": 7}}", "{\"id\": 7}",
      "{\"id\": 8}", "{\"id\": {\"$in\": [1, 4, 4.0, 5, 119998]}}", "{\"id\": {\"$gt\": -1e300}}",
      "{\"id\": {\"$lt\": \"a\"}}", "{\"id\": {\"$gt\": 1e300}}", "{\"id\": {\"$gte\": 1}}", "{}",
   };
   for (int turned = 0; turned < 2; turned++) {
      for (size_t f = 0; f < sizeof keyed_filters / sizeof keyed_filters[0]; f++) {
         char *by_index = bson_strdup_printf ("{\"count\": \"keyed\", \"query\": %s}", keyed_filters[f]);
         char *by_docs =
            bson_strdup_printf ("{\"count\": \"keyed\", \"query\": %s, \"hint\": {\"$natural\": 1}}", keyed_filters[f]);
         int64_t a = count_cmd (e, by_index), b = count_cmd (e, by_docs);
         CHECK (a == b && a >= 0, "record-keyed%s, %s: %lld through the index, %lld by the documents",
                turned ? " turned plain" : "", keyed_filters[f], (long long) a, (long long) b);
         bson_free (by_index);
         bson_free (by_docs);
      }
      CHECK (count_cmd (e, "{\"count\": \"keyed\", \"query\": {\"id\": {\"$gte\": 1}}}") == 40000 + turned,
             "record-keyed%s: every record, a range longer than the first walk", turned ? " turned plain" : "");
      CHECK (count_cmd (e, "{\"count\": \"keyed\", \"query\": {\"id\": {\"$gt\": 100}}, \"limit\": 5}") == 5,
             "record-keyed%s: a count's limit", turned ? " turned plain" : "");
      /* a document without an integer id turns the index plain (ridkey.c) */
      run (e, "{\"insert\": \"keyed\", \"documents\": [{\"_id\": -1, \"id\": 2.5}]}");
   }

   /* ---- half the reader table in use: no helper takes a slot ---- */
   MDB_txn *readers[260];
   int nreaders = 0;
   while (nreaders < 260 && mdb_txn_begin (e->env, NULL, MDB_RDONLY, &readers[nreaders]) == 0) {
      nreaders++;
   }
   CHECK (nreaders == 260, "260 readers open (%d)", nreaders);
   CHECK (dj_txn_begin (e, false, &ctx, &err), "read");
   exact = whole_counts (&ctx, ix, 3700, &most);
   CHECK (exact && most == 0, "counted alone beside 260 readers (the helper counted %lld)", (long long) most);
   dj_txn_abort (&ctx);
   while (nreaders) {
      mdb_txn_abort (readers[--nreaders]);
   }
   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("count_range");
}
