/*
 * test_coll_cache -- the handle's cache of collections built for reads
 * (storage/coll_cache.c, dj_coll_checkout / dj_coll_checkin):
 *
 *  - a second read of an unchanged collection gets the collection the
 *    first one built (the cache is used);
 *  - every change to the catalog entry makes the next read build it again
 *    from the new entry: an index made (and the read sees it), a multikey
 *    flag set by an insert, collMod's validator, a drop and re-create
 *    under the same name (a new id), an index dropped;
 *  - two readers at once each get a collection of their own;
 *  - through the commands: a hint on the index made after a find was
 *    cached is honoured, a dropped one refused.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_engine.h"
#include "dj_storage.h"

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
   char dir[] = "/tmp/djongo-collcache-XXXXXX";
   bson_error_t err;
   int n;
   bool mk;
   if (!mkdtemp (dir)) {
      return 2;
   }
   dj_engine_t *e = dj_engine_open (dir, NULL, &err);
   if (!e) {
      printf ("cannot open %s: %s\n", dir, err.message);
      return 2;
   }
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"a\": 1}, {\"_id\": 2, \"a\": 2}]}", 0), "insert");

   dj_coll_t *first = read_coll (e, false, &n, &mk);
   dj_coll_t *second = read_coll (e, false, &n, &mk);
   CHECK (first && second == first && n == 1, "an unchanged collection is built once (n %d)", n);

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
   return CTEST_REPORT ("coll_cache");
}
