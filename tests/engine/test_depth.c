/*
 * test_depth -- nesting is bounded before anything recurses
 * (src/common/dj_bson_depth.h).
 *
 * 1. Documents nested 0..DJ_BSON_MAX_DEPTH levels are accepted, deeper ones
 *    refused, up to 100,000 levels (which a recursive walk does not survive).
 * 2. The check never refuses what libbson reads: every BSON type, and
 *    thousands of random mutations of a document holding all of them --
 *    whenever libbson validates and iterates one without error,
 *    dj_bson_depth_ok() accepts it too.
 * 3. dj_engine_run_command answers a command nested 100,000 deep with
 *    InvalidBSON (22), and one within the bound normally.
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Nested-Depth-for-BSON-Documents
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctest.h"
#include "dj_bson_depth.h"
#include "dj_engine.h"

/* {ping: 1, x: {a: {a: ... {} }}}: the document under x nests `depth`
 * levels below it. Written byte by byte (each level: its length, type 0x03,
 * key "a", the level inside, a terminator) -- appending level by level
 * would copy the document once per level. */
static bson_t *
ping_with (int depth)
{
   static const uint8_t head[] = {0x10, 'p', 'i', 'n', 'g', 0, 1, 0, 0, 0, 0x03, 'x', 0};
   size_t xlen = 5 + 8 * (size_t) depth, total = 4 + sizeof head + xlen + 1;
   uint8_t *b = bson_malloc (total), *p = b;
   uint32_t n = (uint32_t) total;
   n = BSON_UINT32_TO_LE (n);
   memcpy (p, &n, 4);
   p += 4;
   memcpy (p, head, sizeof head);
   p += sizeof head;
   for (int k = 0; k < depth; k++) {
      n = BSON_UINT32_TO_LE ((uint32_t) (5 + 8 * (depth - k)));
      memcpy (p, &n, 4);
      static const uint8_t level[] = {0x03, 'a', 0}; /* type, key "a" and its NUL */
      memcpy (p + 4, level, sizeof level);
      p += 7;
   }
   static const uint8_t empty[] = {5, 0, 0, 0, 0}; /* {} */
   memcpy (p, empty, sizeof empty);
   p += 5;
   memset (p, 0, (size_t) depth + 1); /* the levels' terminators, then the command's */
   bson_t *cmd = bson_new_from_data (b, total);
   bson_free (b);
   return cmd;
}

static bson_t *
every_type (void)
{
   bson_t *d = bson_new (), *scope = BCON_NEW ("s", BCON_INT32 (1)), arr;
   bson_oid_t oid;
   bson_decimal128_t dec;
   uint8_t bin[3] = {1, 2, 3};
   bson_oid_init_from_string (&oid, "5f0c1a2b3c4d5e6f70818293");
   bson_decimal128_from_string ("1.5", &dec);
   BSON_APPEND_DOUBLE (d, "dbl", 1.5);
   BSON_APPEND_UTF8 (d, "str", "text");
   BSON_APPEND_DOCUMENT (d, "doc", scope);
   BSON_APPEND_ARRAY_BEGIN (d, "arr", &arr);
   BSON_APPEND_INT32 (&arr, "0", 1);
   BSON_APPEND_UTF8 (&arr, "1", "two");
   bson_append_array_end (d, &arr);
   BSON_APPEND_BINARY (d, "bin", BSON_SUBTYPE_BINARY, bin, sizeof bin);
   BSON_APPEND_UNDEFINED (d, "undef");
   BSON_APPEND_OID (d, "oid", &oid);
   BSON_APPEND_BOOL (d, "bool", true);
   BSON_APPEND_DATE_TIME (d, "date", 1);
   BSON_APPEND_NULL (d, "null");
   BSON_APPEND_REGEX (d, "re", "^a", "i");
   BSON_APPEND_DBPOINTER (d, "dbp", "db.c", &oid);
   BSON_APPEND_CODE (d, "code", "f()");
   BSON_APPEND_SYMBOL (d, "sym", "s");
   BSON_APPEND_CODE_WITH_SCOPE (d, "cws", "g()", scope);
   BSON_APPEND_INT32 (d, "i32", 7);
   BSON_APPEND_TIMESTAMP (d, "ts", 1, 2);
   BSON_APPEND_INT64 (d, "i64", 8);
   BSON_APPEND_DECIMAL128 (d, "dec", &dec);
   BSON_APPEND_MINKEY (d, "min");
   BSON_APPEND_MAXKEY (d, "max");
   bson_destroy (scope);
   return d;
}

static bool
depth_ok (const bson_t *b)
{
   return dj_bson_depth_ok (bson_get_data (b), b->len, DJ_BSON_MAX_DEPTH);
}

static int
reply_code (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, reply, "code") ? bson_iter_as_int64 (&it) : 0;
}

/* {insert: "n", documents: [{_id: id, a: {a: ... 1}}]}: the document nests
 * `levels` objects (or arrays) below its top, each a level. */
static bson_t *
insert_nested (int id, int levels, bool arrays)
{
   bson_t *cmd = bson_new (), docs, doc;
   bson_t *chain = bson_malloc (sizeof (bson_t) * (size_t) (levels + 1));
   BSON_APPEND_UTF8 (cmd, "insert", "n");
   BSON_APPEND_ARRAY_BEGIN (cmd, "documents", &docs);
   BSON_APPEND_DOCUMENT_BEGIN (&docs, "0", &doc);
   BSON_APPEND_INT32 (&doc, "_id", id);
   chain[0] = doc;
   for (int k = 1; k <= levels; k++) {
      const char *key = arrays && k > 1 ? "0" : "a";
      if (arrays) {
         bson_append_array_begin (&chain[k - 1], key, -1, &chain[k]);
      } else {
         bson_append_document_begin (&chain[k - 1], key, -1, &chain[k]);
      }
   }
   BSON_APPEND_INT32 (&chain[levels], arrays ? "0" : "a", 1);
   for (int k = levels; k >= 1; k--) {
      if (arrays) {
         bson_append_array_end (&chain[k - 1], &chain[k]);
      } else {
         bson_append_document_end (&chain[k - 1], &chain[k]);
      }
   }
   doc = chain[0];
   bson_append_document_end (&docs, &doc);
   bson_append_array_end (cmd, &docs);
   bson_free (chain);
   return cmd;
}

/* The code of a reply's error or first writeError, 0 for none. */
static int
write_code (const bson_t *reply)
{
   bson_iter_t it;
   if (bson_iter_init (&it, reply) && bson_iter_find_descendant (&it, "writeErrors.0.code", &it)) {
      return bson_iter_int32 (&it);
   }
   return reply_code (reply);
}

/* Stored documents nest at most 100 levels, the top document the first;
 * an insert or update past that is Overflow (15), as mongod since
 * SERVER-26703 / SERVER-28347.
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-Nested-Depth-for-BSON-Documents */
static void
stored_depth (dj_engine_t *e)
{
   bson_t reply;
   bson_t *ok100 = insert_nested (1, 99, false), *arr101 = insert_nested (2, 100, true),
          *obj101 = insert_nested (3, 100, false);
   dj_engine_run_command (e, "test", ok100, &reply);
   CHECK (write_code (&reply) == 0, "100 levels refused: code %d", write_code (&reply));
   bson_destroy (&reply);
   dj_engine_run_command (e, "test", arr101, &reply);
   CHECK (write_code (&reply) == 15, "101 levels of arrays: code %d", write_code (&reply));
   bson_destroy (&reply);
   dj_engine_run_command (e, "test", obj101, &reply);
   CHECK (write_code (&reply) == 15, "101 levels of objects: code %d", write_code (&reply));
   bson_destroy (&reply);
   /* $set the innermost value (a.a...a, 100 names) to a document: a 101st level */
   char path[2 * 100];
   for (int k = 0; k < 100; k++) {
      path[2 * k] = 'a';
      path[2 * k + 1] = k < 99 ? '.' : '\0';
   }
   bson_t *deeper = BCON_NEW ("update", "n", "updates", "[", "{", "q", "{", "_id", BCON_INT32 (1), "}", "u", "{",
                              "$set", "{", path, "{", "deeper", BCON_BOOL (true), "}", "}", "}", "}", "]");
   dj_engine_run_command (e, "test", deeper, &reply);
   CHECK (write_code (&reply) == 15, "an update making 101 levels: code %d", write_code (&reply));
   bson_destroy (&reply);
   bson_t *count = BCON_NEW ("count", "n");
   dj_engine_run_command (e, "test", count, &reply);
   bson_iter_t it;
   CHECK (bson_iter_init_find (&it, &reply, "n") && bson_iter_as_int64 (&it) == 1, "only the 100-level document");
   bson_destroy (&reply);
   bson_destroy (count);
   bson_destroy (deeper);
   bson_destroy (ok100);
   bson_destroy (arr101);
   bson_destroy (obj101);
}

int
main (void)
{
   /* 1. the bound: the document under x is one level below the top, and it
    * nests `depth` more */
   int depths[] = {0, 1, 100, DJ_BSON_MAX_DEPTH - 1, DJ_BSON_MAX_DEPTH, DJ_BSON_MAX_DEPTH + 1, 10000, 100000};
   for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
      bson_t *cmd = ping_with (depths[i]);
      bool want = depths[i] + 1 <= DJ_BSON_MAX_DEPTH;
      CHECK (depth_ok (cmd) == want, "depth %d: %s", depths[i], want ? "refused" : "accepted");
      bson_destroy (cmd);
   }

   /* 2. every type is read; libbson's verdict is never contradicted */
   bson_t *all = every_type ();
   CHECK (depth_ok (all), "a document holding every BSON type was refused");
   srand (7);
   int agreed = 0, mismatches = 0;
   for (int round = 0; round < 20000; round++) {
      uint8_t *bytes = bson_malloc (all->len);
      memcpy (bytes, bson_get_data (all), all->len);
      int flips = 1 + rand () % 3;
      for (int f = 0; f < flips; f++) {
         bytes[rand () % all->len] = (uint8_t) rand ();
      }
      uint32_t len = 4 + (uint32_t) rand () % (all->len - 4);
      if (rand () % 2) {
         len = all->len;
      }
      bytes[0] = (uint8_t) len; /* keep the length word consistent half of the time */
      bytes[1] = (uint8_t) (len >> 8);
      bytes[2] = bytes[3] = 0;
      bool lib = ctest_strict_valid (bytes, len);
      bool ours = dj_bson_depth_ok (bytes, len, DJ_BSON_MAX_DEPTH);
      if (lib && !ours) {
         if (!mismatches++) { /* the first one, to read */
            printf ("refused although libbson accepts (%u bytes):", len);
            for (uint32_t i = 0; i < len; i++) {
               printf (" %02x", bytes[i]);
            }
            printf ("\n");
         }
      } else if (lib) {
         agreed++;
      }
      bson_free (bytes);
   }
   CHECK (mismatches == 0, "%d mutants libbson accepts were refused", mismatches);
   CHECK (agreed > 0, "no mutant was valid: the property was never exercised");
   bson_destroy (all);

   /* 3. through the engine */
   char dir[] = "/tmp/djongo-depth-XXXXXX";
   bson_error_t err;
   if (!mkdtemp (dir)) {
      return 2;
   }
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC};
   dj_engine_t *e = dj_engine_open (dir, &opts, &err);
   CHECK (e != NULL, "open: %s", err.message);
   if (e) {
      bson_t reply;
      bson_t *deep = ping_with (100000), *fine = ping_with (150);
      dj_engine_run_command (e, "admin", deep, &reply);
      CHECK (reply_code (&reply) == 22, "100,000 levels: code %d", reply_code (&reply));
      bson_destroy (&reply);
      CHECK (dj_engine_run_command (e, "admin", fine, &reply), "150 levels refused");
      bson_destroy (&reply);
      bson_destroy (deep);
      bson_destroy (fine);
      stored_depth (e);
      dj_engine_close (e);
   }
   ctest_rmdir (dir);
   return CTEST_REPORT ("depth");
}
