/*
 * text_vs_fts5 -- $text through a text index, the same words found by a
 * collection scan ($regex), and SQLite's FTS5 doing the same work, in one run.
 *
 *   text_vs_fts5 [N] [--markdown FILE]
 *
 * N documents (default 100000) of 12 words each: words drawn from a
 * 4000-word synthetic vocabulary (skewed: a few words are common), plus
 * marker words at known rates so every workload's result size is known:
 * "quasar" in 0.1% of the documents, "nebula" in 5%, the phrase "dark
 * matter" in 0.5% (and "dark" or "matter" alone in others). The engine
 * indexes {body: "text"} (English: Snowball stems, stop words); SQLite's
 * FTS5 table uses its porter tokenizer, the nearest to it. Each workload
 * runs 3 times per side; the table shows the best time and the rows found.
 *   rare        $text "quasar"                 MATCH 'quasar'
 *   common      $text "nebula"                 MATCH 'nebula'
 *   any of two  $text "quasar nebula"          MATCH 'quasar OR nebula'
 *   phrase      $text "\"dark matter\""        MATCH '"dark matter"'
 *   top 10      the above "common", sorted by
 *               textScore, limit 10            ORDER BY rank LIMIT 10
 * The scan column answers the same word with {body: {$regex: "\\bword\\b",
 * $options: "i"}} over the collection (no index), as an application
 * without a text index would.
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
 */
#include <string.h>

#include "bench.h"

static uint32_t rng = 12345;

static uint32_t
next_rand (void)
{
   rng = rng * 1103515245u + 12345u;
   return (rng >> 8) & 0xFFFFFF;
}

/* Word k of the vocabulary: three syllables of consonant + vowel. */
static void
vocab_word (int k, char *out)
{
   static const char cons[] = "bcdfgklmprstvz", vows[] = "aeiou";
   int n = 0;
   for (int s = 0; s < 3; s++) {
      out[n++] = cons[k % 14];
      k /= 14;
      out[n++] = vows[k % 5];
      k /= 5;
   }
   out[n] = 0;
}

static void
make_body (int i, char *out, size_t cap)
{
   size_t len = 0;
   for (int w = 0; w < 12; w++) {
      char word[16];
      double u = (double) next_rand () / 16777216.0;
      vocab_word ((int) (4000 * u * u * u), word);
      len += (size_t) snprintf (out + len, cap - len, "%s%s", w ? " " : "", word);
   }
   if (i % 1000 == 0) {
      len += (size_t) snprintf (out + len, cap - len, " quasar");
   }
   if (i % 20 == 7) {
      len += (size_t) snprintf (out + len, cap - len, " nebula");
   }
   if (i % 200 == 3) {
      len += (size_t) snprintf (out + len, cap - len, " dark matter");
   } else if (i % 50 == 5) {
      len += (size_t) snprintf (out + len, cap - len, " dark");
   } else if (i % 70 == 9) {
      len += (size_t) snprintf (out + len, cap - len, " matter");
   }
}

typedef int64_t (*run_fn) (bench_t *b, const char *q);

static double
best_of_3 (bench_t *b, run_fn fn, const char *q, int64_t *rows)
{
   double best = 1e9;
   for (int rep = 0; rep < 3; rep++) {
      double t = bench_now ();
      *rows = fn (b, q);
      t = bench_now () - t;
      best = t < best ? t : best;
   }
   return best;
}

int
main (int argc, char **argv)
{
   int n = 100000;
   bench_t b;
   bench_start (&b, argc, argv, "text_vs_fts5", DJ_ENGINE_NOSYNC, &n);
   sqlite3 *db = b.db;
   if (sqlite3_exec (db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                         "CREATE VIRTUAL TABLE docs USING fts5(body, tokenize = 'porter unicode61');",
                     NULL, NULL, NULL) != SQLITE_OK) {
      bench_die (&b, sqlite3_errmsg (db));
   }
   /* load both sides (timed: the engine builds its index after the load,
    * FTS5 indexes as it inserts) */
   double load_e = 0, load_s = 0, t;
   sqlite3_stmt *ins;
   sqlite3_prepare_v2 (db, "INSERT INTO docs (rowid, body) VALUES (?, ?)", -1, &ins, NULL);
   sqlite3_exec (db, "BEGIN", NULL, NULL, NULL);
   for (int first = 0; first < n; first += 1000) {
      bson_t *cmd = bson_new (), arr;
      char bodies[1000][160];
      int cnt = 0;
      BSON_APPEND_UTF8 (cmd, "insert", "docs");
      BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &arr);
      for (int i = first; i < first + 1000 && i < n; i++, cnt++) {
         char key[16];
         bson_t d;
         make_body (i, bodies[cnt], sizeof bodies[cnt]);
         snprintf (key, sizeof key, "%d", cnt);
         bson_append_document_begin (&arr, key, -1, &d);
         BSON_APPEND_INT32 (&d, "_id", i);
         BSON_APPEND_UTF8 (&d, "body", bodies[cnt]);
         bson_append_document_end (&arr, &d);
      }
      bson_append_array_end (cmd, &arr);
      t = bench_now ();
      bench_engine (&b, cmd, NULL);
      load_e += bench_now () - t;
      bson_destroy (cmd);
      t = bench_now ();
      for (int k = 0; k < cnt; k++) {
         sqlite3_bind_int (ins, 1, first + k);
         sqlite3_bind_text (ins, 2, bodies[k], -1, SQLITE_STATIC);
         sqlite3_step (ins);
         sqlite3_reset (ins);
      }
      load_s += bench_now () - t;
   }
   t = bench_now ();
   sqlite3_finalize (ins);
   sqlite3_exec (db, "COMMIT", NULL, NULL, NULL);
   load_s += bench_now () - t;
   double build = bench_now ();
   bench_engine_rows (&b, "{\"createIndexes\": \"docs\", \"indexes\": [{\"key\": {\"body\": \"text\"}, \"name\": \"body_text\"}]}");
   build = bench_now () - build;

   static const struct {
      const char *name, *text, *scan, *sql;
   } work[] = {
      {"rare (0.1%)", "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"$text\": {\"$search\": \"quasar\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"body\": {\"$regex\": \"\\\\bquasar\\\\b\", \"$options\": \"i\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT rowid FROM docs WHERE docs MATCH 'quasar'"},
      {"common (5%)", "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"$text\": {\"$search\": \"nebula\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"body\": {\"$regex\": \"\\\\bnebula\\\\b\", \"$options\": \"i\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT rowid FROM docs WHERE docs MATCH 'nebula'"},
      {"any of two", "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"$text\": {\"$search\": \"quasar nebula\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"body\": {\"$regex\": \"\\\\b(quasar|nebula)\\\\b\", \"$options\": \"i\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT rowid FROM docs WHERE docs MATCH 'quasar OR nebula'"},
      {"phrase (0.5%)", "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"$text\": {\"$search\": \"\\\"dark matter\\\"\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"body\": {\"$regex\": \"\\\\bdark matter\\\\b\", \"$options\": \"i\"}}}], \"cursor\": {\"batchSize\": 100000000}}",
       "SELECT rowid FROM docs WHERE docs MATCH '\"dark matter\"'"},
      {"top 10 by score", "{\"aggregate\": \"docs\", \"pipeline\": [{\"$match\": {\"$text\": {\"$search\": \"nebula\"}}}, {\"$sort\": {\"s\": {\"$meta\": \"textScore\"}}}, {\"$limit\": 10}], \"cursor\": {}}",
       NULL, "SELECT rowid FROM docs WHERE docs MATCH 'nebula' ORDER BY rank LIMIT 10"},
   };
   bench_title (&b, "Text search: text index vs collection scan vs SQLite %s FTS5, %d documents (best of 3, seconds)\n\n",
                sqlite3_libversion (), n);
   bench_print (&b, "Load: engine inserts %.3f s + text index build %.3f s; FTS5 inserts (indexing as it goes) %.3f s.\n\n",
                load_e, build, load_s);
   bench_print (&b, "| workload | rows (index / scan / FTS5) | $text, text index (s) | $regex, collection scan (s) | "
                    "FTS5 (s) | scan / index | index / FTS5 |\n|---|---|---:|---:|---:|---:|---:|\n");
   for (size_t w = 0; w < sizeof work / sizeof work[0]; w++) {
      int64_t ne = 0, nr = 0, ns = 0;
      double te = best_of_3 (&b, bench_engine_rows, work[w].text, &ne);
      double tr = work[w].scan ? best_of_3 (&b, bench_engine_rows, work[w].scan, &nr) : 0;
      double ts = best_of_3 (&b, bench_sqlite_rows, work[w].sql, &ns);
      char rows[64];
      if (work[w].scan) {
         snprintf (rows, sizeof rows, "%" PRId64 " / %" PRId64 " / %" PRId64, ne, nr, ns);
         bench_print (&b, "| %s | %s | %.4f | %.4f | %.4f | %.1f | %.2f |\n", work[w].name, rows, te, tr, ts, tr / te, te / ts);
      } else {
         snprintf (rows, sizeof rows, "%" PRId64 " / - / %" PRId64, ne, ns);
         bench_print (&b, "| %s | %s | %.4f | - | %.4f | - | %.2f |\n", work[w].name, rows, te, ts, te / ts);
      }
      if (ne <= 0 || ns <= 0) {
         fprintf (stderr, "workload %s returned nothing (engine %" PRId64 ", sqlite %" PRId64 ")\n", work[w].name, ne, ns);
      }
   }
   bench_close (&b);
   return 0;
}
