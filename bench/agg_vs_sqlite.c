/*
 * agg_vs_sqlite -- aggregation pipelines and SQLite on the same data.
 *
 *   agg_vs_sqlite [N] [--markdown FILE]
 *
 * N orders (default 100000) over 1000 customers, loaded into both. Each
 * workload runs 3 times per side; the table shows the best time.
 *   group   $group by customer, $sum amount      GROUP BY cust, SUM(amt)
 *   sort    $sort by amount desc, whole set       ORDER BY amt DESC
 *   topk    $sort + $limit 10                     ORDER BY amt DESC LIMIT 10
 *   lookup  $lookup customer by _id, $count       JOIN customers, COUNT(*)
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dj_engine.h"

static double
now (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int64_t
engine_agg (dj_engine_t *e, const char *json)
{
   bson_error_t err;
   bson_t *cmd = bson_new_from_json ((const uint8_t *) json, -1, &err), reply;
   if (!cmd) {
      fprintf (stderr, "bad JSON: %s\n", err.message);
      exit (1);
   }
   if (!dj_engine_run_command (e, "bench", cmd, &reply)) {
      char *j = bson_as_relaxed_extended_json (&reply, NULL);
      fprintf (stderr, "engine command failed: %s\n", j);
      exit (1);
   }
   /* count the first batch (batchSize is set large enough) */
   bson_iter_t it, bi;
   int64_t n = 0;
   if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &it) && bson_iter_recurse (&it, &bi)) {
      while (bson_iter_next (&bi)) {
         n++;
      }
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return n;
}

static int64_t
sqlite_rows (sqlite3 *db, const char *sql)
{
   sqlite3_stmt *st;
   int64_t n = 0;
   if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK) {
      fprintf (stderr, "sqlite: %s\n", sqlite3_errmsg (db));
      exit (1);
   }
   while (sqlite3_step (st) == SQLITE_ROW) {
      (void) sqlite3_column_double (st, 0);
      n++;
   }
   sqlite3_finalize (st);
   return n;
}

int
main (int argc, char **argv)
{
   int n = 100000;
   const char *md = NULL;
   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--markdown") && i + 1 < argc) {
         md = argv[++i];
      } else {
         n = atoi (argv[i]);
      }
   }
   char dir[] = "/tmp/djongo-aggbench-XXXXXX";
   if (!mkdtemp (dir)) {
      return 1;
   }
   char edir[256], spath[256];
   snprintf (edir, sizeof edir, "%s/engine", dir);
   snprintf (spath, sizeof spath, "%s/s.db", dir);
   bson_error_t err;
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC};
   dj_engine_t *e = dj_engine_open (edir, &opts, &err);
   sqlite3 *db;
   if (!e || sqlite3_open (spath, &db) != SQLITE_OK) {
      fprintf (stderr, "open failed\n");
      return 1;
   }
   sqlite3_exec (db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                     "CREATE TABLE orders (id INTEGER PRIMARY KEY, cust INTEGER, amt REAL, note TEXT);"
                     "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);", NULL, NULL, NULL);
   /* load: batches of 1000 on both sides */
   sqlite3_exec (db, "BEGIN", NULL, NULL, NULL);
   sqlite3_stmt *ins;
   sqlite3_prepare_v2 (db, "INSERT INTO orders VALUES (?, ?, ?, ?)", -1, &ins, NULL);
   for (int b = 0; b < n; b += 1000) {
      bson_t *cmd = bson_new (), arr;
      BSON_APPEND_UTF8 (cmd, "insert", "orders");
      BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &arr);
      for (int i = b; i < b + 1000 && i < n; i++) {
         char key[16];
         bson_t d;
         double amt = (double) ((i * 7919) % 100000) / 100.0;
         snprintf (key, sizeof key, "%d", i - b);
         bson_append_document_begin (&arr, key, -1, &d);
         BSON_APPEND_INT32 (&d, "_id", i);
         BSON_APPEND_INT32 (&d, "cust", i % 1000);
         BSON_APPEND_DOUBLE (&d, "amt", amt);
         BSON_APPEND_UTF8 (&d, "note", "ordinary order");
         bson_append_document_end (&arr, &d);
         sqlite3_bind_int (ins, 1, i);
         sqlite3_bind_int (ins, 2, i % 1000);
         sqlite3_bind_double (ins, 3, amt);
         sqlite3_bind_text (ins, 4, "ordinary order", -1, SQLITE_STATIC);
         sqlite3_step (ins);
         sqlite3_reset (ins);
      }
      bson_append_array_end (cmd, &arr);
      bson_t reply;
      dj_engine_run_command (e, "bench", cmd, &reply);
      bson_destroy (&reply);
      bson_destroy (cmd);
   }
   sqlite3_finalize (ins);
   sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
   sqlite3_exec (db, "BEGIN", NULL, NULL, NULL);
   {
      bson_t *cmd = bson_new (), arr;
      BSON_APPEND_UTF8 (cmd, "insert", "customers");
      BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &arr);
      for (int i = 0; i < 1000; i++) {
         char key[16], sql[128];
         bson_t d;
         snprintf (key, sizeof key, "%d", i);
         bson_append_document_begin (&arr, key, -1, &d);
         BSON_APPEND_INT32 (&d, "_id", i);
         BSON_APPEND_UTF8 (&d, "name", "customer");
         bson_append_document_end (&arr, &d);
         snprintf (sql, sizeof sql, "INSERT INTO customers VALUES (%d, 'customer')", i);
         sqlite3_exec (db, sql, NULL, NULL, NULL);
      }
      bson_append_array_end (cmd, &arr);
      bson_t reply;
      dj_engine_run_command (e, "bench", cmd, &reply);
      bson_destroy (&reply);
      bson_destroy (cmd);
   }
   sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);

   static const struct {
      const char *name, *pipeline, *sql;
   } work[] = {
      {"group", "{\"aggregate\": \"orders\", \"pipeline\": [{\"$group\": {\"_id\": \"$cust\", \"s\": {\"$sum\": \"$amt\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT cust, SUM(amt) FROM orders GROUP BY cust"},
      {"sort", "{\"aggregate\": \"orders\", \"pipeline\": [{\"$sort\": {\"amt\": -1}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT * FROM orders ORDER BY amt DESC"},
      {"topk", "{\"aggregate\": \"orders\", \"pipeline\": [{\"$sort\": {\"amt\": -1}}, {\"$limit\": 10}], \"cursor\": {}}",
       "SELECT * FROM orders ORDER BY amt DESC LIMIT 10"},
      {"lookup", "{\"aggregate\": \"orders\", \"pipeline\": [{\"$lookup\": {\"from\": \"customers\", \"localField\": \"cust\", \"foreignField\": \"_id\", \"as\": \"c\"}}, {\"$unwind\": \"$c\"}, {\"$count\": \"n\"}], \"cursor\": {}}",
       "SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.cust"},
   };
   FILE *out = md ? fopen (md, "w") : NULL;
   char head[256];
   snprintf (head, sizeof head, "Aggregation vs SQLite %s, %d orders, 1000 customers (best of 3, seconds)\n\n", sqlite3_libversion (), n);
   const char *th = "| workload | djongo engine (s) | SQLite (s) | engine / SQLite time |\n|---|---:|---:|---:|\n";
   fputs (head, stdout);
   fputs (th, stdout);
   if (out) {
      fprintf (out, "# %s%s", head, th);
   }
   for (size_t w = 0; w < sizeof work / sizeof work[0]; w++) {
      double be = 1e9, bs = 1e9;
      int64_t ne = 0, ns = 0;
      for (int rep = 0; rep < 3; rep++) {
         double t = now ();
         ne = engine_agg (e, work[w].pipeline);
         t = now () - t;
         be = t < be ? t : be;
         t = now ();
         ns = sqlite_rows (db, work[w].sql);
         t = now () - t;
         bs = t < bs ? t : bs;
      }
      char line[256];
      snprintf (line, sizeof line, "| %s | %.4f | %.4f | %.2f |\n", work[w].name, be, bs, be / bs);
      fputs (line, stdout);
      if (out) {
         fputs (line, out);
      }
      if (ne <= 0 || ns <= 0) {
         fprintf (stderr, "workload %s returned nothing (engine %" PRId64 ", sqlite %" PRId64 ")\n", work[w].name, ne, ns);
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
