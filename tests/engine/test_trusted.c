/*
 * test_trusted -- dj_engine_run_trusted_in(), the entry for commands built
 * by djongo's own compiler, runs them as dj_engine_run_command_in() does
 * (outside and inside a transaction, profiled the same way), while the
 * untrusted entries keep refusing malformed command documents.
 */
#include <string.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"

static int32_t
reply_code (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, reply, "code") ? bson_iter_int32 (&it) : 0;
}

static double
reply_ok (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, reply, "ok") ? bson_iter_as_double (&it) : -1;
}

/* The firstBatch of a find's reply, as relaxed JSON of a document (caller frees). */
static char *
first_batch (const bson_t *reply)
{
   bson_iter_t it;
   if (!bson_iter_init (&it, reply) || !bson_iter_find_descendant (&it, "cursor.firstBatch", &it) ||
       !BSON_ITER_HOLDS_ARRAY (&it)) {
      return bson_strdup ("(none)");
   }
   uint32_t len;
   const uint8_t *data;
   bson_iter_array (&it, &len, &data);
   bson_t arr;
   bson_init_static (&arr, data, len);
   return bson_as_relaxed_extended_json (&arr, NULL);
}

/* Runs @p json trusted and untrusted inside @p txn (NULL: none); both
 * replies' firstBatch must be @p want. */
static void
find_both (dj_engine_t *e, dj_engine_txn_t *txn, const char *json, const char *want)
{
   bson_t *cmd = J (json);
   bson_t r1, r2;
   dj_engine_run_trusted_in (e, txn, "t", cmd, &r1);
   dj_engine_run_command_in (e, txn, "t", cmd, &r2);
   char *b1 = first_batch (&r1), *b2 = first_batch (&r2);
   CHECK (!strcmp (b1, want), "trusted %s: %s", json, b1);
   CHECK (!strcmp (b2, want), "untrusted %s: %s", json, b2);
   bson_free (b1);
   bson_free (b2);
   bson_destroy (&r1);
   bson_destroy (&r2);
   bson_destroy (cmd);
}

static void
run_trusted (dj_engine_t *e, dj_engine_txn_t *txn, const char *json)
{
   bson_t *cmd = J (json);
   bson_t reply;
   dj_engine_run_trusted_in (e, txn, "t", cmd, &reply);
   CHECK (reply_ok (&reply) == 1.0, "%s ran", json);
   bson_destroy (&reply);
   bson_destroy (cmd);
}

int
main (void)
{
   char dir[] = "/tmp/djongo-trusted-XXXXXX";
   bson_error_t err;
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      return 1;
   }

   /* outside a transaction */
   run_trusted (e, NULL, "{\"insert\": \"c\", \"documents\": [{\"_id\": 1, \"s\": \"a\"}, {\"_id\": 2, \"s\": \"b\"}]}");
   find_both (e, NULL, "{\"find\": \"c\", \"filter\": {\"_id\": 2}}", "{ \"0\" : { \"_id\" : 2, \"s\" : \"b\" } }");

   /* inside one: the trusted write is seen by the transaction alone until it commits */
   dj_engine_txn_t *txn = dj_engine_txn_begin (e, NULL, &err);
   CHECK (txn != NULL, "begin: %s", err.message);
   run_trusted (e, txn, "{\"update\": \"c\", \"updates\": [{\"q\": {\"_id\": 1}, \"u\": {\"$set\": {\"s\": \"z\"}}}]}");
   find_both (e, txn, "{\"find\": \"c\", \"filter\": {\"_id\": 1}}", "{ \"0\" : { \"_id\" : 1, \"s\" : \"z\" } }");
   find_both (e, NULL, "{\"find\": \"c\", \"filter\": {\"_id\": 1}}", "{ \"0\" : { \"_id\" : 1, \"s\" : \"a\" } }");
   CHECK (dj_engine_txn_commit (txn, &err), "commit: %s", err.message);
   find_both (e, NULL, "{\"find\": \"c\", \"filter\": {\"_id\": 1}}", "{ \"0\" : { \"_id\" : 1, \"s\" : \"z\" } }");

   /* trusted commands are profiled as the others are */
   run_trusted (e, NULL, "{\"profile\": 2}");
   run_trusted (e, NULL, "{\"count\": \"c\", \"query\": {\"s\": \"z\"}}");
   find_both (e, NULL, "{\"find\": \"system.profile\", \"filter\": {\"command.count\": \"c\"}, \"projection\": {\"_id\": 0, \"op\": 1, \"ns\": 1}}",
              "{ \"0\" : { \"op\" : \"command\", \"ns\" : \"t.c\" } }");

   /* the untrusted entries still refuse a string that is not UTF-8 and an
    * array whose keys are not 0, 1, ... (code 22, InvalidBSON) */
   bson_t bad = BSON_INITIALIZER;
   BSON_APPEND_UTF8 (&bad, "find", "c");
   bson_t filter;
   BSON_APPEND_DOCUMENT_BEGIN (&bad, "filter", &filter);
   bson_append_utf8 (&filter, "s", 1, "\xff\xfe", 2);
   bson_append_document_end (&bad, &filter);
   bson_t arr;
   bson_t bad_keys = BSON_INITIALIZER;
   BSON_APPEND_UTF8 (&bad_keys, "insert", "c");
   BSON_APPEND_ARRAY_BEGIN (&bad_keys, "documents", &arr);
   BSON_APPEND_INT32 (&arr, "5", 1);
   bson_append_array_end (&bad_keys, &arr);
   const bson_t *bads[] = {&bad, &bad_keys};
   for (size_t i = 0; i < 2; i++) {
      bson_t reply;
      dj_engine_run_command (e, "t", bads[i], &reply);
      CHECK (reply_ok (&reply) == 0.0 && reply_code (&reply) == 22, "bad %zu refused: code %d", i, reply_code (&reply));
      bson_destroy (&reply);
      dj_engine_run_command_in (e, NULL, "t", bads[i], &reply);
      CHECK (reply_ok (&reply) == 0.0 && reply_code (&reply) == 22, "bad %zu refused in: code %d", i, reply_code (&reply));
      bson_destroy (&reply);
   }
   bson_destroy (&bad);
   bson_destroy (&bad_keys);

   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("trusted");
}
