/*
 * test_bound_cache -- SELECTs bound from a kept command (dj_compile.h:
 * dj_plan_bind_kept) are exactly what dj_plan_bind_catalog compiles for
 * the same values: for statements whose commands take their parameters as
 * they are (kept, counted as hits) and for those whose commands depend on
 * the values (LIKE patterns, exact datetimes, LIMIT, equal parameters:
 * never served from a kept command, still right), across parameter types
 * and catalog generations.
 */
#include <stdio.h>
#include <string.h>

#include "ctest.h"
#include "dj_compile.h"

static bool
same_mql (const dj_mql_t *a, const dj_mql_t *b)
{
   if (a->kind != b->kind || a->stmt != b->stmt || a->ncommands != b->ncommands || a->ncolumns != b->ncolumns ||
       a->star != b->star || a->engine_only != b->engine_only ||
       (a->collection || b->collection) != (a->collection && b->collection) ||
       (a->collection && strcmp (a->collection, b->collection))) {
      return false;
   }
   for (int i = 0; i < a->ncommands; i++) {
      if (a->commands[i]->len != b->commands[i]->len ||
          memcmp (bson_get_data (a->commands[i]), bson_get_data (b->commands[i]), a->commands[i]->len)) {
         char *x = bson_as_relaxed_extended_json (a->commands[i], NULL), *y = bson_as_relaxed_extended_json (b->commands[i], NULL);
         fprintf (stderr, "  kept:     %s\n  compiled: %s\n", x, y);
         bson_free (x);
         bson_free (y);
         return false;
      }
   }
   for (int i = 0; i < a->ncolumns; i++) {
      const dj_mql_column_t *x = &a->columns[i], *y = &b->columns[i];
      if (strcmp (x->name, y->name) || strcmp (x->path, y->path) || x->us != y->us ||
          (x->star_table || y->star_table) != (x->star_table && y->star_table) ||
          (x->star_table && strcmp (x->star_table, y->star_table))) {
         return false;
      }
   }
   return true;
}

/* A catalog where table "t" records a, b, c and d, d a DATETIME. */
static bool
has_column (void *ctx, const char *table, const char *column)
{
   (void) ctx;
   return !strcmp (table, "t") && strchr ("abcd", column[0]) && !column[1];
}

static bool
is_datetime (void *ctx, const char *table, const char *column)
{
   (void) ctx;
   return !strcmp (table, "t") && !strcmp (column, "d");
}

static bool
columns (void *ctx, const char *table, bson_t *names)
{
   (void) ctx;
   if (strcmp (table, "t")) {
      return false;
   }
   BSON_APPEND_UTF8 (names, "0", "a");
   BSON_APPEND_UTF8 (names, "1", "b");
   BSON_APPEND_UTF8 (names, "2", "c");
   BSON_APPEND_UTF8 (names, "3", "d");
   return true;
}

static dj_plan_cache_t *plans;
static dj_bound_cache_t *kept;
static dj_catalog_t catalog = {.has_column = has_column, .is_datetime = is_datetime, .columns = columns};

/* Binds sql with params both ways; true when they agree. */
static bool
bind_both (const char *sql, const bson_value_t *params, int n, uint64_t gen)
{
   bson_error_t e1, e2;
   dj_plan_t *p = dj_plan_cache_get (plans, sql, strlen (sql), &e1);
   if (!p) {
      fprintf (stderr, "%s: %s\n", sql, e1.message);
      return false;
   }
   dj_mql_t a, b;
   bool ok_a = dj_plan_bind_kept (kept, p, gen, "db", &catalog, params, n, &a, &e1);
   bool ok_b = dj_plan_bind_catalog (p, "db", &catalog, params, n, &b, &e2);
   bool same = ok_a == ok_b && (!ok_a ? e1.code == e2.code && !strcmp (e1.message, e2.message) : same_mql (&a, &b));
   if (ok_a) {
      dj_mql_cleanup (&a);
   }
   if (ok_b) {
      dj_mql_cleanup (&b);
   }
   dj_plan_release (p);
   return same;
}

static bson_value_t
i32 (int32_t v)
{
   bson_value_t x = {.value_type = BSON_TYPE_INT32};
   x.value.v_int32 = v;
   return x;
}

static bson_value_t
utf8 (const char *s)
{
   bson_value_t x = {.value_type = BSON_TYPE_UTF8};
   x.value.v_utf8.str = (char *) s;
   x.value.v_utf8.len = (uint32_t) strlen (s);
   return x;
}

static uint8_t exact_bytes[2][8] = {{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x00}, {0x07, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x00}};

static bson_value_t
exact (int k)
{
   bson_value_t x = {.value_type = BSON_TYPE_BINARY};
   x.value.v_binary.subtype = (bson_subtype_t) 0x80; /* DJ_EXACT_DT_SUBTYPE */
   x.value.v_binary.data = exact_bytes[k];
   x.value.v_binary.data_len = 8;
   return x;
}

int
main (void)
{
   plans = dj_plan_cache_new (0);
   kept = dj_bound_cache_new ();
   const char *get = "SELECT \"t\".\"a\", \"t\".\"b\" FROM \"t\" WHERE \"t\".\"a\" = %s LIMIT 21";
   bson_value_t v[3];

   /* a get: kept after its first execution, then every value of the type from it */
   for (int i = 0; i < 5; i++) {
      v[0] = i32 (i * 7);
      CHECK (bind_both (get, v, 1, 1), "the kept and the compiled statement differ");
   }
   CHECK (dj_bound_cache_hits (kept) == 4, "hits: %llu", (unsigned long long) dj_bound_cache_hits (kept));
   /* another type: compiled (and kept) for that type */
   v[0] = utf8 ("x");
   CHECK (bind_both (get, v, 1, 1), "the kept and the compiled statement differ");
   v[0] = utf8 ("a longer string than before");
   CHECK (bind_both (get, v, 1, 1), "the kept and the compiled statement differ");
   CHECK (dj_bound_cache_hits (kept) == 5, "hits: %llu", (unsigned long long) dj_bound_cache_hits (kept));
   /* NULL: `= NULL` is never TRUE in SQL; the type alone decides */
   v[0] = (bson_value_t) {.value_type = BSON_TYPE_NULL};
   CHECK (bind_both (get, v, 1, 1), "the kept and the compiled statement differ");
   CHECK (bind_both (get, v, 1, 1), "the kept and the compiled statement differ");
   /* a new catalog generation: compiled again first */
   uint64_t before = dj_bound_cache_hits (kept);
   v[0] = i32 (3);
   CHECK (bind_both (get, v, 1, 2), "the kept and the compiled statement differ");
   CHECK (dj_bound_cache_hits (kept) == before, "hits: %llu", (unsigned long long) dj_bound_cache_hits (kept));
   CHECK (bind_both (get, v, 1, 2), "the kept and the compiled statement differ");
   CHECK (dj_bound_cache_hits (kept) == before + 1, "hits: %llu", (unsigned long long) dj_bound_cache_hits (kept));

   /* several parameters, nested in $in and $or */
   const char *multi = "SELECT \"t\".\"a\" FROM \"t\" WHERE (\"t\".\"b\" IN (%s, %s) OR \"t\".\"c\" > %s) AND \"t\".\"a\" <> 5";
   for (int i = 0; i < 3; i++) {
      v[0] = i32 (i);
      v[1] = utf8 (i ? "yy" : "y");
      v[2] = i32 (-i);
      CHECK (bind_both (multi, v, 3, 1), "the kept and the compiled statement differ");
   }
   before = dj_bound_cache_hits (kept);

   /* pages of one query, a plan each (the LIMIT/OFFSET are in the text),
    * executed in turn: each kept once, none evicting another */
   char pages[100][96];
   for (int i = 0; i < 100; i++) {
      snprintf (pages[i], sizeof pages[i], "SELECT \"t\".\"a\" FROM \"t\" WHERE \"t\".\"b\" = %%s LIMIT 20 OFFSET %d", i);
   }
   for (int round = 0; round < 3; round++) {
      before = dj_bound_cache_hits (kept);
      for (int i = 0; i < 100; i++) {
         v[0] = i32 (round * 100 + i);
         CHECK (bind_both (pages[i], v, 1, 1), "the kept and the compiled statement differ");
      }
      uint64_t want = round ? 100 : 0;
      CHECK (dj_bound_cache_hits (kept) - before == want, "round %d: %llu hits", round,
             (unsigned long long) (dj_bound_cache_hits (kept) - before));
   }
   before = dj_bound_cache_hits (kept);

   /* commands that depend on the values: right every time, never kept */
   const char *like = "SELECT \"t\".\"a\" FROM \"t\" WHERE \"t\".\"b\" LIKE %s";
   const char *pats[] = {"ab%", "a_c", "%x%", "plain"};
   for (int i = 0; i < 4; i++) {
      v[0] = utf8 (pats[i]);
      CHECK (bind_both (like, v, 1, 1), "the kept and the compiled statement differ");
   }
   const char *dt = "SELECT \"t\".\"a\" FROM \"t\" WHERE \"t\".\"d\" < %s";
   for (int i = 0; i < 2; i++) {
      v[0] = exact (i);
      CHECK (bind_both (dt, v, 1, 1), "the kept and the compiled statement differ");
   }
   const char *lim = "SELECT \"t\".\"a\" FROM \"t\" ORDER BY \"t\".\"b\" LIMIT %s";
   for (int i = 1; i < 4; i++) {
      v[0] = i32 (i);
      CHECK (bind_both (lim, v, 1, 1), "the kept and the compiled statement differ");
   }
   CHECK (dj_bound_cache_hits (kept) == before, "hits: %llu", (unsigned long long) dj_bound_cache_hits (kept));

   /* errors are the compiler's: a column the catalog lacks */
   const char *bad = "SELECT \"t\".\"zz\" FROM \"t\" WHERE \"t\".\"a\" = %s";
   v[0] = i32 (1);
   CHECK (bind_both (bad, v, 1, 1), "the kept and the compiled statement differ");
   CHECK (bind_both (bad, v, 1, 1), "the kept and the compiled statement differ");

   dj_bound_cache_destroy (kept);
   dj_plan_cache_destroy (plans);
   return CTEST_REPORT ("bound-cache");
}
