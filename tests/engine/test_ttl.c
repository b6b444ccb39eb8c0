/*
 * test_ttl -- the TTL monitor (src/engine/commands/ttl.c), per the manual's
 * TTL index page (https://www.mongodb.com/docs/manual/core/index-ttl/):
 *
 *  - a document expires when its indexed field is a date older than
 *    expireAfterSeconds, or an array whose earliest date is; a non-date or
 *    missing field never expires; a partial TTL index expires only the
 *    documents its filter admits; collMod's new period applies to the next
 *    pass;
 *  - the monitor is one per data directory: handles on it share its
 *    counters (metrics.ttl.deletedDocuments, passes);
 *  - deletions go through the normal delete path: with writers on another
 *    handle inserting meanwhile and a transaction holding the write lock,
 *    indexes stay consistent (validate) and the transaction's document
 *    expires after its commit;
 *  - closing the last handle stops the monitor (joined, nothing leaked);
 *    a process forked with handles open (Django's parallel test workers)
 *    closes them without waiting for the parent's thread, and its new
 *    handles get a monitor of their own.
 *
 * The monitor runs every second here (ttl_monitor_secs = 1). Waiting is
 * for passes to complete (the counter), bounded by a generous deadline
 * that only a hung monitor reaches.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h" /* (after dj_engine.h: ctest_run) */

/* The _ids of coll's documents, in _id order, as "1,2,3". */
static char *
ids (dj_engine_t *e, const char *coll)
{
   char buf[256];
   bson_t *cmd, reply;
   bson_iter_t it, b;
   snprintf (buf, sizeof buf, "{\"find\": \"%s\", \"sort\": {\"_id\": 1}, \"projection\": {\"_id\": 1}, \"batchSize\": 1000}", coll);
   cmd = J (buf);
   char *out = bson_strdup ("");
   if (dj_engine_run_command (e, "test", cmd, &reply) && bson_iter_init (&it, &reply) &&
       bson_iter_find_descendant (&it, "cursor.firstBatch", &b) && BSON_ITER_HOLDS_ARRAY (&b)) {
      bson_iter_t d;
      bson_iter_recurse (&b, &d);
      while (bson_iter_next (&d)) {
         bson_iter_t f;
         bson_iter_recurse (&d, &f);
         if (bson_iter_find (&f, "_id")) {
            char *n = bson_strdup_printf ("%s%s%d", out, *out ? "," : "", (int) bson_iter_as_int64 (&f));
            bson_free (out);
            out = n;
         }
      }
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return out;
}

/* Waits until `more` passes have finished after now; false if the monitor
 * did not get there in 60 s (hung). */
static bool
wait_passes (dj_engine_t *e, int more)
{
   int64_t deleted, p0, p;
   dj_engine_ttl_stats (e, &deleted, &p0);
   for (int i = 0; i < 6000; i++) {
      dj_engine_ttl_stats (e, &deleted, &p);
      if (p >= p0 + more) {
         return true;
      }
      usleep (10000);
   }
   return false;
}

static int64_t
now_ms (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_REALTIME, &ts);
   return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
   const char *dir;
   atomic_bool stop;
   int inserted;
} writer_t;

/* Inserts expired and live documents on a handle of its own until stopped. */
static void *
writer_main (void *arg)
{
   writer_t *w = arg;
   dj_engine_options_t o = {.flags = DJ_ENGINE_NOSYNC, .ttl_monitor_secs = 1};
   bson_error_t err;
   dj_engine_t *e = dj_engine_open (w->dir, &o, &err);
   if (!e) {
      return NULL;
   }
   for (int i = 0; !atomic_load (&w->stop); i++) {
      char buf[256];
      snprintf (buf, sizeof buf,
                "{\"insert\": \"busy\", \"documents\": [{\"_id\": %d, \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}}]}",
                1000 + i, (long long) (i % 2 ? now_ms () + 3600000 : 0));
      if (ctest_run (e, NULL, buf)) {
         w->inserted++;
      }
      usleep (2000);
   }
   dj_engine_close (e);
   return NULL;
}

int
main (void)
{
   char dir[] = "/tmp/djongo-ttl-XXXXXX";
   if (!mkdtemp (dir)) {
      perror ("mkdtemp");
      return 2;
   }
   bson_error_t err;
   dj_engine_options_t o = {.flags = DJ_ENGINE_NOSYNC, .ttl_monitor_secs = 1};
   dj_engine_t *e = dj_engine_open (dir, &o, &err);
   CHECK (e != NULL, "open: %s", err.message);
   if (!e) {
      return CTEST_REPORT ("ttl");
   }
   long long past = (long long) now_ms () - 7200000, future = (long long) now_ms () + 7200000;
   char buf[2048];
   CHECK (ctest_run (e, NULL, "{\"createIndexes\": \"ev\", \"indexes\": [{\"key\": {\"at\": 1}, \"name\": \"at_1\", \"expireAfterSeconds\": 3600}]}"), "ttl index");
   snprintf (buf, sizeof buf,
             "{\"insert\": \"ev\", \"documents\": ["
             "{\"_id\": 1, \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}},"
             "{\"_id\": 2, \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}},"
             "{\"_id\": 3, \"at\": \"2000-01-01\"},"
             "{\"_id\": 4},"
             "{\"_id\": 5, \"at\": [{\"$date\": {\"$numberLong\": \"%lld\"}}, {\"$date\": {\"$numberLong\": \"%lld\"}}]},"
             "{\"_id\": 6, \"at\": [{\"$date\": {\"$numberLong\": \"%lld\"}}, 5]},"
             "{\"_id\": 7, \"at\": [1, 2]},"
             "{\"_id\": 8, \"at\": {\"$timestamp\": {\"t\": 1, \"i\": 1}}}]}",
             past, future, future, past, future);
   CHECK (ctest_run (e, NULL, buf), "insert");
   /* a partial TTL index expires only what its filter admits */
   CHECK (ctest_run (e, NULL, "{\"createIndexes\": \"tmp\", \"indexes\": [{\"key\": {\"at\": 1}, \"name\": \"at_1\", \"expireAfterSeconds\": 0, \"partialFilterExpression\": {\"kind\": \"tmp\"}}]}"), "partial ttl");
   snprintf (buf, sizeof buf,
             "{\"insert\": \"tmp\", \"documents\": ["
             "{\"_id\": 1, \"kind\": \"tmp\", \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}},"
             "{\"_id\": 2, \"kind\": \"keep\", \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}}]}",
             past, past);
   CHECK (ctest_run (e, NULL, buf), "insert tmp");
   /* a second handle shares the directory's monitor and its counters */
   dj_engine_t *e2 = dj_engine_open (dir, &o, &err);
   CHECK (wait_passes (e, 2), "the monitor ran two passes");
   char *s = ids (e, "ev");
   CHECK (!strcmp (s, "2,3,4,6,7,8"), "expired: a past date and an array whose earliest date is past; left: %s", s);
   bson_free (s);
   s = ids (e, "tmp");
   CHECK (!strcmp (s, "2"), "partial: %s", s);
   bson_free (s);
   int64_t deleted, passes, deleted2, passes2;
   dj_engine_ttl_stats (e, &deleted, &passes);
   dj_engine_ttl_stats (e2, &deleted2, &passes2);
   CHECK (deleted == 3 && passes >= 2, "metrics.ttl: deleted %lld passes %lld", (long long) deleted, (long long) passes);
   CHECK (deleted2 == deleted && passes2 >= passes, "one monitor per directory");

   /* collMod's new period applies from the next pass: a date 10 minutes
    * old is kept at 3600 s and expires at 60 s */
   snprintf (buf, sizeof buf, "{\"insert\": \"ev\", \"documents\": [{\"_id\": 9, \"at\": {\"$date\": {\"$numberLong\": \"%lld\"}}}]}",
             (long long) now_ms () - 600000);
   CHECK (ctest_run (e, NULL, buf), "insert 9");
   CHECK (wait_passes (e, 2), "passes");
   s = ids (e, "ev");
   CHECK (!strcmp (s, "2,3,4,6,7,8,9"), "10 minutes old is not expired at 3600 s: %s", s);
   bson_free (s);
   CHECK (ctest_run (e, NULL, "{\"collMod\": \"ev\", \"index\": {\"name\": \"at_1\", \"expireAfterSeconds\": 60}}"), "collMod");
   CHECK (wait_passes (e, 2), "passes");
   s = ids (e, "ev");
   CHECK (!strcmp (s, "2,3,4,6,7,8"), "expired at 60 s: %s", s);
   bson_free (s);

   /* concurrent writers on another handle, and a transaction that holds the
    * write lock across passes: the monitor waits for it, then deletes */
   CHECK (ctest_run (e, NULL, "{\"createIndexes\": \"busy\", \"indexes\": [{\"key\": {\"at\": 1}, \"name\": \"at_1\", \"expireAfterSeconds\": 0}, {\"key\": {\"x\": 1}, \"name\": \"x_1\"}]}"), "busy index");
   writer_t w = {.dir = dir};
   pthread_t th;
   pthread_create (&th, NULL, writer_main, &w);
   CHECK (wait_passes (e, 3), "passes with a writer");
   dj_engine_txn_t *t = dj_engine_txn_begin (e, NULL, &err);
   CHECK (t != NULL, "txn: %s", err.message);
   CHECK (ctest_run (e, t, "{\"insert\": \"busy\", \"documents\": [{\"_id\": 1, \"at\": {\"$date\": 0}}]}"), "insert in txn");
   usleep (1500000); /* a pass is due meanwhile: it waits for the lock */
   CHECK (dj_engine_txn_commit (t, &err), "commit: %s", err.message);
   CHECK (wait_passes (e, 2), "passes after the commit");
   atomic_store (&w.stop, true);
   pthread_join (th, NULL);
   CHECK (wait_passes (e, 2), "a last pass");
   CHECK (w.inserted > 10, "the writer wrote (%d)", w.inserted);
   bson_t reply, *cmd = J ("{\"count\": \"busy\", \"query\": {\"at\": {\"$lt\": {\"$date\": 1000}}}}");
   bson_iter_t it;
   CHECK (dj_engine_run_command (e, "test", cmd, &reply) && bson_iter_init_find (&it, &reply, "n") && bson_iter_as_int64 (&it) == 0,
          "every expired document is gone, the transaction's too");
   bson_destroy (&reply);
   bson_destroy (cmd);
   cmd = J ("{\"validate\": \"busy\", \"full\": true}");
   CHECK (dj_engine_run_command (e, "test", cmd, &reply) && bson_iter_init_find (&it, &reply, "valid") && bson_iter_as_bool (&it),
          "indexes consistent after concurrent deletes");
   bson_destroy (&reply);
   bson_destroy (cmd);

   /* fork with handles open: the child closes them without hanging on the
    * parent's monitor thread, and a handle it opens gets a monitor */
   pid_t pid = fork ();
   if (pid == 0) {
      alarm (60); /* a hang ends the child with SIGALRM, which the parent reports */
      dj_engine_close (e2);
      dj_engine_close (e);
      dj_engine_t *c = dj_engine_open (dir, &o, &err);
      if (!c) {
         _exit (3);
      }
      snprintf (buf, sizeof buf, "{\"insert\": \"ev\", \"documents\": [{\"_id\": 100, \"at\": {\"$date\": 0}}]}");
      bool ok = ctest_run (c, NULL, buf) && wait_passes (c, 2);
      char *left = ids (c, "ev");
      ok = ok && !strstr (left, "100");
      bson_free (left);
      dj_engine_close (c);
      _exit (ok ? 0 : 4);
   }
   int status = 0;
   CHECK (pid > 0 && waitpid (pid, &status, 0) == pid, "fork/wait");
   CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0, "the forked child closed inherited handles and ran a monitor of its own (status %d)",
          status);

   /* no monitor when asked for none */
   dj_engine_close (e2);
   dj_engine_close (e);
   dj_engine_options_t off = {.flags = DJ_ENGINE_NOSYNC, .ttl_monitor_secs = -1};
   e = dj_engine_open (dir, &off, &err);
   dj_engine_ttl_stats (e, &deleted, &passes);
   CHECK (passes == 0 && deleted == 0, "no monitor: no counters");
   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("ttl");
}
