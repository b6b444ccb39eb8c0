/*
 * test_keep -- objects built from bytes and kept for the next user of the
 * same bytes (src/common/dj_keep.h), and the engine's two keeps:
 *
 *  - dj_keep: take hands out (and removes) only an object under exactly
 *    the same bytes; put replaces the same key, else fills a free slot,
 *    else the oldest (freed, as replaced objects are);
 *
 * the collections built for reads (storage/store.c, dj_coll_checkout /
 * dj_coll_checkin):
 *
 *  - a second read of an unchanged collection gets the collection the
 *    first one built (the cache is used);
 *  - every change to the catalog entry makes the next read build it again
 *    from the new entry: an index made (and the read sees it), a multikey
 *    flag set by an insert, collMod's validator, a drop and re-create
 *    under the same name (a new id), an index dropped;
 *  - two readers at once each get a collection of their own;
 *  - an insert takes the kept collection and hands it back, its next
 *    record id (good inside its transaction only) forgotten;
 *  - through the commands: a hint on the index made after a find was
 *    cached is honoured, a dropped one refused;
 *
 * and find's projections (commands/cmd_read.c): kept after a find, by the
 * spec's bytes; a find with the same projection gets the same results.
 */
#include <stdlib.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"
#include "dj_storage.h"

static int freed;

static void
count_free (void *obj)
{
   freed++;
   bson_free (obj);
}

static void
test_dj_keep (void)
{
   dj_keep_t *k = dj_keep_new (2, count_free);
   char *a = bson_strdup ("a"), *b = bson_strdup ("b"), *c = bson_strdup ("c");
   CHECK (!dj_keep_take (k, "ka", 2), "nothing kept yet");
   dj_keep_put (k, "ka", 2, a);
   CHECK (!dj_keep_take (k, "kb", 2) && !dj_keep_take (k, "k", 1), "other bytes: nothing");
   CHECK (dj_keep_take (k, "ka", 2) == a, "the same bytes: the object");
   CHECK (!dj_keep_take (k, "ka", 2), "taken: not there for a second taker");
   dj_keep_put (k, "ka", 2, a);
   dj_keep_put (k, "kb", 2, b);
   dj_keep_put (k, "kc", 2, c); /* full: replaces the oldest, a */
   CHECK (freed == 1 && !dj_keep_take (k, "ka", 2), "the oldest replaced and freed (freed %d)", freed);
   CHECK (dj_keep_take (k, "kc", 2) == c, "the newest kept");
   char *b2 = bson_strdup ("b2");
   dj_keep_put (k, "kb", 2, b2); /* the same key: b goes */
   CHECK (freed == 2 && dj_keep_take (k, "kb", 2) == b2, "the same key replaced (freed %d)", freed);
   dj_keep_put (k, "kb", 2, b2);
   dj_keep_put (k, "kc", 2, c);
   dj_keep_destroy (k);
   CHECK (freed == 4, "what it holds freed with it (freed %d)", freed);
}

/* A checkout of test.c in a read transaction of its own, handed back
 * when `keep` is false (then only its address and index count are
 * reported: *nindexes, and *multikey of the index named "a_1"). */
static dj_coll_t *
read_coll (dj_engine_t *e, bool keep, int *nindexes, bool *multikey)
{
   dj_ctx_t ctx = {0};
   bson_error_t err;
   if (!dj_txn_begin (e, false, &ctx, &err)) {
      return NULL;
   }
   dj_coll_t *c = dj_coll_checkout (&ctx, "test", "c", &err);
   dj_txn_abort (&ctx);
   *nindexes = c ? c->nindexes : -1;
   *multikey = false;
   for (int i = 0; c && i < c->nindexes; i++) {
      if (!strcmp (c->indexes[i].name, "a_1")) {
         *multikey = c->indexes[i].multikey;
      }
   }
   if (!keep) {
      dj_coll_checkin (e, c);
   }
   return c;
}

/* Runs a command; true when it answered ok: 1 (and, given `code`, false
 * unless it failed with that code). */
static bool
run (dj_engine_t *e, const char *json, int code)
{
   bson_t *cmd = J (json), reply;
   bson_iter_t it;
   bool ok = dj_engine_run_command (e, "test", cmd, &reply);
   int got = bson_iter_init_find (&it, &reply, "code") ? (int) bson_iter_as_int64 (&it) : 0;
   bson_destroy (&reply);
   bson_destroy (cmd);
   return code ? !ok && got == code : ok;
}

int
main (void)
{
   char dir[] = "/tmp/djongo-keep-XXXXXX";
   int n;
   bool mk;
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      return 2;
   }
   test_dj_keep ();
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"a\": 1}, {\"_id\": 2, \"a\": 2}]}", 0), "insert");

   /* a find's projection is kept by its bytes, and serves the next find */
   bson_t *proj = J ("{\"a\": 1, \"_id\": 0}");
   for (int round = 0; round < 2; round++) {
      bson_t *find = J ("{\"find\": \"c\", \"filter\": {\"_id\": 2}, \"projection\": {\"a\": 1, \"_id\": 0}}"), reply;
      bson_iter_t it, doc;
      dj_engine_run_command (e, "test", find, &reply);
      CHECK (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0", &it) &&
                BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &doc) && bson_iter_next (&doc) &&
                !strcmp (bson_iter_key (&doc), "a") && bson_iter_as_int64 (&doc) == 2 && !bson_iter_next (&doc),
             "the projected document {a: 2}, round %d", round);
      bson_destroy (&reply);
      bson_destroy (find);
   }
   dj_projection_t *kept = dj_keep_take (e->proj_cache, bson_get_data (proj), proj->len);
   CHECK (kept, "the projection kept after the finds");
   dj_keep_put (e->proj_cache, bson_get_data (proj), proj->len, kept);
   bson_destroy (proj);

   dj_coll_t *first = read_coll (e, false, &n, &mk);
   dj_coll_t *second = read_coll (e, false, &n, &mk);
   CHECK (first && second == first && n == 1, "an unchanged collection is built once (n %d)", n);

   /* an insert takes the kept collection and hands it back (a create per
    * row parses no catalog entry), its next record id forgotten: that id
    * holds inside the writing transaction only */
   first = read_coll (e, true, &n, &mk);
   if (first) {
      first->next_rid = 1000; /* (past the last record: the insert's id) */
      dj_coll_checkin (e, first);
   }
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": 9, \"a\": 9}]}", 0), "insert");
   second = read_coll (e, true, &n, &mk);
   CHECK (second == first && second && second->next_rid == 0, "the insert used the kept collection and reset its next id");
   dj_coll_checkin (e, second);
   CHECK (run (e, "{\"delete\": \"c\", \"deletes\": [{\"q\": {\"_id\": 9}, \"limit\": 1}]}", 0), "delete");

   /* a find caches it; the index made next is then seen by the hint */
   CHECK (run (e, "{\"find\": \"c\", \"filter\": {\"a\": 1}}", 0), "find");
   CHECK (run (e, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\"}]}", 0),
          "createIndexes");
   read_coll (e, false, &n, &mk);
   CHECK (n == 2 && !mk, "the index made is in the next read (n %d)", n);
   CHECK (run (e, "{\"find\": \"c\", \"filter\": {\"a\": 1}, \"hint\": \"a_1\"}", 0), "a hint on the new index");
   CHECK (run (e, "{\"count\": \"c\", \"query\": {\"a\": 1}, \"hint\": \"a_1\"}", 0), "count: a hint on the new index");

   /* an array in the indexed field makes the index multikey */
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": 3, \"a\": [5, 6]}]}", 0), "insert an array");
   read_coll (e, false, &n, &mk);
   CHECK (n == 2 && mk, "the multikey flag is in the next read");

   /* collMod's validator: a new entry, so a new build */
   first = read_coll (e, false, &n, &mk);
   CHECK (run (e, "{\"collMod\": \"c\", \"validator\": {\"a\": {\"$exists\": true}}}", 0), "collMod");
   dj_coll_t *after = read_coll (e, true, &n, &mk);
   CHECK (after && after->validator, "the validator is in the next read");
   dj_coll_checkin (e, after);

   /* two readers at once: each its own */
   dj_coll_t *r1 = read_coll (e, true, &n, &mk);
   dj_coll_t *r2 = read_coll (e, true, &n, &mk);
   CHECK (r1 && r2 && r1 != r2, "two readers at once get two collections");
   dj_coll_checkin (e, r1);
   dj_coll_checkin (e, r2);
   dj_coll_checkin (e, NULL);

   /* dropped and made again under the same name: a new id, no index on a */
   CHECK (run (e, "{\"drop\": \"c\"}", 0), "drop");
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"a\": 1}]}", 0), "insert again");
   read_coll (e, false, &n, &mk);
   CHECK (n == 1, "the collection made again has only _id's index (n %d)", n);
   CHECK (run (e, "{\"find\": \"c\", \"filter\": {}, \"hint\": \"a_1\"}", 2), "a hint on the dropped index: BadValue");

   /* an index dropped */
   CHECK (run (e, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\"}]}", 0),
          "createIndexes again");
   CHECK (run (e, "{\"find\": \"c\", \"filter\": {}, \"hint\": \"a_1\"}", 0), "hinted find");
   CHECK (run (e, "{\"dropIndexes\": \"c\", \"index\": \"a_1\"}", 0), "dropIndexes");
   read_coll (e, false, &n, &mk);
   CHECK (n == 1, "the dropped index is gone from the next read (n %d)", n);
   CHECK (run (e, "{\"find\": \"c\", \"filter\": {}, \"hint\": \"a_1\"}", 2), "a hint on the dropped index: BadValue");

   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("keep");
}
