/*
 * test_commit_pages -- the pages of data.mdb one small write commits.
 *
 * Each page a commit writes is one more page for its fdatasync to flush,
 * so what a one-document insert rewrites is counted here, page by page,
 * by comparing the data file before and after it. A collection with just
 * its _id index, the data tree and the change log each two levels deep
 * (a root branch over many leaves), a committed insert writes:
 *
 *   LMDB's unnamed database  1 leaf (the named databases' roots moved)
 *   the free-page database   1 leaf (the pages this commit freed)
 *   data                     root + the record's leaf + the _id entry's leaf
 *   the change log           root + the last leaf (the entry appended)
 *
 * seven pages (plus a meta page, not counted). The log's size record lives
 * beside the named databases' records in the unnamed database
 * (storage/changes.c): kept as the log's first key, it added that first
 * leaf to every commit.
 *
 * And a data directory an older version wrote, with the size record as
 * the log's first key, keeps its count: the next logged change moves it.
 */
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"

#define PAGE 4096

/* n documents of 142 bytes of BSON each into test.c, 100 per insert */
static bool
fill (dj_engine_t *e, int n)
{
   bool ok = true;
   for (int done = 0; done < n && ok; done += 100) {
      bson_t cmd = BSON_INITIALIZER, docs, d;
      BSON_APPEND_UTF8 (&cmd, "insert", "c");
      BSON_APPEND_ARRAY_BEGIN (&cmd, "documents", &docs);
      for (int i = 0; i < 100; i++) {
         char k[16];
         snprintf (k, sizeof k, "%d", i);
         BSON_APPEND_DOCUMENT_BEGIN (&docs, k, &d);
         BSON_APPEND_INT32 (&d, "_id", done + i);
         BSON_APPEND_UTF8 (&d, "pad", "..............................................................................."
                                      ".......................................");
         bson_append_document_end (&docs, &d);
      }
      bson_append_array_end (&cmd, &docs);
      bson_t reply;
      ok = dj_engine_run_command (e, "test", &cmd, &reply);
      bson_destroy (&reply);
      bson_destroy (&cmd);
   }
   return ok;
}

/* The data file's bytes (owned by the caller, bson_free), *n of them. */
static uint8_t *
slurp (const char *dir, size_t *n)
{
   char *path = bson_strdup_printf ("%s/data.mdb", dir);
   FILE *f = fopen (path, "rb");
   bson_free (path);
   uint8_t *buf = NULL;
   *n = 0;
   if (!f) {
      return NULL;
   }
   fseek (f, 0, SEEK_END);
   long len = ftell (f);
   fseek (f, 0, SEEK_SET);
   buf = bson_malloc ((size_t) len + 1);
   *n = fread (buf, 1, (size_t) len, f);
   fclose (f);
   return buf;
}

/* Pages other than the two meta pages that differ (or are new) in b. */
static int
pages_changed (const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
   int n = 0;
   for (size_t p = 2; (p + 1) * PAGE <= nb; p++) {
      if ((p + 1) * PAGE > na || memcmp (a + p * PAGE, b + p * PAGE, PAGE)) {
         n++;
      }
   }
   return n;
}

static void
test_insert_pages (void)
{
   char dir[] = "/tmp/djongo-pages-XXXXXX";
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      ctest_failed++;
      return;
   }
   CHECK (fill (e, 1000), "the collection filled");
   size_t na, nb;
   uint8_t *a = slurp (dir, &na);
   CHECK (ctest_run (e, NULL, "{\"insert\": \"c\", \"documents\": [{\"_id\": 100000, \"pad\": \"x\"}]}"), "one insert");
   uint8_t *b = slurp (dir, &nb);
   int n = a && b ? pages_changed (a, na, b, nb) : -1;
   CHECK (n > 0 && n <= 7, "a one-document insert rewrote %d pages (7: the header's list)", n);
   bson_free (a);
   bson_free (b);
   dj_engine_close (e);
   ctest_rmdir (dir);
}

/* The size record read from the unnamed database (*found), its bytes. */
static int64_t
main_record_bytes (MDB_txn *txn, MDB_dbi main, bool *found)
{
   MDB_val k = {8, (void *) "\x01" "changes"}, v;
   bson_t meta;
   bson_iter_t it;
   *found = mdb_get (txn, main, &k, &v) == 0;
   if (*found && bson_init_static (&meta, v.mv_data, v.mv_size) && bson_iter_init_find (&it, &meta, "bytes")) {
      return bson_iter_as_int64 (&it);
   }
   return -1;
}

/* The data directory opened by LMDB itself, a transaction begun (flags:
 * mdb_txn_begin's), its unnamed database and the change log. */
static bool
lmdb_open (const char *dir, unsigned flags, MDB_env **env, MDB_txn **txn, MDB_dbi *main, MDB_dbi *changes)
{
   return !mdb_env_create (env) && !mdb_env_set_maxdbs (*env, 4) && !mdb_env_set_mapsize (*env, (size_t) 1 << 30) &&
          !mdb_env_open (*env, dir, 0, 0600) && !mdb_txn_begin (*env, NULL, flags, txn) &&
          !mdb_dbi_open (*txn, NULL, 0, main) && !mdb_dbi_open (*txn, "changes", 0, changes);
}

static void
test_legacy_record (void)
{
   char dir[] = "/tmp/djongo-pages-XXXXXX";
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      ctest_failed++;
      return;
   }
   CHECK (fill (e, 100), "the collection filled");
   dj_engine_close (e);

   /* the record put back where older versions kept it */
   MDB_env *env;
   MDB_txn *txn;
   MDB_dbi main, changes;
   MDB_val zero = {8, (void *) "\0\0\0\0\0\0\0\0"}, v;
   bool found;
   int64_t bytes = -1;
   CHECK (lmdb_open (dir, 0, &env, &txn, &main, &changes), "the data directory opened by LMDB");
   bytes = main_record_bytes (txn, main, &found);
   CHECK (found && bytes > 100 * 142, "the size record is in the unnamed database: %lld bytes", (long long) bytes);
   MDB_val k = {8, (void *) "\x01" "changes"};
   CHECK (mdb_get (txn, main, &k, &v) == 0, "read");
   bson_t legacy = BSON_INITIALIZER;
   BSON_APPEND_INT64 (&legacy, "bytes", bytes + 1000000);
   BSON_APPEND_INT64 (&legacy, "lost", 0);
   MDB_val lv = {legacy.len, (void *) bson_get_data (&legacy)};
   CHECK (mdb_del (txn, main, &k, NULL) == 0 && mdb_put (txn, changes, &zero, &lv, 0) == 0, "legacy record written");
   CHECK (mdb_txn_commit (txn) == 0, "committed");
   bson_destroy (&legacy);
   mdb_env_close (env);

   bson_error_t err;
   e = dj_engine_open (dir, NULL, &err);
   CHECK (e != NULL, "reopened");
   CHECK (e && ctest_run (e, NULL, "{\"insert\": \"c\", \"documents\": [{\"_id\": -1}]}"), "an insert logged");
   if (e) {
      dj_engine_close (e);
   }

   CHECK (lmdb_open (dir, MDB_RDONLY, &env, &txn, &main, &changes), "opened by LMDB again");
   int64_t after = main_record_bytes (txn, main, &found);
   CHECK (found && after > bytes + 1000000, "the legacy count went on in the unnamed database: %lld", (long long) after);
   CHECK (mdb_get (txn, changes, &zero, &v) == MDB_NOTFOUND, "the legacy record left the log");
   mdb_txn_abort (txn);
   mdb_env_close (env);
   ctest_rmdir (dir);
}

int
main (void)
{
   test_insert_pages ();
   test_legacy_record ();
   return CTEST_REPORT ("commit_pages");
}
