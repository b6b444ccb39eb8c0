/*
 * test_durability -- several processes, killed processes, a full disk.
 *
 *  - two processes write one data directory at once: no acknowledged write is
 *    lost, a unique index holds across them, and $inc from both adds up;
 *  - a process killed with SIGKILL in the middle of writing loses none of
 *    the writes it acknowledged, and the directory opens again;
 *  - a data directory that runs out of space fails the write with
 *    OutOfDiskSpace (14031), keeps every earlier write, and stays usable.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_buf.h"
#include "dj_engine.h"

/* Runs a command; returns reply.ok and, if asked, an int field of the reply. */
static bool
run (dj_engine_t *e, const char *json, const char *field, int64_t *out)
{
   bson_t *cmd = J (json), reply;
   bool ok = dj_engine_run_command (e, "test", cmd, &reply);
   bson_iter_t it;
   if (field && out) {
      *out = bson_iter_init_find (&it, &reply, field) ? bson_iter_as_int64 (&it) : -1;
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok;
}

static int64_t
count (dj_engine_t *e, const char *query)
{
   char buf[512];
   int64_t n = -1;
   snprintf (buf, sizeof buf, "{\"count\": \"c\", \"query\": %s}", query);
   run (e, buf, "n", &n);
   return n;
}

/* The scratch directories this run made, removed at its end -- its own
 * only: a glob over /tmp would remove those of another run of this test
 * going on at the same time (two checkouts tested at once), whose reopened
 * directory then held nothing ("acknowledged writes lost", found 0). */
static char g_dirs[8][64];
static int g_ndirs;

static void
mkdir_tmp (char *out)
{
   strcpy (out, "/tmp/djongo-dur-XXXXXX");
   if (!mkdtemp (out)) {
      perror ("mkdtemp");
      exit (2);
   }
   if (g_ndirs < 8) {
      strcpy (g_dirs[g_ndirs++], out);
   }
}

/* ---- two writers ---------------------------------------------------------- */

static void
writer (const char *dir, int who, int fd)
{
   bson_error_t err;
   dj_engine_t *e = dj_engine_open (dir, NULL, &err);
   int acked = 0, dups = 0;
   if (!e) {
      _exit (3);
   }
   for (int n = 0; n < 500; n++) {
      char buf[256];
      int64_t ok_n = 0;
      int k = n + who * 250; /* keys 250..499 are wanted by both writers */
      snprintf (buf, sizeof buf, "{\"insert\": \"c\", \"documents\": [{\"_id\": \"w%d-%d\", \"k\": %d}]}", who, n, k);
      run (e, buf, "n", &ok_n);
      if (ok_n == 1) {
         acked++;
      } else {
         dups++;
      }
      run (e, "{\"update\": \"counter\", \"updates\": [{\"q\": {\"_id\": 1}, \"u\": {\"$inc\": {\"v\": 1}}, \"upsert\": true}]}", NULL, NULL);
   }
   int msg[2] = {acked, dups};
   if (write (fd, msg, sizeof msg) != sizeof msg) {
      _exit (4);
   }
   dj_engine_close (e);
   _exit (0);
}

static void
test_two_writers (void)
{
   char dir[64];
   int fds[2][2];
   pid_t pids[2];
   bson_error_t err;

   mkdir_tmp (dir);
   dj_engine_t *e = dj_engine_open (dir, NULL, &err);
   CHECK (e != NULL, "open: %s", err.message);
   CHECK (run (e, "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"k\": 1}, \"name\": \"k\", \"unique\": true}]}", NULL, NULL),
          "create index");
   for (int w = 0; w < 2; w++) {
      if (pipe (fds[w])) {
         perror ("pipe");
         exit (2);
      }
      pids[w] = fork ();
      if (pids[w] == 0) {
         writer (dir, w, fds[w][1]);
      }
   }
   int acked = 0, dups = 0;
   for (int w = 0; w < 2; w++) {
      int msg[2] = {0, 0}, status;
      CHECK (read (fds[w][0], msg, sizeof msg) == sizeof msg, "writer %d reported", w);
      waitpid (pids[w], &status, 0);
      CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0, "writer %d exited cleanly", w);
      acked += msg[0];
      dups += msg[1];
   }
   CHECK (acked == 750, "750 distinct keys acknowledged, got %d", acked);
   CHECK (dups == 250, "250 duplicate keys refused, got %d", dups);
   CHECK (count (e, "{}") == acked, "every acknowledged insert is there: %" PRId64, count (e, "{}"));
   CHECK (count (e, "{\"k\": {\"$gte\": 250, \"$lt\": 500}}") == 250, "one document per contested key");
   int64_t v = -1;
   bson_t *cmd = J ("{\"find\": \"counter\"}"), reply;
   dj_engine_run_command (e, "test", cmd, &reply);
   bson_iter_t it;
   if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0.v", &it)) {
      v = bson_iter_as_int64 (&it);
   }
   CHECK (v == 1000, "no lost $inc: counter is %" PRId64, v);
   bson_destroy (&reply);
   bson_destroy (cmd);
   dj_engine_close (e);
}

/* ---- SIGKILL ------------------------------------------------------------- */

static void
test_sigkill (int round)
{
   char dir[64];
   int fd[2];
   bson_error_t err;

   mkdir_tmp (dir);
   if (pipe (fd)) {
      exit (2);
   }
   pid_t pid = fork ();
   if (pid == 0) {
      close (fd[0]);
      dj_engine_t *e = dj_engine_open (dir, NULL, &err); /* fsync'd commits: the default */
      for (int n = 0;; n++) {
         char buf[256];
         int64_t ok_n = 0;
         snprintf (buf, sizeof buf,
                   "{\"insert\": \"c\", \"documents\": [{\"_id\": %d, \"pad\": \"................................................................\"}]}", n);
         run (e, buf, "n", &ok_n);
         if (ok_n == 1 && write (fd[1], &n, sizeof n) != sizeof n) {
            _exit (4);
         }
         if (n % 3 == 0) {
            /* keep an index busy too */
            snprintf (buf, sizeof buf, "{\"update\": \"c\", \"updates\": [{\"q\": {\"_id\": %d}, \"u\": {\"$set\": {\"x\": %d}}}]}", n, n);
            run (e, buf, NULL, NULL);
         }
      }
   }
   close (fd[1]);
   /* the kill lands a while after the first acknowledged write (waited for:
    * on a busy machine a fixed delay may come before any) */
   int last = -1, n, acked = 0;
   if (read (fd[0], &n, sizeof n) == sizeof n) {
      last = n;
      acked++;
   }
   struct timespec ts = {0, (long) (30 + 40 * round) * 1000000L};
   nanosleep (&ts, NULL);
   kill (pid, SIGKILL);
   int status;
   waitpid (pid, &status, 0);
   CHECK (WIFSIGNALED (status), "round %d: writer was killed", round);
   while (read (fd[0], &n, sizeof n) == sizeof n) {
      last = n;
      acked++;
   }
   close (fd[0]);
   dj_engine_t *e = dj_engine_open (dir, NULL, &err);
   CHECK (e != NULL, "round %d: the killed writer's directory opens: %s", round, e ? "" : err.message);
   if (!e) {
      return;
   }
   char q[64];
   snprintf (q, sizeof q, "{\"_id\": {\"$lte\": %d}}", last);
   CHECK (acked > 0, "round %d: some writes were acknowledged", round);
   CHECK (count (e, q) == acked, "round %d: all %d acknowledged writes survived (found %" PRId64 ")", round, acked, count (e, q));
   /* and it still takes writes */
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": \"after\"}]}", NULL, NULL), "round %d: writable after crash", round);
   dj_engine_close (e);
}

/* ---- full disk ----------------------------------------------------------- */

static void
test_full_disk (void)
{
   char dir[64];
   bson_error_t err;
   mkdir_tmp (dir);
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC, .map_size = 1 << 20};
   dj_engine_t *e = dj_engine_open (dir, &opts, &err);
   CHECK (e != NULL, "open small: %s", e ? "" : err.message);
   char *big = bson_malloc (9000);
   memset (big, 'z', 8999);
   big[8999] = '\0';
   int acked = 0, code = 0;
   for (int n = 0; n < 1000; n++) {
      char *cmd = bson_strdup_printf ("{\"insert\": \"c\", \"documents\": [{\"_id\": %d, \"blob\": \"%s\"}]}", n, big);
      bson_t *c = J (cmd), reply;
      bool ok = dj_engine_run_command (e, "test", c, &reply);
      bson_iter_t it;
      if (ok) {
         acked++;
      } else {
         code = bson_iter_init_find (&it, &reply, "code") ? bson_iter_int32 (&it) : -1;
      }
      bson_destroy (&reply);
      bson_destroy (c);
      bson_free (cmd);
      if (!ok) {
         break;
      }
   }
   bson_free (big);
   CHECK (code == DJ_OutOfDiskSpace, "the write that does not fit fails with OutOfDiskSpace, got %d", code);
   CHECK (acked > 10 && count (e, "{}") == acked, "the %d earlier writes are all there (%" PRId64 ")", acked,
          count (e, "{}"));
   CHECK (run (e, "{\"delete\": \"c\", \"deletes\": [{\"q\": {\"_id\": {\"$lt\": 20}}, \"limit\": 0}]}", NULL, NULL),
          "deleting frees space");
   CHECK (run (e, "{\"insert\": \"c\", \"documents\": [{\"_id\": \"small\"}]}", NULL, NULL), "writable again");
   dj_engine_close (e);
}

int
main (void)
{
   test_two_writers ();
   for (int round = 0; round < 3; round++) {
      test_sigkill (round);
   }
   test_full_disk ();
   for (int i = 0; i < g_ndirs; i++) {
      ctest_rmdir (g_dirs[i]);
   }
   return CTEST_REPORT ("durability");
}
