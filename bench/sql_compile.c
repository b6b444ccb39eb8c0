/*
 * sql_compile -- how long the compiler takes per statement.
 *
 *   sql_compile CORPUS.jsonl [REPEAT]
 *
 * CORPUS: one JSON array [SQL, [params...]] a line. For each statement,
 * prints one JSON line {"i": n, "ok": bool, "cold_ns": t, "cached_ns": t}:
 *   cold   -- dj_plan_new + dj_plan_bind + cleanup (parse and compile, as
 *             for a statement seen for the first time);
 *   cached -- dj_plan_cache_get (a hit) + dj_plan_bind + release (what the
 *             driver pays for a statement it has seen before).
 * Each is the median of REPEAT runs (default 101). bench/sql_compile.py
 * runs it beside the original djongo's translator and writes the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dj_compile.h"

static int64_t
now_ns (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp64 (const void *a, const void *b)
{
   int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
   return x < y ? -1 : x > y;
}

/* The median time of REPEAT runs of what the driver does per statement:
 * get a plan, bind it, drop the commands and the plan. With a cache the plan
 * is a cache hit (released); without one it is parsed and compiled afresh
 * (destroyed) -- the one difference between the "cached" and "cold" columns. */
static int64_t
median_ns (int64_t *t, int repeat, dj_plan_cache_t *cache, const char *sql, const bson_value_t *params, int n)
{
   size_t len = strlen (sql);
   bson_error_t error;
   dj_mql_t m;
   for (int r = 0; r < repeat; r++) {
      int64_t t0 = now_ns ();
      dj_plan_t *plan = cache ? dj_plan_cache_get (cache, sql, len, &error) : dj_plan_new (sql, len, &error);
      dj_plan_bind (plan, "bench", params, n, &m, &error);
      dj_mql_cleanup (&m);
      if (cache) {
         dj_plan_release (plan);
      } else {
         dj_plan_destroy (plan);
      }
      t[r] = now_ns () - t0;
   }
   qsort (t, (size_t) repeat, sizeof *t, cmp64);
   return t[repeat / 2];
}

int
main (int argc, char **argv)
{
   if (argc < 2) {
      fprintf (stderr, "usage: sql_compile CORPUS.jsonl [REPEAT]\n");
      return 2;
   }
   int repeat = argc > 2 ? atoi (argv[2]) : 101;
   FILE *f = fopen (argv[1], "r");
   if (!f || repeat < 1) {
      fprintf (stderr, "sql_compile: cannot read %s\n", argv[1]);
      return 2;
   }
   int64_t *t = malloc (sizeof *t * (size_t) repeat);
   dj_plan_cache_t *cache = dj_plan_cache_new (4096);
   char *line = NULL;
   size_t cap = 0;
   for (int i = 0; getline (&line, &cap, f) > 0; i++) {
      bson_error_t error;
      bson_t holder;
      char *w = bson_strdup_printf ("{\"b\": %s}", line);
      bool parsed = bson_init_from_json (&holder, w, -1, &error);
      bson_free (w);
      bson_iter_t it, a, p;
      const char *sql = NULL;
      bson_value_t params[256];
      int n = 0;
      if (parsed && bson_iter_init_find (&it, &holder, "b") && bson_iter_recurse (&it, &a) && bson_iter_next (&a)) {
         sql = bson_iter_utf8 (&a, NULL);
         if (bson_iter_next (&a) && bson_iter_recurse (&a, &p)) {
            while (bson_iter_next (&p) && n < 256) {
               params[n++] = *bson_iter_value (&p);
            }
         }
      }
      bool ok = sql != NULL;
      dj_mql_t m;
      /* does it compile at all? (refused statements are reported, not timed) */
      if (ok) {
         dj_plan_t *plan = dj_plan_new (sql, strlen (sql), &error);
         ok = plan && dj_plan_bind (plan, "bench", params, n, &m, &error);
         if (ok) {
            dj_mql_cleanup (&m);
         }
         dj_plan_destroy (plan);
      }
      int64_t cold = 0, cached = 0;
      if (ok) {
         cold = median_ns (t, repeat, NULL, sql, params, n);
         dj_plan_release (dj_plan_cache_get (cache, sql, strlen (sql), &error)); /* warm */
         cached = median_ns (t, repeat, cache, sql, params, n);
      }
      printf ("{\"i\": %d, \"ok\": %s, \"cold_ns\": %lld, \"cached_ns\": %lld}\n", i, ok ? "true" : "false",
              (long long) cold, (long long) cached);
      if (parsed) {
         bson_destroy (&holder);
      }
   }
   free (line);
   free (t);
   fclose (f);
   dj_plan_cache_destroy (cache);
   return 0;
}
