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
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "dj_engine.h"

static double
now (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
die (const char *what)
{
   fprintf (stderr, "engine_vs_sqlite: %s\n", what);
   exit (1);
}

static void
run_engine (dj_engine_t *e, bson_t *cmd)
{
   bson_t reply;
   if (!dj_engine_run_command (e, "bench", cmd, &reply)) {
      char *j = bson_as_relaxed_extended_json (&reply, NULL);
      fprintf (stderr, "engine command failed: %s\n", j);
      exit (1);
   }
   bson_destroy (&reply);
}

typedef struct {
   const char *name;
   double engine, sqlite; /* ops per second */
} row_t;

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
   char dir[] = "/tmp/djongo-bench-XXXXXX";
   if (!mkdtemp (dir)) {
      die ("mkdtemp");
   }
   char engine_dir[256], sqlite_path[256];
   snprintf (engine_dir, sizeof engine_dir, "%s/engine", dir);
   snprintf (sqlite_path, sizeof sqlite_path, "%s/sqlite.db", dir);

   bson_error_t err;
   dj_engine_options_t opts = {.flags = sync ? 0 : DJ_ENGINE_NOSYNC};
   dj_engine_t *e = dj_engine_open (engine_dir, &opts, &err);
   if (!e) {
      die (err.message);
   }
   sqlite3 *db;
   if (sqlite3_open (sqlite_path, &db) != SQLITE_OK) {
      die ("sqlite open");
   }
   char pragma[128];
   snprintf (pragma, sizeof pragma, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync ? "FULL" : "OFF");
   sqlite3_exec (db, pragma, NULL, NULL, NULL);
   sqlite3_exec (db, "CREATE TABLE c (id INTEGER PRIMARY KEY, k INTEGER, name TEXT, score REAL); CREATE INDEX c_k ON c(k);",
                 NULL, NULL, NULL);
   bson_t *ci = BCON_NEW ("createIndexes", "c", "indexes", "[", "{", "key", "{", "k", BCON_INT32 (1), "}", "name", "k_1", "}", "]");
   run_engine (e, ci);
   bson_destroy (ci);

   row_t rows[4] = {{"insert"}, {"find_id"}, {"range"}, {"update"}};
   double t;

   /* insert */
   t = now ();
   for (int i = 0; i < n; i++) {
      bson_t *cmd = BCON_NEW ("insert", "c", "documents", "[", "{", "_id", BCON_INT32 (i), "k", BCON_INT32 ((i * 7919) % n),
                              "name", BCON_UTF8 ("some entry title"), "score", BCON_DOUBLE (i * 0.5), "}", "]");
      run_engine (e, cmd);
      bson_destroy (cmd);
   }
   rows[0].engine = n / (now () - t);
   sqlite3_stmt *ins;
   sqlite3_prepare_v2 (db, "INSERT INTO c (id, k, name, score) VALUES (?, ?, ?, ?)", -1, &ins, NULL);
   t = now ();
   for (int i = 0; i < n; i++) {
      sqlite3_bind_int (ins, 1, i);
      sqlite3_bind_int (ins, 2, (i * 7919) % n);
      sqlite3_bind_text (ins, 3, "some entry title", -1, SQLITE_STATIC);
      sqlite3_bind_double (ins, 4, i * 0.5);
      if (sqlite3_step (ins) != SQLITE_DONE) {
         die ("sqlite insert");
      }
      sqlite3_reset (ins);
   }
   rows[0].sqlite = n / (now () - t);
   sqlite3_finalize (ins);

   /* find by _id */
   t = now ();
   for (int i = 0; i < n; i++) {
      bson_t *cmd = BCON_NEW ("find", "c", "filter", "{", "_id", BCON_INT32 ((i * 31) % n), "}");
      run_engine (e, cmd);
      bson_destroy (cmd);
   }
   rows[1].engine = n / (now () - t);
   sqlite3_stmt *sel;
   sqlite3_prepare_v2 (db, "SELECT id, k, name, score FROM c WHERE id = ?", -1, &sel, NULL);
   t = now ();
   for (int i = 0; i < n; i++) {
      sqlite3_bind_int (sel, 1, (i * 31) % n);
      while (sqlite3_step (sel) == SQLITE_ROW) {
         (void) sqlite3_column_text (sel, 2);
      }
      sqlite3_reset (sel);
   }
   rows[1].sqlite = n / (now () - t);
   sqlite3_finalize (sel);

   /* indexed range, ~50 documents each */
   int nr = n / 10;
   t = now ();
   for (int i = 0; i < nr; i++) {
      int lo = (i * 97) % (n - 60);
      bson_t *cmd = BCON_NEW ("find", "c", "filter", "{", "k", "{", "$gte", BCON_INT32 (lo), "$lt", BCON_INT32 (lo + 50), "}", "}",
                              "batchSize", BCON_INT32 (1000));
      run_engine (e, cmd);
      bson_destroy (cmd);
   }
   rows[2].engine = nr / (now () - t);
   sqlite3_prepare_v2 (db, "SELECT id, k, name, score FROM c WHERE k >= ? AND k < ?", -1, &sel, NULL);
   t = now ();
   for (int i = 0; i < nr; i++) {
      int lo = (i * 97) % (n - 60);
      sqlite3_bind_int (sel, 1, lo);
      sqlite3_bind_int (sel, 2, lo + 50);
      while (sqlite3_step (sel) == SQLITE_ROW) {
         (void) sqlite3_column_text (sel, 2);
      }
      sqlite3_reset (sel);
   }
   rows[2].sqlite = nr / (now () - t);
   sqlite3_finalize (sel);

   /* update by _id */
   t = now ();
   for (int i = 0; i < n; i++) {
      bson_t *cmd = BCON_NEW ("update", "c", "updates", "[", "{", "q", "{", "_id", BCON_INT32 ((i * 13) % n), "}", "u", "{",
                              "$inc", "{", "score", BCON_DOUBLE (1.0), "}", "}", "}", "]");
      run_engine (e, cmd);
      bson_destroy (cmd);
   }
   rows[3].engine = n / (now () - t);
   sqlite3_stmt *upd;
   sqlite3_prepare_v2 (db, "UPDATE c SET score = score + 1 WHERE id = ?", -1, &upd, NULL);
   t = now ();
   for (int i = 0; i < n; i++) {
      sqlite3_bind_int (upd, 1, (i * 13) % n);
      if (sqlite3_step (upd) != SQLITE_DONE) {
         die ("sqlite update");
      }
      sqlite3_reset (upd);
   }
   rows[3].sqlite = n / (now () - t);
   sqlite3_finalize (upd);

   FILE *out = md ? fopen (md, "w") : NULL;
   char head[256];
   snprintf (head, sizeof head, "Engine vs SQLite %s, N = %d, one statement per transaction (%s)\n\n", sqlite3_libversion (),
             n, sync ? "fsync on every commit" : "no fsync on either side");
   fputs (head, stdout);
   const char *th = "| workload | djongo engine (ops/s) | SQLite (ops/s) | engine / SQLite |\n|---|---:|---:|---:|\n";
   fputs (th, stdout);
   if (out) {
      fputs ("# ", out);
      fputs (head, out);
      fputs (th, out);
   }
   for (int i = 0; i < 4; i++) {
      char line[256];
      snprintf (line, sizeof line, "| %s | %.0f | %.0f | %.2f |\n", rows[i].name, rows[i].engine, rows[i].sqlite,
                rows[i].engine / rows[i].sqlite);
      fputs (line, stdout);
      if (out) {
         fputs (line, out);
      }
   }
   if (out) {
      fclose (out);
   }
   sqlite3_close (db);
   dj_engine_close (e);
   char *rm = bson_strdup_printf ("rm -rf %s", dir);
   if (system (rm) != 0) {
      fprintf (stderr, "could not remove %s\n", dir);
   }
   bson_free (rm);
   return 0;
}
