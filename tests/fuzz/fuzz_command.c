/*
 * fuzz_command -- libFuzzer harness: the engine's command API,
 * dj_engine_run_command (src/engine/dj_engine.h). The input is Extended JSON
 * text, parsed by libbson as the value of {"v": <input>}: a document is one
 * command, an array runs its documents in turn (up to 8; state carries from
 * one to the next, so an insert can feed the find after it). A command's
 * "$db" string, when it has one, names the database (as the wire server
 * takes it); otherwise "fuzz". A reply with an open cursor is followed by a
 * getMore and a killCursors on it, as a driver would.
 *
 * One engine per process (a data directory under /tmp, DJ_ENGINE_NOSYNC, a
 * 2 MiB map so the disk-full paths run too), seeded with collections of
 * documents of every BSON type, indexes (unique, compound, partial,
 * multikey, sparse), a validator and a view; every 200 inputs it is closed, deleted and
 * seeded again, which bounds what accumulates. Every input must leave the
 * engine usable: no crash, no leak, no sanitizer report, no hang
 * (scripts/fuzz.sh command, dictionary tests/fuzz/command.dict; replayed on
 * tests/fuzz/corpus/command by the test command).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dj_engine.h"
#include "fuzz_json.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define RESEED_EVERY 200
#define MAX_COMMANDS 8

/* The seed: commands run on database "fuzz" after each (re)open. */
static const char *const seed_json[] = {
   "{\"create\": \"c\"}",
   "{\"insert\": \"c\", \"documents\": ["
   "{\"_id\": 1, \"a\": 1, \"b\": \"x\", \"u\": 1, \"arr\": [1, 2, 3], \"o\": {\"p\": 1, \"q\": [1, {\"r\": 2}]}},"
   "{\"_id\": 2, \"a\": {\"$numberLong\": \"9223372036854775807\"}, \"b\": \"Y\", \"u\": 2, \"arr\": [[1], [2, [3]]]},"
   "{\"_id\": 3, \"a\": {\"$numberDouble\": \"NaN\"}, \"b\": \"\\u00e9t\\u00e9\", \"u\": 3, \"arr\": []},"
   "{\"_id\": 4, \"a\": {\"$numberDecimal\": \"-1E-6176\"}, \"b\": null, \"u\": 4, \"arr\": [{\"x\": 1}, {\"x\": 2}]},"
   "{\"_id\": 5, \"a\": {\"$date\": {\"$numberLong\": \"-9223372036854775808\"}}, \"b\": {\"$oid\": "
   "\"5f1b2c3d4e5f60718293a4b5\"}, \"u\": 5, \"arr\": \"notarray\"},"
   "{\"_id\": {\"$oid\": \"5f1b2c3d4e5f60718293a4b6\"}, \"a\": {\"$numberDouble\": \"-Infinity\"}, \"b\": true, "
   "\"u\": 6, \"ts\": {\"$timestamp\": {\"t\": 1, \"i\": 2}}, \"re\": {\"$regularExpression\": {\"pattern\": \"^x\", "
   "\"options\": \"i\"}}, \"bin\": {\"$binary\": {\"base64\": \"AAEC\", \"subType\": \"00\"}}},"
   "{\"_id\": \"s\", \"a\": {\"$minKey\": 1}, \"b\": {\"$maxKey\": 1}, \"u\": 7, \"code\": {\"$code\": \"f()\"}, "
   "\"sym\": {\"$symbol\": \"s\"}, \"undef\": {\"$undefined\": true}, \"dt\": {\"$date\": \"2021-03-04T05:06:07.089Z\"}},"
   "{\"_id\": {\"a\": 1, \"b\": [1, 2]}, \"a\": [1, 2, [3, 4]], \"b\": {\"c\": {\"d\": {\"e\": 1}}}, \"u\": 8},"
   "{\"_id\": 9.5, \"a\": -0.0, \"b\": \"x\", \"u\": {\"$numberDecimal\": \"9.5\"}, \"arr\": [null, null]}]}",
   "{\"createIndexes\": \"c\", \"indexes\": ["
   "{\"key\": {\"u\": 1}, \"name\": \"u_1\", \"unique\": true},"
   "{\"key\": {\"a\": 1, \"b\": -1}, \"name\": \"a_1_b_-1\"},"
   "{\"key\": {\"arr\": 1}, \"name\": \"arr_1\"},"
   "{\"key\": {\"b\": 1}, \"name\": \"b_partial\", \"partialFilterExpression\": {\"a\": {\"$gt\": 0}}},"
   "{\"key\": {\"o.p\": 1, \"arr.x\": 1}, \"name\": \"op_arrx\", \"sparse\": true}]}",
   "{\"create\": \"d\", \"validator\": {\"x\": {\"$type\": \"number\"}}, \"validationAction\": \"error\"}",
   "{\"insert\": \"d\", \"documents\": [{\"_id\": 1, \"x\": 1, \"k\": \"c\"}, {\"_id\": 2, \"x\": 2.5, \"k\": \"d\"}]}",
   "{\"createIndexes\": \"d\", \"indexes\": [{\"key\": {\"k\": 1, \"x\": -1}, \"name\": \"k_x\", \"unique\": true}]}",
   "{\"create\": \"v\", \"viewOn\": \"c\", \"pipeline\": [{\"$match\": {\"u\": {\"$gt\": 2}}}, {\"$project\": "
   "{\"arr\": 0}}]}",
   "{\"create\": \"e\", \"capped\": true, \"size\": 4096}",
};
#define NSEED (sizeof seed_json / sizeof seed_json[0])

static dj_engine_t *engine;
static char dir[64];
static int runs;

static int
rm_one (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
   (void) sb, (void) flag, (void) ftw;
   return remove (path);
}

static void
wipe (void)
{
   if (engine) {
      dj_engine_close (engine);
      engine = NULL;
      nftw (dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
   }
}

static void
open_and_seed (void)
{
   bson_error_t error;
   if (!dir[0]) {
      snprintf (dir, sizeof dir, "/tmp/djongo-fuzz-command-%d", (int) getpid ());
      atexit (wipe);
   }
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC, .map_size = 2u << 20};
   engine = dj_engine_open (dir, &opts, &error);
   if (!engine) {
      fprintf (stderr, "fuzz_command: open %s: %s\n", dir, error.message);
      abort ();
   }
   for (size_t i = 0; i < NSEED; i++) {
      bson_t *cmd = bson_new_from_json ((const uint8_t *) seed_json[i], -1, &error);
      bson_t reply;
      if (!cmd || !dj_engine_run_command (engine, "fuzz", cmd, &reply)) {
         char *r = cmd ? bson_as_canonical_extended_json (&reply, NULL) : NULL;
         fprintf (stderr, "fuzz_command: seed %zu: %s\n", i, r ? r : error.message);
         abort ();
      }
      bson_destroy (&reply);
      bson_destroy (cmd);
   }
}

/* A driver's next steps on a reply's open cursor: one getMore, then killCursors. */
static void
follow_cursor (const char *db, const bson_t *reply)
{
   bson_iter_t it, c;
   int64_t id = 0;
   const char *ns = NULL;
   if (!bson_iter_init_find (&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &c)) {
      return;
   }
   while (bson_iter_next (&c)) {
      if (!strcmp (bson_iter_key (&c), "id") && BSON_ITER_HOLDS_INT64 (&c)) {
         id = bson_iter_int64 (&c);
      } else if (!strcmp (bson_iter_key (&c), "ns") && BSON_ITER_HOLDS_UTF8 (&c)) {
         ns = bson_iter_utf8 (&c, NULL);
      }
   }
   const char *dot = ns ? strchr (ns, '.') : NULL;
   if (!id || !dot) {
      return;
   }
   bson_t cmd = BSON_INITIALIZER, r;
   BSON_APPEND_INT64 (&cmd, "getMore", id);
   BSON_APPEND_UTF8 (&cmd, "collection", dot + 1);
   BSON_APPEND_INT32 (&cmd, "batchSize", 2);
   dj_engine_run_command (engine, db, &cmd, &r);
   bson_destroy (&r);
   bson_reinit (&cmd);
   BSON_APPEND_UTF8 (&cmd, "killCursors", dot + 1);
   bson_t ids;
   BSON_APPEND_ARRAY_BEGIN (&cmd, "cursors", &ids);
   BSON_APPEND_INT64 (&ids, "0", id);
   bson_append_array_end (&cmd, &ids);
   dj_engine_run_command (engine, db, &cmd, &r);
   bson_destroy (&r);
   bson_destroy (&cmd);
}

static void
run_one (const bson_t *cmd)
{
   bson_iter_t it;
   char db[128] = "fuzz";
   if (bson_iter_init_find (&it, cmd, "$db") && BSON_ITER_HOLDS_UTF8 (&it)) {
      const char *s = bson_iter_utf8 (&it, NULL);
      /* the name as the wire server passes it: up to its first NUL (the engine must refuse what is left) */
      snprintf (db, sizeof db, "%s", s);
   }
   bson_t reply;
   dj_engine_run_command (engine, db, cmd, &reply);
   follow_cursor (db, &reply);
   bson_destroy (&reply);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   if (!engine) {
      open_and_seed ();
   }
   bson_t wrapper;
   bson_iter_t it, el;
   if (fuzz_json_value (data, size, &wrapper, &it)) {
      const uint8_t *d;
      uint32_t l;
      bson_t cmd;
      if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &l, &d);
         if (bson_init_static (&cmd, d, l)) {
            run_one (&cmd);
         }
      } else if (BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &el)) {
         for (int i = 0; i < MAX_COMMANDS && bson_iter_next (&el); i++) {
            if (BSON_ITER_HOLDS_DOCUMENT (&el)) {
               bson_iter_document (&el, &l, &d);
               if (bson_init_static (&cmd, d, l)) {
                  run_one (&cmd);
               }
            }
         }
      }
      bson_destroy (&wrapper);
   }
   if (++runs % RESEED_EVERY == 0) {
      wipe ();
   }
   return 0;
}
