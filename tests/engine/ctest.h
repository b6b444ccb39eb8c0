/*
 * ctest.h -- the few lines of test framework the C tests share.
 *
 * CHECK(cond, fmt, ...) counts a pass or prints a failure with file:line;
 * CTEST_REPORT(name) prints "name: N passed, N failed" and yields the exit
 * status. Counters are per test program (each is its own process).
 */
#ifndef DJ_CTEST_H
#define DJ_CTEST_H

#include <stdio.h>

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

#define CTEST_REPORT(name)                                                          \
   (printf ("%s: %d passed, %d failed\n", (name), ctest_passed, ctest_failed),   \
    ctest_failed ? 1 : 0)

#endif
