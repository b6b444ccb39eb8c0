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
#include <string.h>

#include "bench.h"

int
main (int argc, char **argv)
{
   int n = 100000;
   bench_t b;
   bench_start (&b, argc, argv, "agg_vs_sqlite", DJ_ENGINE_NOSYNC, &n);
   sqlite3 *db = b.db;
   sqlite3_exec (db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                     "CREATE TABLE orders (id INTEGER PRIMARY KEY, cust INTEGER, amt REAL, note TEXT);"
                     "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);", NULL, NULL, NULL);
   /* load: batches of 1000 on both sides */
   sqlite3_exec (db, "BEGIN", NULL, NULL, NULL);
   sqlite3_stmt *ins;
   sqlite3_prepare_v2 (db, "INSERT INTO orders VALUES (?, ?, ?, ?)", -1, &ins, NULL);
   for (int first = 0; first < n; first += 1000) {
      bson_t *cmd = bson_new (), arr;
      BSON_APPEND_UTF8 (cmd, "insert", "orders");
      BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &arr);
      for (int i = first; i < first + 1000 && i < n; i++) {
         char key[16];
         bson_t d;
         double amt = (double) ((i * 7919) % 100000) / 100.0;
         snprintf (key, sizeof key, "%d", i - first);
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
      bench_engine (&b, cmd, NULL);
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
      bench_engine (&b, cmd, NULL);
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
   bench_title (&b, "Aggregation vs SQLite %s, %d orders, 1000 customers (best of 3, seconds)\n\n", sqlite3_libversion (), n);
   bench_print (&b, "| workload | djongo engine (s) | SQLite (s) | engine / SQLite time |\n|---|---:|---:|---:|\n");
   for (size_t w = 0; w < sizeof work / sizeof work[0]; w++) {
      double be = 1e9, bs = 1e9;
      int64_t ne = 0, ns = 0;
      for (int rep = 0; rep < 3; rep++) {
         double t = bench_now ();
         ne = bench_engine_rows (&b, work[w].pipeline);
         t = bench_now () - t;
         be = t < be ? t : be;
         t = bench_now ();
         ns = bench_sqlite_rows (&b, work[w].sql);
         t = bench_now () - t;
         bs = t < bs ? t : bs;
      }
      bench_print (&b, "| %s | %.4f | %.4f | %.2f |\n", work[w].name, be, bs, be / bs);
      if (ne <= 0 || ns <= 0) {
         fprintf (stderr, "workload %s returned nothing (engine %" PRId64 ", sqlite %" PRId64 ")\n", work[w].name, ne, ns);
      }
   }
   bench_close (&b);
   return 0;
}
