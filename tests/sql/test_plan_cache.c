/*
 * test_plan_cache -- the plan cache's contract (dj_compile.h): one parse per
 * text, shared plans, LRU eviction that never frees a plan still held, no
 * caching of errors, and safety from several threads (run under ASan+UBSan
 * by the test command; TSan-clean by design: one mutex, atomic counts).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "dj_compile.h"

static int passed, failed;

#define CHECK(cond)                                                   \
   do {                                                               \
      if (cond) {                                                     \
         passed++;                                                    \
      } else {                                                        \
         failed++;                                                    \
         fprintf (stderr, "%s:%d: FAILED %s\n", __FILE__, __LINE__, #cond); \
      }                                                               \
   } while (0)

static dj_plan_cache_t *shared;

static void *
worker (void *arg)
{
   int id = (int) (intptr_t) arg;
   char sql[128];
   bson_value_t v = {.value_type = BSON_TYPE_INT32};
   for (int i = 0; i < 2000; i++) {
      snprintf (sql, sizeof sql, "SELECT \"t\".\"a\" FROM \"t\" WHERE \"t\".\"b\" = %%s AND \"t\".\"c\" > %d", (i + id) % 40);
      bson_error_t error;
      dj_plan_t *p = dj_plan_cache_get (shared, sql, strlen (sql), &error);
      if (!p) {
         return (void *) 1;
      }
      dj_mql_t m;
      v.value.v_int32 = i;
      if (!dj_plan_bind (p, "db", &v, 1, &m, &error)) {
         dj_plan_release (p);
         return (void *) 1;
      }
      dj_mql_cleanup (&m);
      dj_plan_release (p);
   }
   return NULL;
}

int
main (void)
{
   bson_error_t error;
   uint64_t hits, misses;

   /* one parse per text; the same plan comes back */
   dj_plan_cache_t *c = dj_plan_cache_new (2);
   const char *a = "SELECT \"t\".\"a\" FROM \"t\"", *b = "SELECT \"t\".\"b\" FROM \"t\"", *d = "DELETE FROM \"t\"";
   dj_plan_t *p1 = dj_plan_cache_get (c, a, strlen (a), &error);
   dj_plan_t *p2 = dj_plan_cache_get (c, a, strlen (a), &error);
   CHECK (p1 && p1 == p2);
   dj_plan_cache_stats (c, &hits, &misses);
   CHECK (hits == 1 && misses == 1);
   /* eviction (capacity 2) while p1 is held: p1 stays usable */
   dj_plan_release (dj_plan_cache_get (c, b, strlen (b), &error));
   dj_plan_release (dj_plan_cache_get (c, d, strlen (d), &error));
   CHECK (dj_plan_nparams (p1) == 0 && dj_plan_stmt (p1)->kind == DJ_STMT_SELECT);
   dj_plan_t *p3 = dj_plan_cache_get (c, a, strlen (a), &error); /* parsed again: it was evicted */
   CHECK (p3 && p3 != p1);
   dj_plan_cache_stats (c, &hits, &misses);
   CHECK (misses == 4);
   dj_plan_release (p1);
   dj_plan_release (p2);
   dj_plan_release (p3);
   /* errors are reported each time, never cached */
   const char *bad = "SELECT FROM";
   CHECK (dj_plan_cache_get (c, bad, strlen (bad), &error) == NULL && error.code == DJ_SQL_SYNTAX);
   CHECK (dj_plan_cache_get (c, bad, strlen (bad), &error) == NULL && error.code == DJ_SQL_SYNTAX);
   /* the text is compared whole, not by prefix or hash alone */
   const char *a2 = "SELECT \"t\".\"a\" FROM \"t\" ";
   dj_plan_t *p4 = dj_plan_cache_get (c, a2, strlen (a2), &error);
   dj_plan_t *p5 = dj_plan_cache_get (c, a, strlen (a), &error);
   CHECK (p4 && p5 && p4 != p5);
   dj_plan_release (p4);
   dj_plan_release (p5);
   dj_plan_cache_destroy (c);

   /* four threads over 60 texts with room for 16: hits, misses, evictions */
   shared = dj_plan_cache_new (16);
   pthread_t t[4];
   for (intptr_t i = 0; i < 4; i++) {
      pthread_create (&t[i], NULL, worker, (void *) i);
   }
   int bad_threads = 0;
   for (int i = 0; i < 4; i++) {
      void *r;
      pthread_join (t[i], &r);
      bad_threads += r != NULL;
   }
   CHECK (bad_threads == 0);
   dj_plan_cache_stats (shared, &hits, &misses);
   CHECK (hits + misses == 8000);
   dj_plan_cache_destroy (shared);

   printf ("plan_cache: %d passed, %d failed\n", passed, failed);
   return failed ? 1 : 0;
}
