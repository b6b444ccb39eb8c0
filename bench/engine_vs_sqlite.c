/*
 * engine_vs_sqlite -- the embedded engine and SQLite doing the same work.
 *
 *   engine_vs_sqlite [N] [--sync] [--markdown FILE]
 *
 * Four workloads, each as the application would issue it (one statement,
 * one transaction, like Django in autocommit mode):
 *   insert      N single-document inserts           (INSERT one row)
 *   find_id     N lookups by primary key            (SELECT ... WHERE id = ?)
 *   range       N/10 indexed range reads of ~50     (SELECT ... WHERE k BETWEEN)
 *   update      N updates by primary key            (UPDATE ... WHERE id = ?)
 * Both sides skip fsync by default (engine: DJ_ENGINE_NOSYNC; SQLite:
 * synchronous=OFF with WAL); --sync makes both fsync every commit.
 * Prints a table of operations per second and the engine/SQLite ratio.
 */
#include <string.h>

#include "bench.h"

/* The four workloads as a table: each side's operation i, so that one loop
 * times every workload on both sides the same way. */
typedef struct {
   const char *name;
   int share;                                     /* it runs n / share operations */
   bson_t *(*command) (int i, int n);             /* the engine's command for operation i */
   const char *sql;                               /* SQLite's statement, prepared once ... */
   void (*bind) (sqlite3_stmt *st, int i, int n); /* ... and its parameters for operation i */
} workload_t;

static bson_t *
insert_command (int i, int n)
{
   return BCON_NEW ("insert", "c", "documents", "[", "{", "_id", BCON_INT32 (i), "k", BCON_INT32 ((i * 7919) % n), "name",
                    BCON_UTF8 ("some entry title"), "score", BCON_DOUBLE (i * 0.5), "}", "]");
}

static void
insert_bind (sqlite3_stmt *st, int i, int n)
{
   sqlite3_bind_int (st, 1, i);
   sqlite3_bind_int (st, 2, (i * 7919) % n);
   sqlite3_bind_text (st, 3, "some entry title", -1, SQLITE_STATIC);
   sqlite3_bind_double (st, 4, i * 0.5);
}

static bson_t *
find_id_command (int i, int n)
{
   return BCON_NEW ("find", "c", "filter", "{", "_id", BCON_INT32 ((i * 31) % n), "}");
}

static void
find_id_bind (sqlite3_stmt *st, int i, int n)
{
   sqlite3_bind_int (st, 1, (i * 31) % n);
}

static int
range_low (int i, int n)
{
   return (i * 97) % (n - 60);
}

static bson_t *
range_command (int i, int n)
{
   int lo = range_low (i, n);
   return BCON_NEW ("find", "c", "filter", "{", "k", "{", "$gte", BCON_INT32 (lo), "$lt", BCON_INT32 (lo + 50), "}", "}",
                    "batchSize", BCON_INT32 (1000));
}

static void
range_bind (sqlite3_stmt *st, int i, int n)
{
   int lo = range_low (i, n);
   sqlite3_bind_int (st, 1, lo);
   sqlite3_bind_int (st, 2, lo + 50);
}

static bson_t *
update_command (int i, int n)
{
   return BCON_NEW ("update", "c", "updates", "[", "{", "q", "{", "_id", BCON_INT32 ((i * 13) % n), "}", "u", "{", "$inc",
                    "{", "score", BCON_DOUBLE (1.0), "}", "}", "}", "]");
}

static void
update_bind (sqlite3_stmt *st, int i, int n)
{
   sqlite3_bind_int (st, 1, (i * 13) % n);
}

static const workload_t workloads[] = {
   {"insert", 1, insert_command, "INSERT INTO c (id, k, name, score) VALUES (?, ?, ?, ?)", insert_bind},
   {"find_id", 1, find_id_command, "SELECT id, k, name, score FROM c WHERE id = ?", find_id_bind},
   {"range", 10, range_command, "SELECT id, k, name, score FROM c WHERE k >= ? AND k < ?", range_bind}, /* ~50 each */
   {"update", 1, update_command, "UPDATE c SET score = score + 1 WHERE id = ?", update_bind},
};

int
main (int argc, char **argv)
{
   int n = 20000;
   bool sync = false;
   const char *md = NULL;
   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--sync")) {
         sync = true;
      } else if (!strcmp (argv[i], "--markdown") && i + 1 < argc) {
         md = argv[++i];
      } else {
         n = atoi (argv[i]);
      }
   }
   bench_t b;
   bench_open (&b, "engine_vs_sqlite", sync ? 0 : DJ_ENGINE_NOSYNC, md);
   char pragma[128];
   snprintf (pragma, sizeof pragma, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync ? "FULL" : "OFF");
   sqlite3_exec (b.db, pragma, NULL, NULL, NULL);
   sqlite3_exec (b.db, "CREATE TABLE c (id INTEGER PRIMARY KEY, k INTEGER, name TEXT, score REAL); CREATE INDEX c_k ON c(k);",
                 NULL, NULL, NULL);
   bson_t *ci = BCON_NEW ("createIndexes", "c", "indexes", "[", "{", "key", "{", "k", BCON_INT32 (1), "}", "name", "k_1", "}", "]");
   bench_engine (&b, ci, NULL);
   bson_destroy (ci);

   bench_title (&b, "Engine vs SQLite %s, N = %d, one statement per transaction (%s)\n\n", sqlite3_libversion (), n,
                sync ? "fsync on every commit" : "no fsync on either side");
   bench_print (&b, "| workload | djongo engine (ops/s) | SQLite (ops/s) | engine / SQLite |\n|---|---:|---:|---:|\n");
   for (size_t w = 0; w < sizeof workloads / sizeof workloads[0]; w++) {
      const workload_t *wl = &workloads[w];
      int ops = n / wl->share;
      double t = bench_now ();
      for (int i = 0; i < ops; i++) {
         bson_t *cmd = wl->command (i, n);
         bench_engine (&b, cmd, NULL);
         bson_destroy (cmd);
      }
      double engine = ops / (bench_now () - t);
      sqlite3_stmt *st;
      if (sqlite3_prepare_v2 (b.db, wl->sql, -1, &st, NULL) != SQLITE_OK) {
         bench_die (&b, sqlite3_errmsg (b.db));
      }
      t = bench_now ();
      for (int i = 0; i < ops; i++) {
         int rc;
         wl->bind (st, i, n);
         while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
            (void) sqlite3_column_text (st, 2); /* a read reads its rows, as the engine's reply carries them */
         }
         if (rc != SQLITE_DONE) {
            bench_die (&b, sqlite3_errmsg (b.db));
         }
         sqlite3_reset (st);
      }
      double sqlite = ops / (bench_now () - t);
      sqlite3_finalize (st);
      bench_print (&b, "| %s | %.0f | %.0f | %.2f |\n", wl->name, engine, sqlite, engine / sqlite);
   }
   bench_close (&b);
   return 0;
}
