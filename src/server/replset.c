/*
 * replset.c -- what a replica-set member adds to its replies, so drivers
 * treat djongo-server as the primary of a one-member set:
 *
 *   - cluster time: every reply carries operationTime and $clusterTime
 *     {clusterTime: Timestamp, signature: {hash: BinData(0, 20 zero bytes),
 *     keyId: 0}} (unsigned: this server keeps no signing keys). The clock
 *     is a Timestamp (seconds, increment) that each write advances; reads
 *     answer with the last write's time, so a causally consistent session
 *     (afterClusterTime = an operationTime it saw) always finds its writes
 *     committed: every write commits before it is answered.
 *     https://www.mongodb.com/docs/manual/core/read-isolation-consistency-recency/#causal-consistency
 *   - write concern: a one-member set acknowledges w: 1 and "majority"; a
 *     w naming more members can never be satisfied, and a tag set the
 *     configuration does not define is unknown. mongod still applies the
 *     write and says so in writeConcernError (100
 *     UnsatisfiableWriteConcern, 79 UnknownReplWriteConcern).
 *     https://www.mongodb.com/docs/manual/reference/write-concern/
 */
#include <string.h>
#include <time.h>

#include "server-private.h"

bool
dj_is_write_command (const char *name, const bson_t *cmd)
{
   static const char *const writes[] = {"insert",        "update",          "delete",          "findAndModify",
                                        "findandmodify", "create",          "drop",            "dropDatabase",
                                        "createIndexes", "dropIndexes",     "renameCollection", "collMod",
                                        "bulkWrite",     "commitTransaction", "applyOps",       NULL};
   for (int i = 0; writes[i]; i++) {
      if (!strcmp (name, writes[i])) {
         return true;
      }
   }
   if (strcmp (name, "aggregate")) {
      return false;
   }
   /* an aggregate writes when its last stage is $out or $merge */
   bson_iter_t it, st, last, stage;
   bool found = false;
   if (!bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &st)) {
      return false;
   }
   while (bson_iter_next (&st)) {
      last = st;
      found = true;
   }
   if (!found || !BSON_ITER_HOLDS_DOCUMENT (&last) || !bson_iter_recurse (&last, &stage) || !bson_iter_next (&stage)) {
      return false;
   }
   return !strcmp (bson_iter_key (&stage), "$out") || !strcmp (bson_iter_key (&stage), "$merge");
}

void
dj_cluster_time_init (struct dj_server *srv)
{
   pthread_mutex_init (&srv->clock_mu, NULL);
   srv->clock_secs = (uint32_t) time (NULL);
   srv->clock_inc = 1;
}

void
dj_cluster_time_now (struct dj_server *srv, uint32_t *t, uint32_t *i)
{
   pthread_mutex_lock (&srv->clock_mu);
   *t = srv->clock_secs;
   *i = srv->clock_inc;
   pthread_mutex_unlock (&srv->clock_mu);
}

void
dj_cluster_time_stamp (struct dj_server *srv, bool advance, bson_t *reply)
{
   uint32_t t, i;
   pthread_mutex_lock (&srv->clock_mu);
   if (advance) {
      /* the wall clock's seconds while they move forward; within a second
       * (or if the wall clock stepped back) the increment */
      uint32_t now = (uint32_t) time (NULL);
      if (now > srv->clock_secs) {
         srv->clock_secs = now;
         srv->clock_inc = 1;
      } else {
         srv->clock_inc++;
      }
   }
   t = srv->clock_secs;
   i = srv->clock_inc;
   pthread_mutex_unlock (&srv->clock_mu);
   static const uint8_t no_hash[20] = {0};
   bson_t ct, sig;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "$clusterTime", &ct);
   BSON_APPEND_TIMESTAMP (&ct, "clusterTime", t, i);
   BSON_APPEND_DOCUMENT_BEGIN (&ct, "signature", &sig);
   bson_append_binary (&sig, "hash", -1, BSON_SUBTYPE_BINARY, no_hash, sizeof no_hash);
   BSON_APPEND_INT64 (&sig, "keyId", 0);
   bson_append_document_end (&ct, &sig);
   bson_append_document_end (reply, &ct);
   BSON_APPEND_TIMESTAMP (reply, "operationTime", t, i);
}

void
dj_write_concern_check (const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, w;
   uint32_t code = 0;
   char msg[160];
   /* only a write that succeeded waits for its write concern */
   if (!bson_iter_init_find (&it, reply, "ok") || bson_iter_as_double (&it) != 1.0 ||
       bson_has_field (reply, "writeConcernError") || !bson_iter_init_find (&it, cmd, "writeConcern") ||
       !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &w) || !bson_iter_find (&w, "w")) {
      return;
   }
   if (BSON_ITER_HOLDS_NUMBER (&w) && bson_iter_as_int64 (&w) > 1) {
      code = DJ_UnsatisfiableWriteConcern;
      snprintf (msg, sizeof msg, "Not enough data-bearing nodes");
   } else if (BSON_ITER_HOLDS_UTF8 (&w) && strcmp (bson_iter_utf8 (&w, NULL), "majority")) {
      code = DJ_UnknownReplWriteConcern;
      snprintf (msg, sizeof msg, "Unrecognized write concern mode: %.100s", bson_iter_utf8 (&w, NULL));
   }
   if (!code) {
      return;
   }
   char buf[24];
   bson_t wce;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "writeConcernError", &wce);
   BSON_APPEND_INT32 (&wce, "code", (int32_t) code);
   BSON_APPEND_UTF8 (&wce, "codeName", dj_error_code_name (code, buf));
   BSON_APPEND_UTF8 (&wce, "errmsg", msg);
   bson_append_document_end (reply, &wce);
}
