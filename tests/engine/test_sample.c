/*
 * test_sample -- $sample's random cursor (storage/sample.c, dj_record_sample):
 *
 *  - it gives `size` different records, each a live record of the collection,
 *    and over many draws (dense record ids: each as likely) every one, the
 *    first and the last too;
 *  - after deletes leave gaps in the record ids, it still gives only live
 *    records, the last one among them (a record after a gap is likelier:
 *    the draw seeks to a random id, as WiredTiger's random cursor);
 *  - it stops when the callback says so.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/sample/#behavior
 * (The scripts, tests/engine/scripts/agg_sample.test, check $sample's
 * results through aggregate; these check the cursor itself.)
 */
#include <stdlib.h>
#include <unistd.h>

#include "dj_engine.h"
#include "ctest.h"
#include "dj_storage.h"

typedef struct {
   int64_t ids[64];
   int n, stop_after;
} seen_t;

static bool
collect (uint64_t rid, const bson_t *doc, int32_t pos, void *ctx)
{
   seen_t *s = ctx;
   bson_iter_t it;
   (void) rid, (void) pos;
   s->ids[s->n++] = bson_iter_init_find (&it, doc, "_id") ? bson_iter_as_int64 (&it) : -1;
   return s->n != s->stop_after;
}

/* n draws of `size` from test.c in a read transaction of e. */
static bool
draw (dj_engine_t *e, int64_t size, seen_t *s)
{
   dj_ctx_t ctx = {0}; /* as the commands begin theirs */
   bson_error_t err;
   memset (s, 0, sizeof *s);
   s->stop_after = s->stop_after ? s->stop_after : -1;
   if (!dj_txn_begin (e, false, &ctx, &err)) {
      return false;
   }
   dj_coll_t *c = dj_coll_load (&ctx, "test", "c", &err);
   bool ok = c && dj_record_sample (&ctx, c, size, collect, s, &err);
   dj_coll_free (c);
   dj_txn_abort (&ctx);
   return ok;
}

static bool
distinct (const seen_t *s)
{
   for (int i = 0; i < s->n; i++) {
      for (int j = i + 1; j < s->n; j++) {
         if (s->ids[i] == s->ids[j]) {
            return false;
         }
      }
   }
   return true;
}

static void
run (dj_engine_t *e, const char *json)
{
   bson_error_t err;
   bson_t *cmd = bson_new_from_json ((const uint8_t *) json, -1, &err), reply;
   dj_engine_run_command (e, "test", cmd, &reply);
   bson_destroy (&reply);
   bson_destroy (cmd);
}

int
main (void)
{
   char dir[] = "/tmp/djongo-sample-XXXXXX";
   bson_error_t err;
   dj_engine_t *e = ctest_engine (dir);
   if (!e) {
      return 2;
   }
   /* 1000 documents, _id 0..999 */
   bson_t *ins = bson_new (), arr;
   BSON_APPEND_UTF8 (ins, "insert", "c");
   BSON_APPEND_ARRAY_BEGIN (ins, "documents", &arr);
   for (int i = 0; i < 1000; i++) {
      char k[16];
      bson_t d;
      snprintf (k, sizeof k, "%d", i);
      BSON_APPEND_DOCUMENT_BEGIN (&arr, k, &d);
      BSON_APPEND_INT32 (&d, "_id", i);
      bson_append_document_end (&arr, &d);
   }
   bson_append_array_end (ins, &arr);
   bson_t reply;
   dj_engine_run_command (e, "test", ins, &reply);
   bson_destroy (&reply);
   bson_destroy (ins);

   seen_t s = {0};
   CHECK (draw (e, 50, &s), "a draw of 50");
   CHECK (s.n == 50 && distinct (&s), "50 different records, got %d", s.n);
   bool in_range = true;
   for (int i = 0; i < s.n; i++) {
      in_range &= s.ids[i] >= 0 && s.ids[i] < 1000;
   }
   CHECK (in_range, "each one of the collection's");
   bool dense_hit[1000] = {false}, dense_ok = true;
   for (int round = 0; round < 400; round++) {
      memset (&s, 0, sizeof s);
      dense_ok &= draw (e, 50, &s) && s.n == 50 && distinct (&s);
      for (int i = 0; i < s.n; i++) {
         if (s.ids[i] >= 0 && s.ids[i] < 1000) {
            dense_hit[s.ids[i]] = true;
         }
      }
   }
   int dense_missed = 0;
   for (int i = 0; i < 1000; i++) {
      dense_missed += !dense_hit[i];
   }
   /* 20,000 picks of 1000 equally likely records: one is missed with probability ~2e-9 */
   CHECK (dense_ok && dense_missed == 0, "every record drawn over 400 draws, %d missed", dense_missed);

   /* keep _id 0, 999 and every 10th: gaps between the live record ids */
   run (e, "{\"delete\": \"c\", \"deletes\": [{\"q\": {\"$nor\": [{\"_id\": {\"$mod\": [10, 0]}}, {\"_id\": 999}]}, \"limit\": 0}]}");
   bool live = true, all_distinct = true;
   bool hit[1000] = {false};
   for (int round = 0; round < 400; round++) {
      memset (&s, 0, sizeof s);
      if (!draw (e, 5, &s) || s.n != 5) {
         live = false;
         break;
      }
      all_distinct &= distinct (&s);
      for (int i = 0; i < s.n; i++) {
         live &= s.ids[i] == 999 || s.ids[i] % 10 == 0;
         if (s.ids[i] >= 0 && s.ids[i] < 1000) {
            hit[s.ids[i]] = true;
         }
      }
   }
   CHECK (live && all_distinct, "only live records, each draw different ones");
   int missed = 0;
   for (int i = 10; i < 1000; i++) {
      missed += (i % 10 == 0 || i == 999) && !hit[i];
   }
   /* each live record after a gap of 9 (or 8: the last) stands for 9 or 10
    * of the 1000 ids: over 2000 picks one is missed with probability ~1e-8.
    * (_id 0 has no gap before it: 1 in 1000 a pick, not checked.) */
   CHECK (missed == 0 && hit[999], "every live record after a gap drawn, the last too, %d missed", missed);

   memset (&s, 0, sizeof s);
   s.stop_after = 3;
   {
      dj_ctx_t ctx = {0};
      CHECK (dj_txn_begin (e, false, &ctx, &err), "read");
      dj_coll_t *c = dj_coll_load (&ctx, "test", "c", &err);
      CHECK (c && dj_record_sample (&ctx, c, 20, collect, &s, &err) && s.n == 3, "stops when told, at %d", s.n);
      dj_coll_free (c);
      dj_txn_abort (&ctx);
   }
   dj_engine_close (e);
   ctest_rmdir (dir);
   return CTEST_REPORT ("sample");
}
