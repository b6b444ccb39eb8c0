/*
 * ctest.h -- the few lines of test framework the C tests share.
 *
 * CHECK(cond, fmt, ...) counts a pass or prints a failure with file:line;
 * J(json) makes a test document;
 * ctest_rmdir(dir) removes a test's scratch directory;
 * ctest_strict_valid(data, len): whether libbson reads a document whole;
 * CTEST_REPORT(name) prints "name: N passed, N failed" and yields the exit
 * status. Counters are per test program (each is its own process).
 */
#ifndef DJ_CTEST_H
#define DJ_CTEST_H

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>

static int ctest_passed, ctest_failed;

#define CHECK(cond, ...)                                                 \
   do {                                                                  \
      if (cond) {                                                        \
         ctest_passed++;                                                 \
      } else {                                                           \
         ctest_failed++;                                                 \
         printf ("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
         printf (__VA_ARGS__);                                           \
         printf ("\n");                                                  \
      }                                                                  \
   } while (0)

/* A document from JSON written in a test (exits on a typo in the test). */
static inline bson_t *
J (const char *json)
{
   bson_error_t err;
   bson_t *b = bson_new_from_json ((const uint8_t *) json, -1, &err);
   if (!b) {
      printf ("bad JSON in test: %s: %s\n", json, err.message);
      exit (2);
   }
   return b;
}

/* Removes a test's scratch directory; one left behind is a warning, not a
 * failure (the tests ran). */
static inline void
ctest_rmdir (const char *dir)
{
   char *rm = bson_strdup_printf ("rm -rf '%s'", dir);
   if (system (rm) != 0) {
      printf ("warning: could not remove %s\n", dir);
   }
   bson_free (rm);
}

#ifdef DJ_ENGINE_H
/* An engine on a new scratch directory made from template `dir` (which
 * receives its name, for ctest_rmdir); NULL, said, when that fails.
 * (Include dj_engine.h before this header to have it.) */
static inline dj_engine_t *
ctest_engine (char *dir)
{
   bson_error_t err;
   dj_engine_t *e = mkdtemp (dir) ? dj_engine_open (dir, NULL, &err) : NULL;
   if (!e) {
      printf ("cannot open a scratch engine in %s\n", dir);
   }
   return e;
}

/* Runs a command (JSON) on database "test", in transaction t (NULL:
 * none); a failure's reply is printed. Whether it succeeded. */
static inline bool
ctest_run (dj_engine_t *e, dj_engine_txn_t *t, const char *json)
{
   bson_t *cmd = J (json), reply;
   bool ok = dj_engine_run_command_in (e, t, "test", cmd, &reply);
   if (!ok) {
      char *s = bson_as_relaxed_extended_json (&reply, NULL);
      printf ("command failed: %s -> %s\n", json, s);
      bson_free (s);
   }
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok;
}
#endif

/* libbson's own reading of a document, recursively, with the check
 * bson_validate() lacks in libbson 1.23 (a truncated last element ends
 * iteration with err_off set but passes validation). */
static inline bool
ctest_strict_valid (const uint8_t *data, uint32_t len)
{
   bson_t b;
   bson_iter_t it;
   if (!bson_init_static (&b, data, len) || !bson_validate (&b, BSON_VALIDATE_NONE, NULL) || !bson_iter_init (&it, &b)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      const uint8_t *d = NULL;
      uint32_t l = 0, cl;
      if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &l, &d);
      } else if (BSON_ITER_HOLDS_ARRAY (&it)) {
         bson_iter_array (&it, &l, &d);
      } else if (BSON_ITER_HOLDS_CODEWSCOPE (&it)) {
         bson_iter_codewscope (&it, &cl, &l, &d);
      } else {
         continue;
      }
      if (!d || !ctest_strict_valid (d, l)) {
         return false;
      }
   }
   return !it.err_off;
}

#define CTEST_REPORT(name)                                                          \
   (printf ("%s: %d passed, %d failed\n", (name), ctest_passed, ctest_failed),   \
    ctest_failed ? 1 : 0)

#endif
