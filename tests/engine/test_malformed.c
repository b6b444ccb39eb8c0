/*
 * test_malformed -- hostile command documents never crash the engine.
 *
 * Valid commands are mutated (bytes flipped, lengths changed, truncated) many
 * thousands of times; each mutant is either rejected as invalid BSON or run.
 * Every reply must be a well-formed document with an `ok` field, and a failed
 * one must carry MongoDB's {errmsg, code, codeName}. Run under ASan+UBSan in
 * the test command, this is the engine's robustness floor; libFuzzer
 * harnesses build on the same entry point (tests/fuzz, with the wire server).
 */
#include <stdlib.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_buf.h"
#include "dj_engine.h"

static const char *const seeds[] = {
   "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"a\": [1, {\"b\": \"x\"}]}]}",
   "{\"find\": \"c\", \"filter\": {\"a\": {\"$elemMatch\": {\"b\": {\"$regex\": \"^x\", \"$options\": \"i\"}}}}, \"sort\": {\"a\": -1}, \"projection\": {\"a.$\": 1}}",
   "{\"update\": \"c\", \"updates\": [{\"q\": {\"a.b\": \"x\"}, \"u\": {\"$set\": {\"a.$[e].b\": 1}, \"$push\": {\"l\": {\"$each\": [1, 2], \"$slice\": -1}}}, \"arrayFilters\": [{\"e.b\": {\"$exists\": true}}], \"upsert\": true}]}",
   "{\"delete\": \"c\", \"deletes\": [{\"q\": {\"$or\": [{\"a\": {\"$in\": [1, 2]}}, {\"z\": {\"$not\": {\"$gt\": 1}}}]}, \"limit\": 0}]}",
   "{\"findAndModify\": \"c\", \"query\": {\"_id\": 1}, \"update\": {\"$inc\": {\"n\": 1}}, \"new\": true, \"fields\": {\"n\": 1}}",
   "{\"createIndexes\": \"c\", \"indexes\": [{\"key\": {\"a.b\": 1, \"n\": -1}, \"name\": \"ab\", \"unique\": true, \"partialFilterExpression\": {\"n\": {\"$gt\": 0}}}]}",
   "{\"count\": \"c\", \"query\": {\"a\": {\"$size\": 2, \"$all\": [1]}}, \"skip\": 1, \"limit\": 2}",
   "{\"distinct\": \"c\", \"key\": \"a.b\", \"query\": {\"_id\": {\"$type\": \"number\"}}}",
   "{\"aggregate\": \"c\", \"pipeline\": [{\"$match\": {\"$expr\": {\"$gt\": [\"$n\", 0]}}}, {\"$lookup\": {\"from\": \"c\", \"let\": {\"x\": \"$a\"}, \"pipeline\": [{\"$project\": {\"y\": {\"$concatArrays\": [[\"$$x\"], [1]]}}}], \"as\": \"j\"}}, {\"$unwind\": {\"path\": \"$j\", \"preserveNullAndEmptyArrays\": true}}, {\"$group\": {\"_id\": {\"$toString\": \"$n\"}, \"s\": {\"$sum\": {\"$multiply\": [\"$n\", 2.5]}}, \"p\": {\"$push\": \"$j\"}}}], \"cursor\": {}}",
   "{\"aggregate\": 1, \"pipeline\": [{\"$documents\": [{\"d\": {\"$date\": \"2020-01-01T00:00:00Z\"}, \"s\": \"a,b\"}]}, {\"$project\": {\"x\": {\"$dateToString\": {\"date\": \"$d\", \"format\": \"%Y-%V\", \"timezone\": \"Europe/Paris\"}}, \"y\": {\"$split\": [\"$s\", \",\"]}, \"z\": {\"$reduce\": {\"input\": {\"$range\": [0, 5]}, \"initialValue\": 0, \"in\": {\"$add\": [\"$$value\", \"$$this\"]}}}}}, {\"$facet\": {\"a\": [{\"$count\": \"n\"}], \"b\": [{\"$sortByCount\": \"$x\"}]}}], \"cursor\": {}}",
   "{\"find\": \"c\", \"filter\": {\"s\": {\"$gte\": \"A\"}}, \"sort\": {\"s\": -1}, \"collation\": {\"locale\": \"fr\", \"strength\": 1, \"numericOrdering\": true, \"caseFirst\": \"upper\", \"alternate\": \"shifted\"}}",
   "{\"update\": \"c\", \"updates\": [{\"q\": {}, \"u\": [{\"$set\": {\"n\": {\"$cond\": [{\"$isNumber\": \"$n\"}, {\"$add\": [\"$n\", 1]}, 0]}}}, {\"$unset\": \"j\"}], \"multi\": true}]}",
};

static bool
reply_well_formed (const bson_t *reply)
{
   bson_iter_t it;
   if (!bson_validate (reply, BSON_VALIDATE_NONE, NULL) || !bson_iter_init_find (&it, reply, "ok")) {
      return false;
   }
   if (bson_iter_as_double (&it) == 1.0) {
      return true;
   }
   return bson_iter_init_find (&it, reply, "errmsg") && BSON_ITER_HOLDS_UTF8 (&it) &&
          bson_iter_init_find (&it, reply, "code") && BSON_ITER_HOLDS_INT32 (&it) &&
          bson_iter_init_find (&it, reply, "codeName");
}

int
main (int argc, char **argv)
{
   char dir[] = "/tmp/djongo-mal-XXXXXX";
   bson_error_t err;
   int rounds = argc > 1 ? atoi (argv[1]) : 20000;
   int rejected = 0, ran = 0, bad = 0;

   if (!mkdtemp (dir)) {
      return 2;
   }
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC};
   dj_engine_t *e = dj_engine_open (dir, &opts, &err);
   CHECK (e != NULL, "open: %s", err.message);
   srand (4242);
   size_t nseeds = sizeof seeds / sizeof seeds[0];
   bson_t *docs[16];
   for (size_t i = 0; i < nseeds; i++) {
      docs[i] = bson_new_from_json ((const uint8_t *) seeds[i], -1, &err);
      CHECK (docs[i] != NULL, "seed %zu parses: %s", i, err.message);
      bson_t reply;
      dj_engine_run_command (e, "test", docs[i], &reply);
      CHECK (reply_well_formed (&reply), "seed %zu reply", i);
      bson_destroy (&reply);
   }
   for (int r = 0; r < rounds; r++) {
      const bson_t *src = docs[r % nseeds];
      uint32_t len = src->len;
      uint8_t *buf = bson_malloc (len + 16);
      memcpy (buf, bson_get_data (src), len);
      int flips = 1 + rand () % 4;
      for (int f = 0; f < flips; f++) {
         uint32_t at = (uint32_t) rand () % len;
         switch (rand () % 4) {
         case 0: buf[at] ^= (uint8_t) (1u << (rand () % 8)); break;
         case 1: buf[at] = (uint8_t) rand (); break;
         case 2: buf[at] = 0; break;
         default: buf[at] = 0xff; break;
         }
      }
      if (rand () % 8 == 0) {
         len = (uint32_t) rand () % len; /* truncated */
      }
      bson_t doc;
      if (len < 5 || !bson_init_static (&doc, buf, len)) {
         rejected++;
         bson_free (buf);
         continue;
      }
      bson_t reply;
      dj_engine_run_command (e, "test", &doc, &reply);
      ran++;
      if (!reply_well_formed (&reply)) {
         bad++;
         char *j = bson_as_relaxed_extended_json (&reply, NULL);
         bson_iter_t ri;
         printf ("ill-formed reply (%s, %u bytes, first key '%s'): %s\n",
                 bson_validate (&reply, BSON_VALIDATE_NONE, NULL) ? "valid" : "invalid BSON", reply.len,
                 bson_iter_init (&ri, &reply) && bson_iter_next (&ri) ? bson_iter_key (&ri) : "", j ? j : "(not printable)");
         bson_free (j);
         if (getenv ("DJ_DUMP")) {
            FILE *df = fopen (getenv ("DJ_DUMP"), "wb");
            if (df) {
               fwrite (bson_get_data (&reply), 1, reply.len, df);
               fwrite (buf, 1, len, df);
               fclose (df);
            }
         }
      }
      bson_destroy (&reply);
      bson_free (buf);
   }
   /* Structure-preserving mutants: swap JSON tokens for others from a
    * dictionary of operators and awkward values, so the BSON stays valid and
    * the mutant reaches the parsers and executors behind it. */
   static const char *const dict[] = {
      "\"$gt\"", "\"$in\"", "\"$elemMatch\"", "\"$each\"", "\"$[]\"", "\"$\"", "\"a.$\"", "\"$slice\"",
      "\"$not\"", "\"$or\"", "\"$set\"", "\"$pull\"", "\"\"", "\"a..b\"", "\"_id\"", "[]", "{}", "null", "-1", "0",
      "2147483648", "1e308", "-0.0", "true", "[[[]]]", "{\"$numberDecimal\": \"NaN\"}", "{\"$minKey\": 1}",
      "\"$[e]\"", "\"x\"", "[1, {\"b\": []}]", "{\"$regularExpression\": {\"pattern\": \"(\", \"options\": \"\"}}"};
   int mutants = 0;
   for (int r = 0; r < rounds; r++) {
      const char *seed = seeds[r % nseeds];
      size_t sl = strlen (seed);
      dj_buf_t out;
      dj_buf_init (&out);
      /* tokens are quoted strings, numbers, literals and brackets; replace ~2 of them */
      for (size_t i = 0; i < sl;) {
         size_t j = i;
         if (seed[i] == '"') {
            j = i + 1;
            while (j < sl && seed[j] != '"') {
               j++;
            }
            j++;
         } else if (strchr ("-0123456789tfn", seed[i])) {
            while (j < sl && !strchr (",}] ", seed[j])) {
               j++;
            }
         } else {
            j = i + 1;
         }
         bool is_token = seed[i] == '"' || strchr ("-0123456789tfn", seed[i]);
         if (is_token && rand () % 9 == 0) {
            const char *t = dict[(size_t) rand () % (sizeof dict / sizeof dict[0])];
            dj_buf_append (&out, t, strlen (t));
         } else {
            dj_buf_append (&out, seed + i, j - i);
         }
         i = j;
      }
      dj_buf_putc (&out, 0);
      bson_t *doc = bson_new_from_json (out.data, -1, &err);
      dj_buf_cleanup (&out);
      if (!doc) {
         continue;
      }
      mutants++;
      bson_t reply;
      dj_engine_run_command (e, "test", doc, &reply);
      if (!reply_well_formed (&reply)) {
         bad++;
      }
      bson_destroy (&reply);
      bson_destroy (doc);
   }
   CHECK (mutants > rounds / 2, "token mutants parse (%d)", mutants);
   CHECK (bad == 0, "%d of %d mutated commands got an ill-formed reply", bad, ran + mutants);
   CHECK (ran > rounds / 4, "most mutants reach the engine (%d ran, %d rejected by the BSON header check)", ran, rejected);
   for (size_t i = 0; i < nseeds; i++) {
      bson_destroy (docs[i]);
   }
   /* NULL and empty inputs */
   bson_t reply;
   CHECK (!dj_engine_run_command (e, "test", NULL, &reply) && reply_well_formed (&reply), "NULL command");
   bson_destroy (&reply);
   bson_t *ok = bson_new_from_json ((const uint8_t *) "{\"ping\": 1}", -1, &err);
   CHECK (!dj_engine_run_command (e, NULL, ok, &reply) && reply_well_formed (&reply), "NULL database");
   bson_destroy (&reply);
   CHECK (!dj_engine_run_command (e, "bad.db", ok, &reply) && reply_well_formed (&reply), "invalid database name");
   bson_destroy (&reply);
   bson_destroy (ok);
   /* invalid UTF-8, in a value and in a key: InvalidBSON (22), nothing stored */
   bson_t *badcmd = BCON_NEW ("insert", "u", "documents", "[", "{", "s", BCON_UTF8 ("caf\xc3"), "}", "]");
   CHECK (!dj_engine_run_command (e, "test", badcmd, &reply) && reply_well_formed (&reply), "invalid UTF-8 value rejected");
   bson_iter_t ci;
   CHECK (bson_iter_init_find (&ci, &reply, "code") && bson_iter_int32 (&ci) == 22, "as InvalidBSON");
   bson_destroy (&reply);
   bson_destroy (badcmd);
   badcmd = BCON_NEW ("insert", "u", "documents", "[", "{", "\xff", BCON_INT32 (1), "}", "]");
   CHECK (!dj_engine_run_command (e, "test", badcmd, &reply), "invalid UTF-8 key rejected");
   bson_destroy (&reply);
   bson_destroy (badcmd);
   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("malformed");
}
