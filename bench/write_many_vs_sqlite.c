/*
 * write_many_vs_sqlite -- deletes and updates of many rows at once, the
 * engine and SQLite doing the same work (issue 18: Django's delete() or
 * update() of a filtered queryset).
 *
 *   write_many_vs_sqlite [ROUNDS] [--sync] [--txn] [--markdown FILE]
 *
 * The table of bench/orm_ops.py's books: 10,000 rows {_id, title, author_id,
 * rating, pages} with indexes on rating and author_id (SQLite: the same
 * table, INTEGER PRIMARY KEY id, the two indexes). Each round inserts 1,000
 * rows with a rating of their own (one transaction, not timed), then times:
 *   update_many  UPDATE ... SET pages = pages + 1 WHERE rating = ?  (1,000 rows)
 *   delete_many  DELETE ... WHERE rating = ?                       (1,000 rows)
 * one statement each, in its own transaction. Both sides skip fsync by
 * default (engine: DJ_ENGINE_NOSYNC; SQLite: synchronous=OFF with WAL);
 * --sync makes both fsync every commit. --txn runs each statement inside
 * a transaction begun and committed around it, as Django's atomic() does
 * (the engine: a snapshot transaction and the command in it; SQLite:
 * BEGIN ... COMMIT). Prints operations per second.
 */
#include <string.h>

#include "bench.h"

#define ROWS 10000
#define AUTHORS 100
#define BATCH 1000

/* The engine's insert of rows [first, first + n), all with `rating`. */
static void
engine_insert (bench_t *b, int first, int n, int rating_of_row)
{
   bson_t *cmd = BCON_NEW ("insert", "books");
   bson_t docs;
   BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &docs);
   for (int i = 0; i < n; i++) {
      char key[16];
      bson_t d;
      snprintf (key, sizeof key, "%d", i);
      BSON_APPEND_DOCUMENT_BEGIN (&docs, key, &d);
      BSON_APPEND_INT32 (&d, "_id", first + i);
      BSON_APPEND_UTF8 (&d, "title", "book");
      BSON_APPEND_INT32 (&d, "author_id", (first + i) % AUTHORS + 1);
      BSON_APPEND_INT32 (&d, "rating", rating_of_row >= 0 ? rating_of_row : (first + i) % 100);
      BSON_APPEND_INT32 (&d, "pages", 50 + (first + i) * 7 % 850);
      bson_append_document_end (&docs, &d);
   }
   bson_append_array_end (cmd, &docs);
   bench_engine (b, cmd, NULL);
   bson_destroy (cmd);
}

static void
sqlite_insert (bench_t *b, int first, int n, int rating_of_row)
{
   sqlite3_stmt *st;
   sqlite3_exec (b->db, "BEGIN", NULL, NULL, NULL);
   sqlite3_prepare_v2 (b->db, "INSERT INTO books (id, title, author_id, rating, pages) VALUES (?, 'book', ?, ?, ?)", -1,
                       &st, NULL);
   for (int i = 0; i < n; i++) {
      sqlite3_bind_int (st, 1, first + i);
      sqlite3_bind_int (st, 2, (first + i) % AUTHORS + 1);
      sqlite3_bind_int (st, 3, rating_of_row >= 0 ? rating_of_row : (first + i) % 100);
      sqlite3_bind_int (st, 4, 50 + (first + i) * 7 % 850);
      if (sqlite3_step (st) != SQLITE_DONE) {
         bench_die (b, sqlite3_errmsg (b->db));
      }
      sqlite3_reset (st);
   }
   sqlite3_finalize (st);
   sqlite3_exec (b->db, "COMMIT", NULL, NULL, NULL);
}

static void
sqlite_run (bench_t *b, bool txn, const char *sql, int rating)
{
   sqlite3_stmt *st;
   if (txn) {
      sqlite3_exec (b->db, "BEGIN", NULL, NULL, NULL);
   }
   if (sqlite3_prepare_v2 (b->db, sql, -1, &st, NULL) != SQLITE_OK) {
      bench_die (b, sqlite3_errmsg (b->db));
   }
   sqlite3_bind_int (st, 1, rating);
   if (sqlite3_step (st) != SQLITE_DONE || sqlite3_changes (b->db) != BATCH) {
      bench_die (b, "sqlite: not 1000 rows written");
   }
   sqlite3_finalize (st);
   if (txn) {
      sqlite3_exec (b->db, "COMMIT", NULL, NULL, NULL);
   }
}

/* The engine's write (in a transaction of its own when txn); its reply
 * must say 1,000 rows. */
static void
engine_run (bench_t *b, bool txn, bson_t *cmd)
{
   bson_t reply;
   bson_iter_t it;
   bson_error_t err;
   if (txn) {
      dj_engine_txn_t *t = dj_engine_txn_begin_snapshot (b->engine, &err);
      if (!t || !dj_engine_run_command_in (b->engine, t, "bench", cmd, &reply) || !dj_engine_txn_commit (t, &err)) {
         bench_die (b, "engine: the transaction failed");
      }
   } else {
      bench_engine (b, cmd, &reply);
   }
   if (!bson_iter_init_find (&it, &reply, "n") || bson_iter_as_int64 (&it) != BATCH) {
      bench_die (b, "engine: not 1000 rows written");
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
}

int
main (int argc, char **argv)
{
   int rounds = 50;
   bool sync, txn;
   bench_t b;
   bench_start_durable (&b, argc, argv, "write_many_vs_sqlite", &rounds, &sync, &txn);
   sqlite3_exec (b.db,
                 "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER, rating INTEGER, pages INTEGER);"
                 "CREATE INDEX books_rating ON books(rating); CREATE INDEX books_author ON books(author_id);",
                 NULL, NULL, NULL);
   bson_t *ci = BCON_NEW ("createIndexes", "books", "indexes", "[", "{", "key", "{", "rating", BCON_INT32 (1), "}", "name",
                          "rating_1", "}", "{", "key", "{", "author_id", BCON_INT32 (1), "}", "name", "author_id_1", "}", "]");
   bench_engine (&b, ci, NULL);
   bson_destroy (ci);
   for (int lo = 0; lo < ROWS; lo += BATCH) {
      engine_insert (&b, lo, BATCH, -1);
      sqlite_insert (&b, lo, BATCH, -1);
   }

   double t_eu = 0, t_ed = 0, t_su = 0, t_sd = 0;
   for (int r = 0; r < rounds; r++) {
      int rating = 200 + r, first = ROWS + r * BATCH;
      engine_insert (&b, first, BATCH, rating);
      sqlite_insert (&b, first, BATCH, rating);
      double t = bench_now ();
      engine_run (&b, txn, BCON_NEW ("update", "books", "updates", "[", "{", "q", "{", "rating", BCON_INT32 (rating), "}", "u",
                                "{", "$inc", "{", "pages", BCON_INT32 (1), "}", "}", "multi", BCON_BOOL (true), "}", "]"));
      t_eu += bench_now () - t;
      t = bench_now ();
      sqlite_run (&b, txn, "UPDATE books SET pages = pages + 1 WHERE rating = ?", rating);
      t_su += bench_now () - t;
      t = bench_now ();
      engine_run (&b, txn, BCON_NEW ("delete", "books", "deletes", "[", "{", "q", "{", "rating", BCON_INT32 (rating), "}", "limit",
                                BCON_INT32 (0), "}", "]"));
      t_ed += bench_now () - t;
      t = bench_now ();
      sqlite_run (&b, txn, "DELETE FROM books WHERE rating = ?", rating);
      t_sd += bench_now () - t;
   }
   bench_title (&b, "Writes of 1,000 rows at once, engine vs SQLite %s: %d rounds over %d rows (%s%s)\n\n",
                sqlite3_libversion (), rounds, ROWS, sync ? "fsync on every commit" : "no fsync on either side",
                txn ? ", each in a transaction of its own" : "");
   bench_print (&b, "| workload | djongo engine (ops/s) | SQLite (ops/s) | engine / SQLite |\n|---|---:|---:|---:|\n");
   bench_print (&b, "| update_many | %.0f | %.0f | %.2f |\n", rounds / t_eu, rounds / t_su, t_su / t_eu);
   bench_print (&b, "| delete_many | %.0f | %.0f | %.2f |\n", rounds / t_ed, rounds / t_sd, t_sd / t_ed);
   bench_close (&b);
   return 0;
}
