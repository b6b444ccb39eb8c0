/*
 * test_join_keep -- an equality $lookup's foreign side kept by snapshot
 * (aggregation/lookup.c, the engine handle's join_keep):
 *
 *  - an aggregate in a read-only transaction of its own leaves the side it
 *    read and indexed in the keep, under its snapshot; the next aggregate
 *    of that snapshot takes it and gives the same rows;
 *  - a write committed by any command -- an insert, an update, a delete,
 *    through this handle or another one on the same data directory --
 *    makes the next aggregate read the foreign collection again (its rows
 *    show the write);
 *  - a read inside a caller's transaction that wrote sees its own writes,
 *    and neither keeps nor takes: after an abort the rows are the old ones,
 *    and after the next commit (the aborted transaction's id) the new ones;
 *  - a view as the foreign side is never kept.
 *
 * The key (lookup.c, jkeep_key): the snapshot id (a uint64_t), the
 * collation pointer in force (NULL: simple), then db, coll and
 * foreignField, each with its NUL.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"
#include "dj_storage.h"

/* The rows of the join of b with a (author -> a._id), as JSON; NULL on a
 * failure. In t (NULL: a command of its own). */
static char *
join_rows (dj_engine_t *e, dj_engine_txn_t *t, const char *from)
{
   char *json = bson_strdup_printf (
      "{\"aggregate\": \"b\", \"cursor\": {}, \"pipeline\": [{\"$match\": {\"author\": {\"$ne\": null}}},"
      " {\"$lookup\": {\"from\": \"%s\", \"localField\": \"author\", \"foreignField\": \"_id\", \"as\": \"x\"}},"
      " {\"$unwind\": \"$x\"}, {\"$project\": {\"_id\": 1, \"t\": 1, \"n\": \"$x.name\"}}]}",
      from);
   bson_t *cmd = J (json), reply;
   bson_free (json);
   bson_iter_t it;
   char *rows = NULL;
   if (dj_engine_run_command_in (e, t, "test", cmd, &reply) && bson_iter_init (&it, &reply) &&
       bson_iter_find_descendant (&it, "cursor.firstBatch", &it) && BSON_ITER_HOLDS_ARRAY (&it)) {
      const uint8_t *d;
      uint32_t l;
      bson_t arr;
      bson_iter_array (&it, &l, &d);
      if (bson_init_static (&arr, d, l)) {
         rows = bson_as_relaxed_extended_json (&arr, NULL);
      }
   } else {
      char *s = bson_as_relaxed_extended_json (&reply, NULL);
      printf ("aggregate failed: %s\n", s);
      bson_free (s);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return rows;
}

/* Whether the keep holds the foreign side of test.<coll> on _id for the
 * snapshot a read-only transaction begun now sees (taken and put back). */
static bool
kept (dj_engine_t *e, const char *coll)
{
   dj_ctx_t ctx = {0};
   bson_error_t err;
   if (!dj_txn_begin (e, false, &ctx, &err)) {
      return false;
   }
   uint64_t snap = (uint64_t) mdb_txn_id (ctx.txn);
   dj_txn_abort (&ctx);
   const void *coll_at = NULL;
   char key[128];
   size_t n = 0;
   memcpy (key, &snap, sizeof snap);
   n += sizeof snap;
   memcpy (key + n, &coll_at, sizeof coll_at);
   n += sizeof coll_at;
   n += (size_t) sprintf (key + n, "test") + 1;
   n += (size_t) sprintf (key + n, "%s", coll) + 1;
   n += (size_t) sprintf (key + n, "_id") + 1;
   void *obj = dj_keep_take (e->join_keep, key, n);
   if (obj) {
      dj_keep_put (e->join_keep, key, n, obj);
   }
   return obj != NULL;
}

/* A write by `writer` (this handle or another on the same directory)
 * after a join kept its side: nothing kept for the new snapshot, and the
 * next join's rows hold `want` and not `gone` (NULL: not checked). */
static void
after_write (dj_engine_t *e, dj_engine_t *writer, const char *cmd, const char *want, const char *gone, const char *what)
{
   char *rows = join_rows (e, NULL, "a");
   CHECK (rows && kept (e, "a"), "%s: the side kept before it", what);
   bson_free (rows);
   CHECK (ctest_run (writer, NULL, cmd), "%s", what);
   CHECK (!kept (e, "a"), "%s: nothing kept for the new snapshot", what);
   rows = join_rows (e, NULL, "a");
   CHECK (rows && (!want || strstr (rows, want)) && (!gone || !strstr (rows, gone)), "%s seen: %s", what, rows);
   bson_free (rows);
}

static bool
same (const char *a, const char *b)
{
   return a && b && !strcmp (a, b);
}

int
main (void)
{
   char dir[] = "/tmp/djongo-join-keep-XXXXXX";
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      return 1;
   }
   CHECK (ctest_run (e, NULL, "{\"insert\": \"a\", \"documents\": [{\"_id\": 1, \"name\": \"ann\"}, {\"_id\": 2, \"name\": \"bob\"}]}"),
          "insert a");
   CHECK (ctest_run (e, NULL, "{\"insert\": \"b\", \"documents\": [{\"_id\": 10, \"t\": \"x\", \"author\": 1},"
                              " {\"_id\": 11, \"t\": \"y\", \"author\": 2}, {\"_id\": 12, \"t\": \"z\", \"author\": 3},"
                              " {\"_id\": 13, \"t\": \"w\", \"author\": null}]}"),
          "insert b");
   const char *two = "{ \"0\" : { \"_id\" : 10, \"t\" : \"x\", \"n\" : \"ann\" }, \"1\" : { \"_id\" : 11, \"t\" : \"y\", \"n\" : \"bob\" } }";

   /* kept, then taken by the next aggregate of the same snapshot */
   CHECK (!kept (e, "a"), "nothing kept before a $lookup ran");
   char *r1 = join_rows (e, NULL, "a");
   CHECK (same (r1, two), "the join's rows: %s", r1);
   CHECK (kept (e, "a"), "the foreign side kept after the aggregate");
   char *r2 = join_rows (e, NULL, "a");
   CHECK (same (r2, two), "the same rows from the kept side: %s", r2);
   CHECK (kept (e, "a"), "put back after the second aggregate");
   bson_free (r1), bson_free (r2);

   /* an insert into the foreign collection (book 12's author appears), an
    * update, a delete, and another handle's update */
   after_write (e, e, "{\"insert\": \"a\", \"documents\": [{\"_id\": 3, \"name\": \"cy\"}]}", "\"cy\"", NULL,
                "an inserted author");
   after_write (e, e, "{\"update\": \"a\", \"updates\": [{\"q\": {\"_id\": 1}, \"u\": {\"$set\": {\"name\": \"amy\"}}}]}",
                "\"amy\"", "\"ann\"", "an updated name");
   after_write (e, e, "{\"delete\": \"a\", \"deletes\": [{\"q\": {\"_id\": 3}, \"limit\": 1}]}", NULL, "\"cy\"",
                "a deleted author");
   bson_error_t err;
   dj_engine_t *e2 = dj_engine_open (dir, NULL, &err);
   CHECK (e2, "a second handle on the data directory");
   if (e2) {
      after_write (e, e2, "{\"update\": \"a\", \"updates\": [{\"q\": {\"_id\": 2}, \"u\": {\"$set\": {\"name\": \"bea\"}}}]}",
                   "\"bea\"", "\"bob\"", "the other handle's update");
      dj_engine_close (e2);
   }

   /* a caller's transaction that wrote: its own writes, nothing kept or taken */
   char *before = join_rows (e, NULL, "a");
   CHECK (before && kept (e, "a"), "kept before the transaction");
   dj_engine_txn_t *t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (t, "a transaction");
   if (t) {
      CHECK (ctest_run (e, t, "{\"update\": \"a\", \"updates\": [{\"q\": {\"_id\": 1}, \"u\": {\"$set\": {\"name\": \"abe\"}}}]}"),
             "update in the transaction");
      r1 = join_rows (e, t, "a");
      CHECK (r1 && strstr (r1, "\"abe\""), "the transaction sees its write: %s", r1);
      bson_free (r1);
      dj_engine_txn_abort (t);
   }
   r1 = join_rows (e, NULL, "a");
   CHECK (same (r1, before), "after the abort, the rows of before: %s", r1);
   bson_free (r1), bson_free (before);
   /* the next commit takes the id the aborted transaction had: its
    * side (had it been kept) must not be what the next read finds */
   after_write (e, e, "{\"update\": \"a\", \"updates\": [{\"q\": {\"_id\": 1}, \"u\": {\"$set\": {\"name\": \"ace\"}}}]}",
                "\"ace\"", "\"abe\"", "a commit after the abort");

   /* a view as the foreign side: read, never kept */
   CHECK (ctest_run (e, NULL, "{\"create\": \"av\", \"viewOn\": \"a\", \"pipeline\": []}"), "create view");
   r1 = join_rows (e, NULL, "av");
   CHECK (r1 && strstr (r1, "\"ace\""), "joined through the view: %s", r1);
   CHECK (!kept (e, "av"), "a view's side not kept");
   bson_free (r1);

   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("join_keep");
}
