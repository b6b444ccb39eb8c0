/*
 * bench.h -- what the engine-vs-SQLite benchmarks share, so that both
 * measure and report the same way: a monotonic clock; one scratch directory
 * holding the engine's data and the SQLite database side by side (removed
 * at the end); engine commands that stop the run when they fail (a timing
 * of failing commands would be meaningless); and the Markdown table, printed
 * to stdout and written to --markdown FILE with the title as its heading.
 */
#ifndef DJ_BENCH_H
#define DJ_BENCH_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dj_engine.h"

typedef struct {
   const char *name; /* the program, for messages */
   char dir[64];     /* the scratch directory */
   dj_engine_t *engine;
   sqlite3 *db;
   FILE *md; /* --markdown FILE, or NULL */
} bench_t;

static inline double
bench_now (void)
{
   struct timespec ts;
   clock_gettime (CLOCK_MONOTONIC, &ts);
   return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static inline void
bench_die (const bench_t *b, const char *what)
{
   fprintf (stderr, "%s: %s\n", b->name, what);
   exit (1);
}

/* Opens the engine (engine_flags: DJ_ENGINE_NOSYNC or 0) and SQLite in a
 * fresh directory under /tmp, and the Markdown file when md is given. */
static inline void
bench_open (bench_t *b, const char *name, unsigned engine_flags, const char *md);

/* The command line `[N] [--markdown FILE]` (*n left as it is when not
 * given), then bench_open with them. */
static inline void
bench_start (bench_t *b, int argc, char **argv, const char *name, unsigned engine_flags, int *n)
{
   const char *md = NULL;
   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--markdown") && i + 1 < argc) {
         md = argv[++i];
      } else {
         *n = atoi (argv[i]);
      }
   }
   bench_open (b, name, engine_flags, md);
}

/* The command line `[N] [--sync] [--txn] [--markdown FILE]` (*n left as it
 * is when not given; *txn: --txn was given), then bench_open with both
 * sides at the same durability: without --sync the engine skips fsync
 * (DJ_ENGINE_NOSYNC) and SQLite runs WAL with synchronous=OFF, with it
 * both fsync every commit (synchronous=FULL). *sync: --sync was given. */
static inline void
bench_start_durable (bench_t *b, int argc, char **argv, const char *name, int *n, bool *sync, bool *txn)
{
   const char *md = NULL;
   *sync = *txn = false;
   for (int i = 1; i < argc; i++) {
      if (!strcmp (argv[i], "--sync")) {
         *sync = true;
      } else if (!strcmp (argv[i], "--txn")) {
         *txn = true;
      } else if (!strcmp (argv[i], "--markdown") && i + 1 < argc) {
         md = argv[++i];
      } else {
         *n = atoi (argv[i]);
      }
   }
   bench_open (b, name, *sync ? 0 : DJ_ENGINE_NOSYNC, md);
   sqlite3_exec (b->db, *sync ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" : "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;",
                 NULL, NULL, NULL);
}

static inline void
bench_open (bench_t *b, const char *name, unsigned engine_flags, const char *md)
{
   b->name = name;
   snprintf (b->dir, sizeof b->dir, "/tmp/djongo-%s-XXXXXX", name);
   if (!mkdtemp (b->dir)) {
      bench_die (b, "mkdtemp");
   }
   char path[128];
   bson_error_t err;
   dj_engine_options_t opts = {.flags = engine_flags};
   /* DJ_BENCH_MAP_MB: a smaller LMDB map (valgrind cannot map the default 256 GiB) */
   const char *map_mb = getenv ("DJ_BENCH_MAP_MB");
   if (map_mb && atoi (map_mb) > 0) {
      opts.map_size = (size_t) atoi (map_mb) << 20;
   }
   snprintf (path, sizeof path, "%s/engine", b->dir);
   if (!(b->engine = dj_engine_open (path, &opts, &err))) {
      bench_die (b, err.message);
   }
   snprintf (path, sizeof path, "%s/sqlite.db", b->dir);
   if (sqlite3_open (path, &b->db) != SQLITE_OK) {
      bench_die (b, "sqlite open");
   }
   b->md = md ? fopen (md, "w") : NULL;
}

/* Runs an engine command; reply (when not NULL) is the caller's to destroy. */
static inline void
bench_engine (bench_t *b, const bson_t *cmd, bson_t *reply)
{
   bson_t r;
   if (!dj_engine_run_command (b->engine, "bench", cmd, &r)) {
      char *j = bson_as_relaxed_extended_json (&r, NULL);
      fprintf (stderr, "%s: engine command failed: %s\n", b->name, j);
      exit (1);
   }
   if (reply) {
      bson_steal (reply, &r);
   } else {
      bson_destroy (&r);
   }
}

/* Runs the engine command written as JSON text; returns how many documents
 * its reply's first batch holds (set batchSize large enough to see all). */
static inline int64_t
bench_engine_rows (bench_t *b, const char *json)
{
   bson_error_t err;
   bson_t *cmd = bson_new_from_json ((const uint8_t *) json, -1, &err), reply;
   if (!cmd) {
      bench_die (b, err.message);
   }
   bench_engine (b, cmd, &reply);
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

/* Runs a query on SQLite, reading each row's first column; the rows. */
static inline int64_t
bench_sqlite_rows (bench_t *b, const char *sql)
{
   sqlite3_stmt *st;
   int64_t n = 0;
   if (sqlite3_prepare_v2 (b->db, sql, -1, &st, NULL) != SQLITE_OK) {
      bench_die (b, sqlite3_errmsg (b->db));
   }
   while (sqlite3_step (st) == SQLITE_ROW) {
      (void) sqlite3_column_double (st, 0);
      n++;
   }
   sqlite3_finalize (st);
   return n;
}

/* One line of the table (a row, the title or the header), to both outputs. */
static inline void
bench_vprint (bench_t *b, const char *prefix, const char *fmt, va_list ap)
{
   char line[512];
   vsnprintf (line, sizeof line, fmt, ap);
   fputs (line, stdout);
   if (b->md) {
      fputs (prefix, b->md);
      fputs (line, b->md);
   }
}

static inline void
bench_title (bench_t *b, const char *fmt, ...) /* the Markdown file's heading */
{
   va_list ap;
   va_start (ap, fmt);
   bench_vprint (b, "# ", fmt, ap);
   va_end (ap);
}

static inline void
bench_print (bench_t *b, const char *fmt, ...)
{
   va_list ap;
   va_start (ap, fmt);
   bench_vprint (b, "", fmt, ap);
   va_end (ap);
}

static inline void
bench_close (bench_t *b)
{
   if (b->md) {
      fclose (b->md);
   }
   sqlite3_close (b->db);
   dj_engine_close (b->engine);
   char *rm = bson_strdup_printf ("rm -rf '%s'", b->dir);
   if (system (rm) != 0) {
      fprintf (stderr, "could not remove %s\n", b->dir);
   }
   bson_free (rm);
}

#endif
