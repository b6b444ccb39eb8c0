/*
 * test_txn -- the transaction contract of dj_engine.h (@ref txn_sec):
 *
 *  - writes in a transaction are seen by its own commands, not by others,
 *    until commit; abort leaves nothing; a commit survives reopening;
 *  - nested transactions (savepoints): aborting one undoes only its writes,
 *    committing the outer one commits open inner ones;
 *  - a command that fails (ok: 0) inside a transaction leaves nothing and
 *    the transaction goes on;
 *  - a second writer on another thread waits for the commit and then sees
 *    it; the same thread asking for a second write lock gets WriteConflict
 *    (112) instead of a deadlock; a parent with an open child refuses commands;
 *  - snapshot transactions (dj_engine_txn_begin_snapshot): many at once,
 *    each reading its snapshot; the first write of one becomes the writer,
 *    a second writer or a write on an outdated snapshot gets WriteConflict.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_buf.h"
#include "dj_engine.h"

#include <pthread.h>

/* Runs a command (in t, if not NULL); returns ok, and the reply's code in *code. */
static bool
run (dj_engine_t *e, dj_engine_txn_t *t, const char *json, int *code)
{
   bson_t *cmd = J (json), reply;
   bool ok = dj_engine_run_command_in (e, t, "test", cmd, &reply);
   bson_iter_t it;
   if (code) {
      *code = bson_iter_init_find (&it, &reply, "code") ? bson_iter_as_int64 (&it) : 0;
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok;
}

static int64_t
count (dj_engine_t *e, dj_engine_txn_t *t, const char *query)
{
   char buf[512];
   bson_t *cmd, reply;
   bson_iter_t it;
   int64_t n = -1;
   snprintf (buf, sizeof buf, "{\"count\": \"c\", \"query\": %s}", query);
   cmd = J (buf);
   if (dj_engine_run_command_in (e, t, "test", cmd, &reply) && bson_iter_init_find (&it, &reply, "n")) {
      n = bson_iter_as_int64 (&it);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return n;
}

static dj_engine_t *
open_dir (const char *dir)
{
   bson_error_t err;
   dj_engine_t *e = dj_engine_open (dir, NULL, &err);
   if (!e) {
      printf ("cannot open %s: %s\n", dir, err.message);
      exit (2);
   }
   return e;
}

struct writer {
   const char *dir;
   bool ok;
};

static void *
writer_thread (void *arg)
{
   struct writer *w = arg;
   dj_engine_t *e = open_dir (w->dir);
   w->ok = run (e, NULL, "{\"insert\": \"c\", \"documents\": [{\"_id\": 100, \"k\": 100}]}", NULL);
   dj_engine_close (e);
   return NULL;
}

struct borrower {
   dj_engine_t *e;
   dj_engine_txn_t *t;
   int code;
};

static void *
borrower_thread (void *arg)
{
   struct borrower *b = arg;
   run (b->e, b->t, "{\"count\": \"c\"}", &b->code);
   return NULL;
}

int
main (void)
{
   char dir[] = "/tmp/djongo-txn-XXXXXX";
   bson_error_t err;
   int code = 0;

   if (!mkdtemp (dir)) {
      return 2;
   }
   dj_engine_t *e = open_dir (dir), *other = open_dir (dir);
   CHECK (run (e, NULL, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"k\": 1}, \"name\": \"k_1\", \"unique\": true}]}",
               NULL),
          "unique index");

   /* commit: own writes visible inside, invisible outside until commit */
   dj_engine_txn_t *t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (t != NULL, "begin: %s", err.message);
   CHECK (run (e, t, "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"k\": 1}, {\"_id\": 2, \"k\": 2}]}", NULL), "insert");
   CHECK (count (e, t, "{}") == 2, "the transaction sees its writes");
   CHECK (count (other, NULL, "{}") == 0, "others do not (snapshot)");
   /* same thread, second write lock: refused, not a deadlock */
   CHECK (!run (other, NULL, "{\"insert\": \"c\", \"documents\": [{\"_id\": 9}]}", &code) && code == DJ_WriteConflict,
          "second writer on the same thread: code %d", code);
   CHECK (dj_engine_txn_begin (other, NULL, &err) == NULL && err.code == DJ_WriteConflict, "second transaction: %u",
          err.code);
   CHECK (dj_engine_txn_commit (t, &err), "commit: %s", err.message);
   CHECK (count (other, NULL, "{}") == 2, "visible after commit");

   /* abort */
   t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (run (e, t, "{\"delete\": \"c\", \"deletes\": [{\"q\": {}, \"limit\": 0}]}", NULL), "delete all");
   CHECK (count (e, t, "{}") == 0, "deleted inside");
   dj_engine_txn_abort (t);
   CHECK (count (e, NULL, "{}") == 2, "abort undid the delete");

   /* a failing command leaves nothing and the transaction goes on */
   t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (run (e, t, "{\"insert\": \"c\", \"documents\": [{\"_id\": 3, \"k\": 3}]}", NULL), "insert 3");
   /* the build writes keys, then meets two documents without `a` (both null) */
   CHECK (!run (e, t, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\", \"unique\": true}]}",
                &code) && code == DJ_DuplicateKey,
          "unique index over duplicates fails: %d", code);
   CHECK (run (e, t, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a\": 1}, \"name\": \"a_1\"}]}", NULL),
          "the failed build left nothing: the name is free");
   CHECK (run (e, t, "{\"insert\": \"c\", \"documents\": [{\"_id\": 4, \"k\": 1}]}", NULL), "duplicate: ok with writeErrors");
   CHECK (count (e, t, "{}") == 3, "the transaction continues after errors: %lld", (long long) count (e, t, "{}"));

   /* savepoints */
   dj_engine_txn_t *sp = dj_engine_txn_begin (e, t, &err);
   CHECK (sp != NULL, "savepoint: %s", err.message);
   CHECK (!run (e, t, "{\"count\": \"c\"}", &code) && code == DJ_IllegalOperation, "parent busy while a child is open");
   CHECK (dj_engine_txn_begin (e, t, &err) == NULL && err.code == DJ_IllegalOperation, "one child at a time");
   CHECK (run (e, sp, "{\"insert\": \"c\", \"documents\": [{\"_id\": 5, \"k\": 5}]}", NULL), "insert in savepoint");
   CHECK (count (e, sp, "{}") == 4, "savepoint sees parent's and own writes");
   dj_engine_txn_abort (sp);
   CHECK (count (e, t, "{}") == 3, "rolled back to the savepoint");
   sp = dj_engine_txn_begin (e, t, &err);
   dj_engine_txn_t *sp2 = dj_engine_txn_begin (e, sp, &err);
   CHECK (run (e, sp2, "{\"insert\": \"c\", \"documents\": [{\"_id\": 6, \"k\": 6}]}", NULL), "insert in nested savepoint");
   CHECK (dj_engine_txn_commit (sp2, &err), "release inner: %s", err.message);
   CHECK (run (e, sp, "{\"insert\": \"c\", \"documents\": [{\"_id\": 7, \"k\": 7}]}", NULL), "insert in savepoint");
   sp2 = dj_engine_txn_begin (e, sp, &err);
   CHECK (run (e, sp2, "{\"insert\": \"c\", \"documents\": [{\"_id\": 8, \"k\": 8}]}", NULL), "insert in a new inner");
   /* committing the top commits what is still open under it */
   CHECK (dj_engine_txn_commit (t, &err), "commit with open savepoints: %s", err.message);
   CHECK (count (other, NULL, "{}") == 6, "all but the rolled-back write: %lld", (long long) count (other, NULL, "{}"));
   CHECK (count (other, NULL, "{\"_id\": 5}") == 0, "the rolled-back write is gone");

   /* another thread's write waits for the commit, then lands */
   t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (run (e, t, "{\"insert\": \"c\", \"documents\": [{\"_id\": 50, \"k\": 50}]}", NULL), "insert 50");
   struct writer w = {dir, false};
   pthread_t th;
   pthread_create (&th, NULL, writer_thread, &w);
   usleep (100 * 1000);
   CHECK (count (e, t, "{\"_id\": 100}") == 0, "the other writer waits");
   struct borrower b = {e, t, 0};
   pthread_t th2;
   pthread_create (&th2, NULL, borrower_thread, &b);
   pthread_join (th2, NULL);
   CHECK (b.code == DJ_IllegalOperation, "a transaction used from another thread is refused: %d", b.code);
   CHECK (dj_engine_txn_commit (t, &err), "commit: %s", err.message);
   pthread_join (th, NULL);
   CHECK (w.ok, "the other writer succeeded after the commit");
   CHECK (count (e, NULL, "{\"_id\": {\"$in\": [50, 100]}}") == 2, "both writes landed");

   dj_engine_close (other);
   dj_engine_close (e);
   e = open_dir (dir);
   CHECK (count (e, NULL, "{}") == 8, "commits survive reopening: %lld", (long long) count (e, NULL, "{}"));

   /* snapshot transactions: reads take no lock, the first write becomes the
    * writer if nothing changed since the snapshot and no other snapshot is
    * writing -- else WriteConflict, at once */
   dj_engine_txn_t *s1 = dj_engine_txn_begin_snapshot (e, &err), *s2 = dj_engine_txn_begin_snapshot (e, &err);
   CHECK (s1 && s2, "two snapshots at once: %s", err.message);
   CHECK (count (e, s2, "{}") == 8, "a snapshot reads");
   CHECK (run (e, s1, "{\"insert\": \"c\", \"documents\": [{\"_id\": 200, \"k\": 200}]}", NULL),
          "first write of a snapshot");
   CHECK (count (e, s1, "{}") == 9, "it sees its write");
   CHECK (!run (e, s2, "{\"insert\": \"c\", \"documents\": [{\"_id\": 201, \"k\": 201}]}", &code) &&
             code == DJ_WriteConflict,
          "a second writing snapshot: WriteConflict, not a wait: %d", code);
   CHECK (count (e, s2, "{}") == 8, "the other snapshot does not see it");
   CHECK (dj_engine_txn_commit (s1, &err), "commit: %s", err.message);
   CHECK (count (e, s2, "{}") == 8, "nor after its commit (snapshot isolation)");
   CHECK (count (e, NULL, "{}") == 9, "outside, the commit is visible");
   CHECK (!run (e, s2, "{\"insert\": \"c\", \"documents\": [{\"_id\": 202, \"k\": 202}]}", &code) &&
             code == DJ_WriteConflict,
          "writing on a snapshot older than the last commit: WriteConflict: %d", code);
   CHECK (dj_engine_txn_commit (s2, &err), "a read-only snapshot commits: %s", err.message);
   s1 = dj_engine_txn_begin_snapshot (e, &err);
   CHECK (run (e, s1, "{\"delete\": \"c\", \"deletes\": [{\"q\": {\"_id\": 200}, \"limit\": 1}]}", NULL),
          "a fresh snapshot writes");
   dj_engine_txn_abort (s1);
   CHECK (count (e, NULL, "{}") == 9, "its abort leaves nothing");
   s2 = dj_engine_txn_begin_snapshot (e, &err);
   CHECK (run (e, s2, "{\"insert\": \"c\", \"documents\": [{\"_id\": 203, \"k\": 203}]}", NULL),
          "after an abort the writer's place is free again");
   CHECK (dj_engine_txn_commit (s2, &err), "commit: %s", err.message);
   dj_engine_close (e);

   ctest_rmdir (dir);
   return CTEST_REPORT ("txn");
}
