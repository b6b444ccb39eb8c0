/*
 * ctest.h -- the few lines of test framework the C tests share.
 *
 * CHECK(cond, fmt, ...) counts a pass or prints a failure with file:line;
 * J(json) makes a test document;
 * ctest_rmdir(dir) removes a test's scratch directory;
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

#define CTEST_REPORT(name)                                                          \
   (printf ("%s: %d passed, %d failed\n", (name), ctest_passed, ctest_failed),   \
    ctest_failed ? 1 : 0)

#endif
